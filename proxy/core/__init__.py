"""Pure: the rules of the proxy, with no I/O. Nothing here imports aiohttp, asyncio, socket, ssl,
botocore, subprocess or threading; the clock, the randomness and the credentials are passed in.

    front_door.py  which Host and which browser origins may knock at all
    routing.py     the normalised path and the route that takes it
    inbound.py     who may call a route (addresses, tokens, webhook signatures); replay.py replays
    limits.py      admission: the rate limit and the in-flight cap
    headers.py     which headers cross, each way; sigv4.py the signature
    retries.py     whether and when to send again; refusals.py what a refusal of AWS means
"""
