"""The upstream HTTP/1.1 client: keep-alive pools on asyncio, replies parsed by httptools."""
