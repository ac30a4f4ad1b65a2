"""The upstream HTTP/1.1 client: keep-alive pools on asyncio, replies parsed by httptools.

aiohttp's ClientSession was the largest part of a request's cost: ~40 µs of CPU per small
request, against ~10 µs for this client (``bench/parts.py``). This client does only what the
proxy needs: one request at a time per connection, the body sent as it is (bytes, or a spool
read again from its start), the reply streamed back with flow control. It adds no headers
except Host and Content-Length, follows no redirects, keeps no cookies and decodes nothing.
A reply's head is bounded while it arrives (HEAD_LIMIT bytes, FIELD_LIMIT fields): a hostile
server cannot make the proxy hold an endless one.

Its modules, each importing only the ones above it:

- ``errors``: ``ClientError`` and its kinds (connect failed or timed out, certificate
  rejected, disconnected, malformed reply, head too large);
- ``wire``: what a request is (``Origin``, ``ForwardProxy``, ``Streamed`` bodies) and its head
  encoded as bytes; no I/O;
- ``connection``: one connection, the asyncio protocol with flow control both ways, and the
  writing of a request (a spooled body by a task of its own);
- ``reply``: ``Reply``, the reply parsed by httptools as it arrives, its head bounded
  (HEAD_LIMIT, FIELD_LIMIT), its body streamed with flow control;
- ``pool``: ``Pool``, keep-alive connections by origin and forward proxy, and what opens them
  (TLS, CONNECT tunnels); its ``request()`` is the entry point.
"""
