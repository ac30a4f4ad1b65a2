"""A local stand-in for CloudFront in front of a Lambda function URL (or Web Function endpoint),
checking SigV4 and SigV4a with botocore and cryptography (never with the proxy's own signer), for
``signing-proxy emulate``/``demo`` and the tests.

    stack.py         Emulator: both stand-ins on real sockets, and what they saw
    cloudfront.py    the distribution: Host rewritten to the origin's, OAC, its own 403s
    function_url.py  the function URL: checks the signature, echoes the request
    verify.py        the SigV4 verdict (botocore's SigV4Auth); key_lookup.py the keys it trusts
    web_function.py  Lambda Web Function endpoints (regional, multi-region) and their rules
    sigv4a_verify.py the SigV4a verdict (botocore's canonical request, cryptography's ECDSA)
"""

from proxy.emulator.function_url import SeenRequest, region_from_host
from proxy.emulator.judge import DENY_ALL
from proxy.emulator.restrictions import Restrictions
from proxy.emulator.stack import DEFAULT_FUNCTION_HOST, Emulator, generate_key
from proxy.emulator.verify import Key, Verdict, verify_request
from proxy.emulator.web_function import (
    DEFAULT_GLOBAL_WEB_FUNCTION_HOST,
    DEFAULT_WEB_FUNCTION_HOST,
    WebFunctionEndpoint,
    web_function_endpoint,
)

__all__ = [
    "DEFAULT_FUNCTION_HOST",
    "DEFAULT_GLOBAL_WEB_FUNCTION_HOST",
    "DEFAULT_WEB_FUNCTION_HOST",
    "DENY_ALL",
    "Emulator",
    "Key",
    "Restrictions",
    "SeenRequest",
    "Verdict",
    "WebFunctionEndpoint",
    "generate_key",
    "region_from_host",
    "verify_request",
    "web_function_endpoint",
]
