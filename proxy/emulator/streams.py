"""Read a whole request or reply body, giving up once it passes a cap."""

from __future__ import annotations

import aiohttp

_READ_CHUNK = 64 * 1024


async def read_capped(content: aiohttp.StreamReader, *, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is over ``limit`` bytes (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
