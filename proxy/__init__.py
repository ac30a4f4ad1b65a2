"""signing-proxy: a local reverse proxy that signs requests with AWS SigV4.

One request takes one way through the proxy; each stage is one module::

    inbound ─▶ routing ─▶ body ─▶ sigv4 ─▶ upstream ─▶ reply streamed back
               (404/405)  (413)   (pure)   (502/504)

The signature is computed for the route's signing host (the Lambda function URL)
while the request travels to the route's upstream (usually CloudFront).
"""

__version__ = "0.1.0"
