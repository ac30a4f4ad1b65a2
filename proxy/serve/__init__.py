"""The running proxy: listeners, the request handler and pipeline, and what they hold.

server.py       the listeners, the drain on shutdown, the reload
handler.py      each request: id, outcome, error reply, access log, metrics, inspector
pipeline.py     one request's way: Host, route, browser, inbound, admission, body
forward.py      sign, send and relay, with retries, a credential refresh, a clock fix
outcome.py      what one request did; body.py the body read once, hashed and kept
upstream.py     the proxy's outbound I/O: pools, send, relay, failures translated
state.py        the loaded config as requests see it; a reload swaps it in
credentials.py  the credential sets, refreshed off the loop; clock.py the signing clock
replay_store.py the replay memory the workers of one proxy share (SQLite)
admin.py        /healthz, /readyz, /metrics, /reload; metrics.py; logs.py
supervisor.py   serve --workers: worker processes sharing one socket
"""
