"""YAML (or the quick form's flags) into the frozen objects of ``proxy.model``: the only place
that reads the config file, and where each mistake becomes one ``ConfigError`` naming its key.

    load.py         load_config, quick_config, parse_config: the whole file and its top-level keys
    routes.py       one route: its keys, upstream, path, methods, host, headers, timeouts, retries
    signing.py      a route's signing target: function_url, sign:, implied_target
    values.py       single values (durations, sizes, addresses, regions, methods)
    strict_yaml.py  the file read strictly (no duplicate or unknown keys); env_expansion.py ${VAR}
    inbound.py      a route's inbound: and rate_limit:; credentials.py the credentials: section
    probe.py        a route's probe:; tls.py the TLS files; lint.py the warnings a valid file earns
"""
