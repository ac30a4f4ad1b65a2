"""`signing-proxy check` against the emulator set up to fail in each known way, and passing."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp import web
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpServer

from proxy.check.access import Signer
from proxy.check.command import check
from proxy.check.probe import ProbeReply
from proxy.check.verdicts import verdict as judge
from proxy.config.load import parse_config
from proxy.emulator import Emulator, Key, Restrictions
from proxy.emulator.judge import DENIED_MESSAGE
from proxy.serve.upstream import forward_proxy
from tests.processes import child_env, module_command, run
from tests.stack import FUNCTION_URL, KEY, KEY_ID

ROLE_ARN = "arn:aws:iam::123456789012:role/webhook-signer"
CLOUDFRONT_HOST = "d111111abcdef8.cloudfront.net"
FUNCTION_HOST = FUNCTION_URL.removeprefix("https://")
TIMEOUT = 5.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def signing_keys(local_sts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default chain holds the emulator's test key; STS is the local moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY.secret_access_key)


def document(upstream: str, **fields: Any) -> dict[str, Any]:
    """A config with one route "orders" to ``upstream`` (fields override the route's keys)."""
    route = {"name": "orders", "upstream": upstream, "function_url": FUNCTION_URL, **fields}
    credentials = route.pop("credential_sets", None)
    config: dict[str, Any] = {"listen": "127.0.0.1:0", "routes": [route]}
    if credentials is not None:
        config["credentials"] = credentials
    return config


async def run_check(
    config: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    *,
    routes: tuple[str, ...] = (),
    color: bool = False,
) -> tuple[int, str]:
    """check's exit code and what it printed on stdout."""
    code = await check(parse_config(config), routes=list(routes), color=color, timeout=TIMEOUT)
    return code, capsys.readouterr().out


@dataclass(frozen=True)
class Failure:
    """One way to get a route wrong, and the verdict and fix check must print for it."""

    id: str
    verdict: str
    fix: str
    route: dict[str, Any] = field(default_factory=dict)
    emulator: dict[str, Any] = field(default_factory=dict)


AHEAD = timedelta(minutes=10)
FAILURES = [
    Failure(
        "wrong region",
        "wrong region in the signature's scope",
        "fix: set sign.region: eu-central-1 on route orders",
        route={"sign": {"region": "us-east-1"}},
    ),
    Failure(
        "wrong signing host",
        "403 InvalidSignatureException: signature mismatch",
        f"fix: sign for the function URL's host: set function_url: {FUNCTION_URL} on route orders",
        route={"sign": {"host": CLOUDFRONT_HOST, "region": "eu-central-1", "service": "lambda"}},
    ),
    Failure(
        "missing permission",
        "403 AccessDeniedException: access denied",
        "--principal arn:aws:iam::123456789012:role/webhook-signer --invoked-via-function-url",
        route={"credentials": "signer", "credential_sets": {"signer": {"role_arn": ROLE_ARN}}},
        emulator={"denied": {ROLE_ARN}},
    ),
    Failure(
        "skewed clock",
        "this machine's clock is off",
        "fix: synchronise this machine's clock (NTP); AWS allows 5 minutes (measured offset +",
        emulator={"clock": lambda: datetime.now(UTC) + AHEAD},
    ),
    Failure(
        "CloudFront WAF",
        "refused by CloudFront itself (no x-amzn-ErrorType)",
        "fix: AWS WAF: find the rule of the distribution's web ACL that blocked /admin/",
        route={"probe": {"method": "GET", "path": "/admin/health"}},
        emulator={"restrictions": Restrictions(blocked_paths=("/admin/",))},
    ),
    Failure(
        "CloudFront geo restriction",
        "CloudFront: The Amazon CloudFront distribution is configured to block access from your",
        "fix: geographic restriction: allow this machine's country",
        route={"probe": {"method": "GET"}},
        emulator={"restrictions": Restrictions(blocked_countries=frozenset({"DE"}))},
    ),
    Failure(
        "CloudFront allowed methods",
        "CloudFront: This distribution is not configured to allow the HTTP request method",
        "fix: allowed methods: the cache behaviour for / must allow OPTIONS",
        route={"probe": {"method": "OPTIONS"}},
        emulator={"restrictions": Restrictions(allowed_methods=frozenset({"GET", "HEAD"}))},
    ),
    Failure(
        "unknown access key",
        "403 UnrecognizedClientException: access key or session token not recognised",
        "fix: credential set default: AWS does not know its access key or session token",
        emulator={"keys": {}},
    ),
    Failure(
        "expired session token",
        "403 ExpiredTokenException: session token expired",
        "fix: credential set default: its session token has expired; refresh the default chain",
        emulator={"keys": {KEY_ID: Key(KEY.secret_access_key, expires_at=datetime(2020, 1, 1))}},
    ),
    Failure(
        "unsigned route to an AWS_IAM function",
        "403 AccessDeniedException: access denied",
        "fix: set mode: iam and function_url on route orders",
        route={"mode": "none"},
    ),
]


@pytest.mark.parametrize("case", FAILURES, ids=[case.id for case in FAILURES])
async def test_each_known_failure_gets_its_verdict_and_fix(
    case: Failure, local_sts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A route misconfigured in a known way fails with its verdict and the exact fix; exit 1."""
    options = {"keys": {KEY_ID: KEY}, **case.emulator}
    async with Emulator(sts_url=local_sts, **options) as emulator:
        code, out = await run_check(document(emulator.cloudfront_url, **case.route), capsys)
    assert code == 1, out
    assert case.verdict in out
    assert case.fix in out
    if "clock" in case.id:
        assert re.search(r"measured offset \+(599|600|601)s\)", out), out
    assert "✗ route orders" in out
    assert out.rstrip().endswith("0 of 1 route pass; exit code 1")


async def test_signature_mismatch_shows_the_canonical_request_diff(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A HEAD signed for the wrong host is asked again as GET; AWS's canonical request is diffed."""
    sign = {"host": CLOUDFRONT_HOST, "region": "eu-central-1", "service": "lambda"}
    async with Emulator(keys={KEY_ID: KEY}) as emulator:
        _, out = await run_check(document(emulator.cloudfront_url, sign=sign), capsys)
    assert "HEAD was refused; asked again as GET" in out
    assert f"AWS received Host: {FUNCTION_HOST}; the proxy signed for {CLOUDFRONT_HOST}" in out
    assert "--- signed by the proxy" in out
    assert f"-host:{CLOUDFRONT_HOST}" in out
    assert f"+host:{FUNCTION_HOST}" in out


async def test_session_token_is_masked_in_the_diff(
    local_sts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mismatch signed with a role's session: the diff shows the token line, never the token."""
    sign = {"host": CLOUDFRONT_HOST, "region": "eu-central-1", "service": "lambda"}
    sets = {"signer": {"role_arn": ROLE_ARN}}
    async with Emulator(keys={}, sts_url=local_sts) as emulator:
        config = document(
            emulator.cloudfront_url, sign=sign, credentials="signer", credential_sets=sets
        )
        _, out = await run_check(config, capsys)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{local_sts}/moto-api/data.json") as answer,
        ):
            issued = (await answer.json(content_type=None))["sts"]["AssumedRole"]
    assert " x-amz-security-token:***" in out
    for role in issued:
        assert role["session_token"] not in out
        assert role["secret_access_key"] not in out


async def test_passing_config_exits_0_with_every_step_ticked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Config, credentials (with the STS identity), upstream and route all pass: exit 0."""
    async with Emulator(keys={KEY_ID: KEY}) as emulator:
        upstream = emulator.cloudfront_url
        code, out = await run_check(document(upstream), capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("✓ config: ok — 1 route, 1 credential set in use")
    assert "✓ credentials default: the default credential chain" in lines
    assert "    identity: arn:aws:sts::123456789012:user/moto (account 123456789012)" in lines
    assert f"✓ upstream {upstream}" in lines
    assert "✓ route orders: HEAD / → 200: signature accepted; the function answered 200" in lines
    assert lines[-1] == "1 of 1 route passes; exit code 0"
    assert KEY.secret_access_key not in out


async def test_function_errors_still_pass(capsys: pytest.CaptureFixture[str]) -> None:
    """A 404 answered by the function itself means the signature was accepted."""
    async with Emulator(keys={KEY_ID: KEY}) as emulator:
        config = document(emulator.cloudfront_url, probe={"path": "/status/404"})
        code, out = await run_check(config, capsys)
    assert code == 0, out
    assert "signature accepted; the function answered 404" in out


async def test_clock_a_minute_and_a_half_off_warns_but_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clock 90 s off is accepted by AWS but flagged with "!" and the offset; exit 0."""
    ahead = timedelta(seconds=90)
    async with Emulator(keys={KEY_ID: KEY}, clock=lambda: datetime.now(UTC) + ahead) as emulator:
        code, out = await run_check(document(emulator.cloudfront_url), capsys)
    assert code == 0, out
    assert "! route orders: HEAD / → 200" in out
    assert re.search(r"this machine's clock is (89|90|91)s behind the upstream's", out), out


@pytest.mark.parametrize("color", [False, True], ids=["plain", "colour"])
async def test_colour_only_when_asked(color: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """Plain output has no ANSI escapes; coloured output has them, with the same text."""
    async with Emulator(keys={KEY_ID: KEY}) as emulator:
        _, out = await run_check(document(emulator.cloudfront_url), capsys, color=color)
    assert bool(ANSI.search(out)) is color
    assert "route orders: HEAD / → 200" in ANSI.sub("", out)


async def test_unknown_route_exits_2_naming_the_routes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--route with a name the config lacks prints the known names and returns 2."""
    config = parse_config(document("http://127.0.0.1:9"))
    code = await check(config, routes=["order"], color=False, timeout=TIMEOUT)
    assert code == 2
    assert capsys.readouterr().err == (
        "signing-proxy: --route: 'order' is not a route (expected one of: orders)\n"
    )


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("upstream", "says"),
    [
        (f"http://127.0.0.1:{closed_port()}", "TCP: could not connect (127.0.0.1:"),
        ("http://no-such-host.invalid", "DNS: cannot resolve no-such-host.invalid"),
    ],
    ids=["closed port", "unknown host"],
)
async def test_unreachable_upstream_fails_its_routes(
    upstream: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upstream that cannot be resolved or connected to fails, and its routes are not probed."""
    code, out = await run_check(document(upstream), capsys)
    assert code == 1
    assert says in out
    assert f"✗ route orders: not probed: its upstream {upstream} could not be reached" in out


async def public(request: web.Request) -> web.Response:
    """A public page (a route with mode none)."""
    return web.Response(text="public")


@pytest.mark.parametrize("trusted", [True, False], ids=["CA file given", "no CA file"])
async def test_tls_upstream_is_checked_with_the_configured_ca(
    trusted: bool,
    aiohttp_server: AiohttpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An https upstream's handshake uses upstream_tls.ca_file; without it, the fix names it."""
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    forward_proxy.cache_clear()
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    app = web.Application()
    app.router.add_get("/", public)
    server = await aiohttp_server(app, ssl=context)
    config = document(f"https://localhost:{server.port}", mode="none", probe={"method": "GET"})
    if trusted:
        ca_file = tmp_path / "corporate-ca.pem"
        authority.cert_pem.write_to_path(str(ca_file))
        config["upstream_tls"] = {"ca_file": str(ca_file)}
    code, out = await run_check(config, capsys)
    forward_proxy.cache_clear()
    if trusted:
        assert code == 0, out
        assert re.search(r"TLS: TLSv1\.[23], certificate for localhost, valid until ", out), out
        assert "✓ route orders: GET / → 200: unsigned, as configured" in out
    else:
        assert code == 1, out
        assert "TLS: the certificate was not accepted: unable to get local issuer" in out
        assert "put that authority's PEM in upstream_tls.ca_file" in out


async def test_credential_set_that_cannot_be_resolved(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A set naming a missing profile fails with botocore's reason and the fix."""
    sets = {"ci": {"profile": "nightly"}}
    config = document("http://127.0.0.1:9", credentials="ci", credential_sets=sets)
    code, out = await run_check(config, capsys)
    assert code == 1
    assert "✗ credentials ci: profile nightly" in out
    assert "The config profile (nightly) could not be found" in out
    assert "fix: create profile nightly (aws configure --profile nightly" in out
    assert "✗ route orders: not probed: credential set ci failed (above)" in out


async def test_cli_check_prints_verdicts_and_exits_with_their_code(
    local_sts: str, tmp_path: Path
) -> None:
    """`signing-proxy check --config` as a process: one passing, one wrong-region route; exit 1."""
    config = tmp_path / "proxy.yaml"
    async with Emulator(keys={KEY_ID: KEY}) as emulator:
        good = document(emulator.cloudfront_url)["routes"][0]
        bad = {**good, "name": "billing", "sign": {"region": "us-east-1"}}
        config.write_text(yaml.safe_dump({"routes": [good, bad]}))
        command = module_command("check", "--config", str(config), "--timeout", "5s")
        # The emulator runs on this loop: the child runs on a thread meanwhile.
        result = await asyncio.to_thread(run, command, env=child_env())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✓ route orders: HEAD / → 200" in result.stdout
    assert "✗ route billing: HEAD / → 403 InvalidSignatureException" in result.stdout
    assert "fix: set sign.region: eu-central-1 on route billing" in result.stdout
    assert result.stdout.rstrip().endswith("1 of 2 routes passes; exit code 1")
    assert not ANSI.search(result.stdout)  # not a terminal: plain text
    assert result.stderr == ""


CLOUDFRONT_PAGE = (
    '<H2>The request could not be satisfied.</H2>\n<HR noshade size="1px">\n{reason}\n<BR>'
)


@pytest.mark.parametrize(
    ("method", "status", "reason", "verdict", "fix"),
    [
        (
            "GET",
            502,
            "CloudFront wasn't able to connect to the origin.",
            "502: CloudFront could not get an answer from the function URL",
            f"fix: the distribution's origin must be {FUNCTION_HOST}, over HTTPS",
        ),
        (
            "GET",
            504,
            "CloudFront attempted to reach the origin, but it did not answer in time.",
            "504: CloudFront could not get an answer from the function URL",
            "fix: the function did not answer within the origin response timeout",
        ),
        (
            "HEAD",
            403,
            None,
            "403: refused by CloudFront itself (no x-amzn-ErrorType)",
            "fix: a reply to HEAD carries no page; probe with GET (probe: {method: GET})",
        ),
    ],
    ids=["502", "504", "403 to HEAD"],
)
def test_replies_cloudfront_made_itself(
    method: str, status: int, reason: str | None, verdict: str, fix: str
) -> None:
    """CloudFront's own errors (no Lambda request id) fail with the cause and its fix."""
    route = parse_config(document(f"https://{CLOUDFRONT_HOST}")).routes[0]
    body = CLOUDFRONT_PAGE.format(reason=reason).encode() if reason else b""
    reply = ProbeReply(
        method=method,
        target="/",
        status=status,
        headers=CIMultiDict({"X-Cache": "Error from cloudfront", "X-Amz-Cf-Id": "abc=="}),
        body=body,
        skew=0.0,
        canonical_request=None,
    )
    finding = judge(route, reply, None)
    assert finding.failed
    assert finding.headline == f"route orders: {method} / → {verdict}"
    assert any(f"fix: {line}".startswith(fix) for line in finding.fixes), finding.fixes
    assert "CloudFront request id: abc==" in finding.details


WEB_HOST = "abc123xyz.a1.lambda-web.eu-central-1.on.aws"
GLOBAL_HOST = "abc123xyz.lambda-web.global.on.aws"
SIGNER_SETS = {"signer": {"role_arn": ROLE_ARN}}
# What the emulator's function answers a valid signature it denies, as Lambda does.
FORBIDDEN = json.dumps({"Message": DENIED_MESSAGE}).encode()


def invoke_via_url(principal: str, indent: str) -> str:
    """The lambda:InvokeFunction grant check prints, its lines continued after ``indent``."""
    return (
        "aws lambda add-permission --function-name FN --region eu-central-1 \\\n"
        f"{indent}  --statement-id invoke-via-url --action lambda:InvokeFunction \\\n"
        f"{indent}  --principal {principal} --invoked-via-function-url"
    )


async def test_a_denied_function_url_asks_first_for_the_invoke_via_url_grant(
    local_sts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """After 2026-11-01 a denial most likely means lambda:InvokeFunction through the URL is
    missing: check says so and prints that command first, then the InvokeFunctionUrl one."""
    async with Emulator(keys={KEY_ID: KEY}, sts_url=local_sts, denied={ROLE_ARN}) as emulator:
        config = document(
            emulator.cloudfront_url, credentials="signer", credential_sets=SIGNER_SETS
        )
        code, out = await run_check(config, capsys)
    assert code == 1, out
    assert (
        "    most likely missing: lambda:InvokeFunction with the condition "
        "lambda:InvokedViaFunctionUrl, which AWS gave function URLs until 2026-11-01 to grant "
        "besides lambda:InvokeFunctionUrl\n"
    ) in out
    assert (
        "    fix: grant lambda:InvokeFunction through the function URL in the function's "
        f"resource policy (FN: the function whose URL is {FUNCTION_URL}):\n"
        "         " + invoke_via_url(ROLE_ARN, " " * 9) + "\n"
        "    fix: and lambda:InvokeFunctionUrl, if the policy lacks it too:\n"
        "         aws lambda add-permission --function-name FN --region eu-central-1 \\\n"
    ) in out
    assert "lambda:InvokeWebFunctionEndpoint" not in out


async def test_a_denied_web_function_endpoint_gets_its_own_action_and_policy(
    local_sts: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Web Function endpoint's denial names lambda:InvokeWebFunctionEndpoint on the endpoint's
    ARN, as a resource-policy statement for the role and an IAM one: no add-permission."""
    async with Emulator(
        keys={KEY_ID: KEY},
        function_host=WEB_HOST,
        region="eu-central-1",
        sts_url=local_sts,
        denied={ROLE_ARN},
    ) as emulator:
        config = document(
            emulator.cloudfront_url, credentials="signer", credential_sets=SIGNER_SETS
        )
        route = config["routes"][0]
        del route["function_url"]
        route["web_function"] = f"https://{WEB_HOST}"
        code, out = await run_check(config, capsys)
    assert code == 1, out
    endpoint = "arn:aws:lambda:eu-central-1:ACCOUNT:web-function/FN/endpoint/ENDPOINT"
    assert "403 AccessDeniedException: access denied" in out
    assert "the identity may not invoke the Web Function endpoint" in out
    assert f"needed: lambda:InvokeWebFunctionEndpoint on the endpoint's ARN {endpoint}" in out
    assert "inferred, not stated by AWS's pages: that put-resource-policy replaces" in out
    assert (
        "         aws lambda-web put-resource-policy \\\n"
        "           --region eu-central-1 --resource-arn "
        "arn:aws:lambda:eu-central-1:ACCOUNT:web-function/FN \\\n"
        '           --policy \'{"Version":"2012-10-17","Statement":[{"Sid":'
        '"signing-proxy-invoke-endpoint","Effect":"Allow","Principal":{"AWS":'
        f'"{ROLE_ARN}"}},"Action":"lambda:InvokeWebFunctionEndpoint","Resource":"{endpoint}"}}]}}\'\n'
    ) in out
    assert f"in the IAM policy of {ROLE_ARN}:" in out
    assert "add-permission" not in out
    assert "InvokeFunctionUrl," not in out


# What a Web Function endpoint answers a valid signature it denies (as the emulator words it).
WEB_FORBIDDEN = json.dumps(
    {
        "Message": f"User: {ROLE_ARN}/session is not authorized to perform: "
        f"lambda:InvokeWebFunctionEndpoint on resource: {GLOBAL_HOST} because no identity-based "
        "or resource-based policy allows the lambda:InvokeWebFunctionEndpoint action"
    }
).encode()


def _denied_reply(body: bytes = FORBIDDEN) -> ProbeReply:
    return ProbeReply(
        method="GET",
        target="/",
        status=403,
        headers=CIMultiDict(
            {"x-amzn-RequestId": "8f5c…", "x-amzn-ErrorType": "AccessDeniedException"}
        ),
        body=body,
        skew=0.0,
        canonical_request=None,
    )


@pytest.mark.parametrize("mode", ["iam", "oac"])
def test_a_global_web_function_endpoint_leaves_its_region_to_fill_in(mode: str) -> None:
    """A global endpoint's host names no region: the ARN and the CLI take REGION (the home
    region, inferred); through CloudFront the grant is for its distribution, with the opt-in
    Region caveat."""
    fields = {"web_function": f"https://{GLOBAL_HOST}", "mode": mode}
    config = document(f"https://{CLOUDFRONT_HOST}", credentials="signer", **fields)
    del config["routes"][0]["function_url"]
    config["credentials"] = SIGNER_SETS
    route = parse_config(config).routes[0]
    signer = Signer("signer", ROLE_ARN, f"{ROLE_ARN}/session", "refresh the role")
    finding = judge(route, _denied_reply(WEB_FORBIDDEN), signer if mode == "iam" else None)
    shown = "\n".join((*finding.details, *finding.fixes))
    assert finding.headline == "route orders: GET / → 403 AccessDeniedException: access denied"
    assert "arn:aws:lambda:REGION:ACCOUNT:web-function/FN/endpoint/ENDPOINT" in shown
    assert "--region REGION --resource-arn arn:aws:lambda:REGION:ACCOUNT:web-function/FN" in shown
    assert "REGION: the function's home region" in shown
    assert "that a global endpoint's ARN names the function's home region" in shown
    assert "add-permission" not in shown
    if mode == "oac":
        assert '"Principal":{"Service":"cloudfront.amazonaws.com"}' in shown
        assert '"AWS:SourceArn":"arn:aws:cloudfront::ACCOUNT:distribution/DISTRIBUTION_ID"' in shown
        assert "global endpoint that routes to an opt-in Region" in shown
    else:
        assert f'"Principal":{{"AWS":"{ROLE_ARN}"}}' in shown


@pytest.mark.parametrize(
    ("mode", "principal"),
    [
        (
            "oac",
            "cloudfront.amazonaws.com --source-arn "
            "arn:aws:cloudfront::ACCOUNT:distribution/DISTRIBUTION_ID",
        ),
        ("none", "'*'"),
    ],
)
def test_a_function_url_denied_to_cloudfront_or_to_everyone(mode: str, principal: str) -> None:
    """Through OAC the grant is CloudFront's; unsigned (mode none), the URL's auth type is
    AWS_IAM or NONE without the public grant: both fixes are printed."""
    route = parse_config(document(f"https://{CLOUDFRONT_HOST}", mode=mode)).routes[0]
    finding = judge(route, _denied_reply(), None)
    fixes = "\n".join(finding.fixes)
    assert invoke_via_url(principal, "") in fixes
    assert "--action lambda:InvokeFunctionUrl" in fixes
    if mode == "none":
        assert fixes.startswith("set mode: iam and function_url on route orders")
        assert "--principal '*' --function-url-auth-type NONE" in fixes
    else:
        assert any("most likely missing: lambda:InvokeFunction" in d for d in finding.details)


async def test_a_global_web_function_endpoint_passes_signed_with_sigv4a(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check probes a global endpoint as serve sends to it: SigV4a, which it accepts."""
    async with Emulator(keys={KEY_ID: KEY}, function_host=GLOBAL_HOST) as emulator:
        config = document(emulator.cloudfront_url)
        route = config["routes"][0]
        del route["function_url"]
        route["web_function"] = f"https://{GLOBAL_HOST}"
        code, out = await run_check(config, capsys)
    assert code == 0, out
    assert "✓ route orders: HEAD / → 200: signature accepted; the function answered 200" in out
