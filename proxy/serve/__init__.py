"""The running proxy: listeners, the request handler and pipeline, and what they hold.

    server.py      the listeners, the drain and the reload; pipeline.py one request's way
    body.py        the body read once, hashed and kept; upstream.py the send and the relay
    state.py       the loaded config as the requests see it; credentials.py the credential sets
    clock.py       the signing clock; replay_store.py the workers' shared replay memory
    admin.py       /healthz, /readyz, /metrics, /reload; metrics.py, logs.py; supervisor.py workers
"""
