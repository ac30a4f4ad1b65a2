"""``signing-proxy check``: the config, the credentials, the upstreams, then one probe a route,
each step printed with a verdict and the fix.

    command.py   the steps in order; report.py how findings print
    identity.py  credential sets and whose they are; network.py DNS, TCP, TLS
    probe.py     the probe sent as serve sends it; verdicts.py what its reply means
    access.py, cloudfront.py, mismatch.py   the explanations of a refusal (pure)
"""
