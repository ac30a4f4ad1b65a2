"""A local stand-in for CloudFront in front of a Lambda function URL, checking SigV4 with botocore
(never with the proxy's own signer), for ``signing-proxy emulate``/``demo`` and the tests.

    stack.py        Emulator: both stand-ins on real sockets, and what they saw
    cloudfront.py   the distribution: Host rewritten to the origin's, OAC, its own 403s
    function_url.py the function URL: checks the signature, echoes the request
    verify.py       the SigV4 verdict (botocore's SigV4Auth); key_lookup.py the keys it trusts
"""

from proxy.emulator.function_url import SeenRequest, region_from_host
from proxy.emulator.judge import DENY_ALL
from proxy.emulator.restrictions import Restrictions
from proxy.emulator.stack import DEFAULT_FUNCTION_HOST, Emulator, generate_key
from proxy.emulator.verify import Key, Verdict, verify_request

__all__ = [
    "DEFAULT_FUNCTION_HOST",
    "DENY_ALL",
    "Emulator",
    "Key",
    "Restrictions",
    "SeenRequest",
    "Verdict",
    "generate_key",
    "region_from_host",
    "verify_request",
]
