"""Pure: the rules of the proxy, with no I/O. Nothing here imports aiohttp, asyncio, socket, ssl,
botocore, subprocess or threading (``tests/test_layout.py`` holds it so); the clock, the
randomness and the credentials are passed in.

    front_door.py   which Host and which browser origins may knock at all
    routing.py      the normalised path and the route that takes it
    inbound.py      who may call a route (addresses, tokens, webhook signatures)
    replay.py       the memory of webhook deliveries already taken
    limits.py       admission: the rate limit and the in-flight cap
    headers.py      which headers cross, each way
    outgoing.py     the one builder of the signed upstream request (serve, check, sign)
    sigv4.py        the signature; credentials.py the snapshot it is made with
    retries.py      whether and when to send again
    refusals.py     the one classifier of Lambda's and CloudFront's refusals
"""
