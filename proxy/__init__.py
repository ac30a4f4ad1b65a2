"""signing-proxy: a local reverse proxy that signs requests with AWS SigV4.

One request takes one way through the proxy (``proxy.serve``), deciding with the pure rules
of ``proxy.core``::

    front door ─▶ routing ─▶ inbound ─▶ admission ─▶ body ─▶ sign ─▶ upstream ─▶ reply
    (Host 421,    (404/405,   (401/403)  (429/503)   (413)   (pure)  (502/504)   streamed
     browser 403)  400)                                                          back

The signature is computed for the route's signing host (the Lambda function URL) while the
request travels to the route's upstream (usually CloudFront). The package, by concern::

    errors.py    the one exception tree; each error carries its status and reply headers
    model.py     the frozen config objects every other module reads
    config/      YAML and flags into the model; every mistake one ConfigError
    core/        pure rules: routing, front door, inbound, limits, headers, sigv4, refusals
    serve/       the running proxy: listeners, handler, pipeline, upstream, state, admin
    http11/      the upstream HTTP/1.1 client: keep-alive pools, replies parsed by httptools
    inspector/   serve --inspect: recent exchanges, masked, live, replayable
    check/       signing-proxy check: config, credentials, upstreams, one probe a route
    cli/         the command line and its subcommands; the only place that exits
    emulator/    a CloudFront + function URL stand-in that checks SigV4 with botocore
"""

__version__ = "0.1.0"
