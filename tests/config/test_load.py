"""The config loader: YAML and flags into frozen objects, every mistake one precise line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.load import load_config, parse_config, quick_config
from proxy.config.values import parse_duration, parse_size
from proxy.errors import ConfigError
from proxy.model import (
    Address,
    Config,
    CredentialSet,
    HeaderRules,
    Probe,
    Route,
    SigningTarget,
    Timeouts,
    Upstream,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
CLOUDFRONT = "https://d111111abcdef8.cloudfront.net"
FUNCTION_URL = "https://abc123xyz.lambda-url.eu-central-1.on.aws"
FUNCTION_HOST = "abc123xyz.lambda-url.eu-central-1.on.aws"
ROLE = "arn:aws:iam::123456789012:role/invoker"

MINIMAL = """\
listen: 127.0.0.1:8080
routes:
  - name: orders
    path_prefix: /
    upstream: https://d111111abcdef8.cloudfront.net
    function_url: https://abc123xyz.lambda-url.eu-central-1.on.aws
    mode: iam            # iam | oac | none
"""


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's temporary directory as the working directory, for relative file names."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _route(**fields: Any) -> dict[str, Any]:
    """A valid route with ``fields`` replacing or adding keys; a value of ... removes the key."""
    route: dict[str, Any] = {"name": "orders", "upstream": CLOUDFRONT, "function_url": FUNCTION_URL}
    route.update(fields)
    return {key: value for key, value in route.items() if value is not ...}


def _doc(*routes: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A config document with ``routes`` (one valid route by default) and top-level ``top``."""
    return {"routes": list(routes) or [_route()], **top}


def _routed(**fields: Any) -> dict[str, Any]:
    """A document with one route: the valid route with ``fields`` applied."""
    return _doc(_route(**fields))


def _case(case_id: str, data: object, path: str, *fragments: str) -> Any:
    """A row of the error table: the document, the key path, and phrases of the message."""
    return pytest.param(data, path, fragments, id=case_id)


def _one_route(**fields: Any) -> Route:
    return parse_config(_doc(_route(**fields))).routes[0]


def _error(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value


# --- what loads -------------------------------------------------------------------------------


def test_minimal_file_loads_to_expected_objects(tmp_path: Path) -> None:
    """The issue's minimal file loads exactly as written into the documented objects."""
    config = load_config(_write(tmp_path, MINIMAL))
    route = Route(
        name="orders",
        upstream=Upstream("https", "d111111abcdef8.cloudfront.net", 443, ""),
        path_prefix="/",
        mode="iam",
        signing=SigningTarget(FUNCTION_HOST, "eu-central-1", "lambda"),
    )
    assert config == Config(
        routes=(route,),
        listen=Address("127.0.0.1", 8080),
        credentials=(CredentialSet("default"),),
    )


EXAMPLE_SECRETS = (
    *("ADMIN_PASSWORD", "GITHUB_WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET", "PARTNER_API_KEY"),
    "WEBHOOK_HMAC_SECRET",
)


def test_example_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """config.example.yaml, shipped as documentation, is a valid config."""
    for name in EXAMPLE_SECRETS:
        monkeypatch.setenv(name, f"example-{name.lower()}")
    config = load_config(EXAMPLE)
    assert [route.mode for route in config.routes].count("oac") == 1
    assert config.routes[-1].name == "orders"
    assert config.credentials[0] == CredentialSet("default")


def test_example_file_uses_every_key() -> None:
    """Every key the loader accepts appears in config.example.yaml at least once."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    routes, sets = data["routes"], data["credentials"].values()
    used = {
        "top": set(data),
        "client_timeouts": set(data["client_timeouts"]),
        "inbound": {key for route in routes for key in route.get("inbound", {})},
        "rate_limit": {key for route in routes for key in route.get("rate_limit", {})},
        "retries": {key for route in routes for key in route.get("retries", {})},
        "probe": {key for route in routes for key in route.get("probe", {})},
        "route": {key for route in routes for key in route},
        "sign": {key for route in routes for key in route.get("sign", {})},
        "headers": {key for route in routes for key in route.get("headers", {})},
        "timeouts": {key for route in routes for key in route.get("timeouts", {})},
        "set": {key for item in sets for key in item},
    }
    assert used == {
        # tls and upstream_tls are documented in the comments: they need real PEM files;
        # reload_token_env and _file too: the variable or file would have to exist.
        "top": {
            *("listen", "routes", "credentials", "allow_unauthenticated", "client_timeouts"),
            *("admin", "shutdown_grace", "allowed_hosts"),
        },
        "client_timeouts": {"headers", "body", "body_total"},
        # secret_file is documented in the comments: a path would not exist where tests run.
        "inbound": {
            *("type", "secret_env", "header", "encoding", "prefix", "username", "tolerance"),
            *("allow_ips", "trusted_proxies"),
        },
        "rate_limit": {"rate", "burst"},
        "retries": {"attempts", "backoff", "max_backoff", "budget", "statuses", "methods"},
        "route": {
            *("name", "path_prefix", "upstream", "mode", "function_url", "sign", "methods"),
            *("host", "strip_prefix", "headers", "max_body", "timeouts", "credentials"),
            *("inbound", "rate_limit", "max_concurrent", "max_connections", "retries"),
            *("probe", "allowed_origins", "allow_encoded_slashes"),
        },
        "probe": {"method", "path"},
        "sign": {"host", "region", "service"},
        "headers": {"add", "remove"},
        "timeouts": {"connect", "first_byte", "idle", "total"},
        "set": {"profile", "role_arn", "external_id", "session_name", "duration", "source"},
    }


def test_defaults() -> None:
    """Absent keys take the documented defaults."""
    config = parse_config({"routes": [{"name": "r", "upstream": CLOUDFRONT, "mode": "none"}]})
    assert config.listen == Address("127.0.0.1", 8080)
    assert config.credentials == (CredentialSet("default"),)
    assert config.routes[0] == Route(
        name="r",
        upstream=Upstream("https", "d111111abcdef8.cloudfront.net", 443, ""),
        path_prefix="/",
        mode="none",
        signing=None,
        methods=None,
        host=None,
        strip_prefix=False,
        headers=HeaderRules(),
        max_body=6 * 1024 * 1024,
        timeouts=Timeouts(connect=10.0, first_byte=960.0, idle=960.0, total=None),
        credentials="default",
    )


def test_every_route_key_is_stored() -> None:
    """Each route key lands in its field, normalised as documented."""
    route = _one_route(
        path_prefix="/api/v1/",
        upstream="https://API.Example.com:8443/prod/",
        methods=["get", "POST"],
        host="*.Example.COM",
        strip_prefix=True,
        headers={"add": {"X-Team": "orders"}, "remove": ["X-Debug"]},
        max_body="1MiB",
        timeouts={"connect": "500ms", "first_byte": 30, "idle": "2m", "total": "1h"},
        credentials="default",
    )
    assert route.path_prefix == "/api/v1/"
    assert route.upstream == Upstream("https", "api.example.com", 8443, "/prod")
    assert route.methods == frozenset({"GET", "POST"})
    assert route.host == "*.example.com"
    assert route.strip_prefix is True
    assert route.headers == HeaderRules(add=(("X-Team", "orders"),), remove=frozenset({"x-debug"}))
    assert route.max_body == 1024 * 1024
    assert route.timeouts == Timeouts(connect=0.5, first_byte=30.0, idle=120.0, total=3600.0)


@pytest.mark.parametrize(
    ("fields", "probe"),
    [
        ({}, Probe("HEAD", None)),
        ({"probe": {"method": "get"}}, Probe("GET", None)),
        (
            {"path_prefix": "/api", "probe": {"path": "/api/health?deep=1"}},
            Probe("HEAD", "/api/health?deep=1"),
        ),
        ({"probe": None}, Probe("HEAD", None)),
    ],
)
def test_probe(fields: dict[str, Any], probe: Probe) -> None:
    """A route's probe defaults to HEAD on its path_prefix; method and path are kept as given."""
    assert _one_route(**fields).probe == probe


@pytest.mark.parametrize(
    ("url", "upstream"),
    [
        pytest.param(
            CLOUDFRONT, Upstream("https", "d111111abcdef8.cloudfront.net", 443, ""), id="cloudfront"
        ),
        pytest.param("http://127.0.0.1:9000", Upstream("http", "127.0.0.1", 9000, ""), id="http"),
        pytest.param("http://localhost/", Upstream("http", "localhost", 80, ""), id="root-path"),
        pytest.param("HTTPS://Edge.Example.com/a/b//", None, id="empty-segment-refused"),
        pytest.param(
            "https://x.example.com/a/b/", Upstream("https", "x.example.com", 443, "/a/b"), id="base"
        ),
        pytest.param("http://[::1]:8081/api", Upstream("http", "::1", 8081, "/api"), id="ipv6"),
        pytest.param("http://my_service:80", Upstream("http", "my_service", 80, ""), id="docker"),
    ],
)
def test_upstream_urls(url: str, upstream: Upstream | None) -> None:
    """Upstreams: scheme, lower-cased host, default ports, base path without trailing slash."""
    if upstream is None:
        assert _error(_doc(_route(upstream=url))).path == "routes[0].upstream"
    else:
        assert _one_route(upstream=url).upstream == upstream


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        pytest.param(
            {"function_url": "https://ABC123xyz.Lambda-Url.EU-central-1.on.aws/"},
            SigningTarget(FUNCTION_HOST, "eu-central-1", "lambda"),
            id="function-url-lower-cased",
        ),
        pytest.param(
            {"function_url": ..., "sign": {"host": "a1b2c3.execute-api.us-west-2.amazonaws.com"}},
            SigningTarget("a1b2c3.execute-api.us-west-2.amazonaws.com", "us-west-2", "execute-api"),
            id="execute-api-implied",
        ),
        pytest.param(
            {"function_url": ..., "sign": {"host": "x.lambda-url.us-gov-west-1.on.aws"}},
            SigningTarget("x.lambda-url.us-gov-west-1.on.aws", "us-gov-west-1", "lambda"),
            id="function-url-host-implied",
        ),
        pytest.param(
            {
                "sign": {
                    "host": "Api.Example.com",
                    "region": "il-central-1",
                    "service": "vpc-lattice",
                }
            },
            SigningTarget("api.example.com", "il-central-1", "vpc-lattice"),
            id="explicit",
        ),
        pytest.param(
            {"sign": {"region": "mx-central-1"}},
            SigningTarget(FUNCTION_HOST, "mx-central-1", "lambda"),
            id="sign-overrides-function-url",
        ),
        pytest.param(
            {"sign": {"host": "custom.example.com"}},
            SigningTarget("custom.example.com", "eu-central-1", "lambda"),
            id="function-url-fills-the-rest",
        ),
        pytest.param(
            {"sign": None}, SigningTarget(FUNCTION_HOST, "eu-central-1", "lambda"), id="sign-null"
        ),
        pytest.param(
            {"mode": "oac"}, SigningTarget(FUNCTION_HOST, "eu-central-1", "lambda"), id="oac-keeps"
        ),
        pytest.param({"mode": "none", "function_url": ...}, None, id="none-without-target"),
    ],
)
def test_signing_target(fields: dict[str, Any], target: SigningTarget | None) -> None:
    """function_url supplies defaults, sign's fields override them, known hosts imply the rest."""
    assert _one_route(**fields).signing == target


def test_credential_sets_in_file_order_with_implicit_default_first() -> None:
    """Sets keep file order; "default" (the botocore chain) comes first unless defined."""
    config = parse_config(
        _doc(
            credentials={
                "dev": {"profile": "dev"},
                "ci": {
                    "role_arn": ROLE,
                    "external_id": "ext-1",
                    "session_name": "proxy",
                    "duration": "1h",
                },
                "chained": {"source": "ci", "role_arn": ROLE, "duration": 900},
                "empty": None,
            }
        )
    )
    assert config.credentials == (
        CredentialSet("default"),
        CredentialSet("dev", profile="dev"),
        CredentialSet(
            "ci", role_arn=ROLE, external_id="ext-1", session_name="proxy", duration=3600
        ),
        CredentialSet("chained", role_arn=ROLE, duration=900, source="ci"),
        CredentialSet("empty"),
    )


def test_defined_default_set_replaces_the_implicit_one() -> None:
    """A set named "default" in the file is the default, in its file position."""
    config = parse_config(_doc(credentials={"dev": {}, "default": {"profile": "work"}}))
    assert config.credentials == (CredentialSet("dev"), CredentialSet("default", profile="work"))
    assert config.credential_set("default").profile == "work"


@pytest.mark.parametrize("total", [None, False, "off"], ids=["null", "yaml-off", "string-off"])
def test_total_timeout_off(total: object) -> None:
    """timeouts.total may be off (YAML false) or null: no overall bound."""
    assert _one_route(timeouts={"total": total}).timeouts.total is None


def test_ipv6_listen(tmp_path: Path) -> None:
    """A quoted bracketed IPv6 listen address loads and prints back in brackets."""
    path = _write(tmp_path, MINIMAL.replace("127.0.0.1:8080", '"[::1]:8080"'))
    listen = load_config(path).listen
    assert listen == Address("::1", 8080)
    assert str(listen) == "[::1]:8080"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:0", Address("0.0.0.0", 0)),  # noqa: S104 - parsing, not binding
        ("LocalHost:65535", Address("localhost", 65535)),
        ("[0:0::1]:80", Address("::1", 80)),
    ],
)
def test_listen_addresses(text: str, address: Address) -> None:
    """listen takes host names, IPv4 and bracketed IPv6, ports 0-65535."""
    document = _doc(listen=text, allow_unauthenticated=True)
    assert parse_config(document).listen == address


# --- durations and sizes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("2s", 2.0),
        ("15m", 900.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        (" 2 s ", 2.0),
        ("30", 30.0),
        (30, 30.0),
        (2.5, 2.5),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    """Durations: ms, s, m, h suffixes, or plain seconds as numbers or strings."""
    assert parse_duration(value, path="x") == seconds


@pytest.mark.parametrize(
    "value",
    [0, "0s", -1, "-1s", "2x", "2 hours", "1h30m", "", True, None, float("inf"), float("nan"), []],
)
def test_invalid_durations(value: object) -> None:
    """Zero, negative, unknown units, booleans and non-finite numbers are not durations."""
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, path="routes[0].timeouts.idle")
    assert caught.value.path == "routes[0].timeouts.idle"
    assert "expected e.g. 500ms, 2s, 15m, 1h or a number of seconds" in caught.value.message


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        (1048576, 1048576),
        ("1048576", 1048576),
        ("100B", 100),
        ("512KiB", 512 * 1024),
        ("6MiB", 6 * 1024 * 1024),
        ("1GiB", 1024**3),
        ("10MB", 10_000_000),
        ("10KB", 10_000),
        ("1.5MiB", 1572864),
        ("6 mib", 6 * 1024 * 1024),
    ],
)
def test_sizes(value: object, size: int) -> None:
    """Sizes: bytes as integers, or decimal (KB, MB) and binary (KiB, MiB) units."""
    assert parse_size(value, path="x") == size


@pytest.mark.parametrize("value", [-1, "6 megs", "1.5B", "MiB", True, 1.5, None, "1e6"])
def test_invalid_sizes(value: object) -> None:
    """Negative, fractional bytes, booleans, floats and unknown units are not sizes."""
    with pytest.raises(ConfigError) as caught:
        parse_size(value, path="routes[0].max_body")
    assert caught.value.path == "routes[0].max_body"
    assert "expected" in caught.value.message


# --- every validation error, one case each ----------------------------------------------------

TWO_ORDERS = _doc(_route(), _route())
NON_STRING_KEY: dict[str, Any] = {"routes": [{**_route(), 1: 1}]}
CASES = [
    # top level
    _case("empty-document", None, "", "empty", "expected a mapping"),
    _case("document-not-mapping", ["x"], "", "a list", "expected a mapping"),
    _case("listen-no-port", _doc(listen="localhost"), "listen", "'localhost'", "HOST:PORT"),
    _case("listen-bare-ipv6", _doc(listen="::1:80"), "listen", "'::1:80'", "[::1]:8080"),
    _case("listen-bad-ipv6", _doc(listen="[::g]:80"), "listen", "'[::g]:80'", "IPv6"),
    _case("listen-port-range", _doc(listen="h:70000"), "listen", "'h:70000'", "0-65535"),
    _case("listen-bad-host", _doc(listen="a b:80"), "listen", "'a b:80'", "HOST:PORT"),
    _case("listen-not-string", _doc(listen=8080), "listen", "8080", "HOST:PORT"),
    _case("routes-missing", {}, "routes", "required", "list of routes"),
    _case("routes-empty", {"routes": []}, "routes", "empty list", "list of routes"),
    _case("routes-not-list", {"routes": "r"}, "routes", "'r'", "list of routes"),
    _case("route-not-mapping", {"routes": ["r"]}, "routes[0]", "'r'", "expected a route"),
    # route name
    _case("name-missing", _routed(name=...), "routes[0].name", "required", "e.g. orders"),
    _case(
        "name-chars", _routed(name="my route"), "routes[0].name", "'my route'", "letters, digits"
    ),
    _case("name-start", _routed(name="-x"), "routes[0].name", "'-x'", "starting with a letter"),
    _case("name-too-long", _routed(name="a" * 65), "routes[0].name", "'aaaa", "up to 64"),
    _case("name-number", _routed(name=7), "routes[0].name", "7 is a number", 'in quotes, "7"'),
    _case("name-not-string", _routed(name=[]), "routes[0].name", "a list", "letters, digits"),
    _case(
        "retries-attempts-zero",
        _routed(retries={"attempts": 0}),
        "routes[0].retries.attempts",
        "0 is not a whole number >= 1",
        "e.g. 3",
    ),
    _case(
        "admin-is-listen",
        _doc(listen="127.0.0.1:8080", admin="127.0.0.1:8080"),
        "admin",
        "'127.0.0.1:8080' is the proxy's listen address",
        "another port",
    ),
    _case(
        "admin-under-wildcard-listen",
        _doc(listen="0.0.0.0:8080", admin="127.0.0.1:8080", allow_unauthenticated=True),
        "admin",
        "listen address '0.0.0.0:8080'",
    ),
    _case("name-duplicate", TWO_ORDERS, "routes[1].name", "'orders'", "routes[0]", "unique"),
    # path_prefix
    _case(
        "prefix-relative",
        _routed(path_prefix="api"),
        "routes[0].path_prefix",
        "'api'",
        "start with '/'",
    ),
    _case("prefix-query", _routed(path_prefix="/a?b"), "routes[0].path_prefix", "'/a?b'", "'?'"),
    _case("prefix-fragment", _routed(path_prefix="/a#b"), "routes[0].path_prefix", "'/a#b'", "'#'"),
    _case(
        "prefix-space", _routed(path_prefix="/a b"), "routes[0].path_prefix", "'/a b'", "whitespace"
    ),
    _case("prefix-non-ascii", _routed(path_prefix="/é"), "routes[0].path_prefix", "'/é'", "%C3%A9"),
    _case(
        "prefix-unsafe-char", _routed(path_prefix='/a"b'), "routes[0].path_prefix", "'/a\"b'", "%22"
    ),
    _case(
        "prefix-dot-dot",
        _routed(path_prefix="/a/../b"),
        "routes[0].path_prefix",
        "'/a/../b'",
        "'..'",
    ),
    _case("prefix-dot", _routed(path_prefix="/a/./b"), "routes[0].path_prefix", "'/a/./b'", "'.'"),
    _case(
        "prefix-empty-segment",
        _routed(path_prefix="/a//b"),
        "routes[0].path_prefix",
        "'/a//b'",
        "'//'",
    ),
    _case(
        "prefix-unreserved-escape",
        _routed(path_prefix="/%7Eu"),
        "routes[0].path_prefix",
        "'/%7Eu'",
        "'~'",
    ),
    _case(
        "prefix-lower-escape",
        _routed(path_prefix="/a%2fb"),
        "routes[0].path_prefix",
        "'/a%2fb'",
        "'%2F'",
    ),
    _case(
        "prefix-bad-escape", _routed(path_prefix="/a%zz"), "routes[0].path_prefix", "'/a%zz'", "%25"
    ),
    _case("prefix-null", _routed(path_prefix=None), "routes[0].path_prefix", "null", "/api/"),
    # upstream
    _case("upstream-missing", _routed(upstream=...), "routes[0].upstream", "required", CLOUDFRONT),
    _case(
        "upstream-scheme",
        _routed(upstream="ftp://x"),
        "routes[0].upstream",
        "'ftp://x' is not an http(s) URL",
        CLOUDFRONT,
    ),
    _case(
        "upstream-no-scheme",
        _routed(upstream="d1.cloudfront.net"),
        "routes[0].upstream",
        "'d1.cloudfront.net'",
        CLOUDFRONT,
    ),
    _case(
        "upstream-query",
        _routed(upstream="https://h/?a=1"),
        "routes[0].upstream",
        "'https://h/?a=1'",
        "query",
    ),
    _case(
        "upstream-fragment",
        _routed(upstream="https://h/#f"),
        "routes[0].upstream",
        "'https://h/#f'",
        "fragment",
    ),
    _case(
        "upstream-port-range",
        _routed(upstream="https://h:99999"),
        "routes[0].upstream",
        "'https://h:99999'",
        "port",
    ),
    _case(
        "upstream-port-zero",
        _routed(upstream="https://h:0"),
        "routes[0].upstream",
        "'https://h:0'",
        "1-65535",
    ),
    _case(
        "upstream-no-host",
        _routed(upstream="https:///p"),
        "routes[0].upstream",
        "'https:///p'",
        "host",
    ),
    _case(
        "upstream-space",
        _routed(upstream="https://h x"),
        "routes[0].upstream",
        "'https://h x'",
        "whitespace",
    ),
    _case(
        "upstream-dot-path",
        _routed(upstream="https://h/a/../b"),
        "routes[0].upstream",
        "'https://h/a/../b'",
        "'..'",
    ),
    # mode
    _case(
        "mode-unknown",
        _routed(mode="iams"),
        "routes[0].mode",
        "'iams'",
        "iam, oac, none",
        "did you mean 'iam'?",
    ),
    _case(
        "iam-without-target",
        _routed(function_url=...),
        "routes[0]",
        "mode iam needs function_url or sign",
    ),
    # function_url
    _case(
        "function-url-http",
        _routed(function_url="http://a.lambda-url.us-east-1.on.aws"),
        "routes[0].function_url",
        "is not an https URL",
        "e.g. https://",
    ),
    _case(
        "function-url-host",
        _routed(function_url="https://example.com"),
        "routes[0].function_url",
        "'https://example.com'",
        "lambda-url.<region>.on.aws",
    ),
    _case(
        "function-url-region",
        _routed(function_url="https://a.lambda-url.eu-central.on.aws"),
        "routes[0].function_url",
        "'eu-central' is not an AWS region",
        "eu-central-1",
    ),
    _case(
        "function-url-path",
        _routed(function_url=FUNCTION_URL + "/x"),
        "routes[0].function_url",
        "/x'",
        "only scheme and host",
    ),
    _case(
        "function-url-port",
        _routed(function_url=FUNCTION_URL + ":443"),
        "routes[0].function_url",
        ":443'",
        "only scheme and host",
    ),
    _case(
        "function-url-query",
        _routed(function_url=FUNCTION_URL + "?q"),
        "routes[0].function_url",
        "?q'",
        "query",
    ),
    # sign
    _case(
        "sign-not-mapping", _routed(sign="x"), "routes[0].sign", "'x'", "host, region and service"
    ),
    _case(
        "sign-host-url",
        _routed(sign={"host": "https://x.example.com"}),
        "routes[0].sign.host",
        "'https://x.example.com'",
        "without scheme",
    ),
    _case(
        "sign-host-port",
        _routed(sign={"host": "x.example.com:443"}),
        "routes[0].sign.host",
        "'x.example.com:443'",
        "port",
    ),
    _case(
        "sign-region",
        _routed(sign={"region": "eu-central"}),
        "routes[0].sign.region",
        "'eu-central' is not an AWS region (expected e.g. eu-central-1)",
    ),
    _case(
        "sign-service",
        _routed(sign={"service": "Lambda"}),
        "routes[0].sign.service",
        "'Lambda'",
        "lower-case",
    ),
    _case(
        "sign-host-missing",
        _routed(function_url=..., sign={"region": "us-east-1"}),
        "routes[0].sign.host",
        "required without function_url",
        "bare host name",
    ),
    _case(
        "sign-region-missing",
        _routed(function_url=..., sign={"host": "api.example.com"}),
        "routes[0].sign.region",
        "'api.example.com'",
        "AWS region",
    ),
    _case(
        "sign-service-missing",
        _routed(function_url=..., sign={"host": "api.example.com", "region": "us-east-1"}),
        "routes[0].sign.service",
        "'api.example.com'",
        "execute-api",
    ),
    # methods
    _case("methods-not-list", _routed(methods="GET"), "routes[0].methods", "'GET'", "[GET, POST]"),
    _case(
        "probe-changes-things",
        _routed(probe={"method": "POST"}),
        "routes[0].probe.method",
        "'POST'",
        "HEAD, GET, OPTIONS",
    ),
    _case(
        "probe-elsewhere",
        _routed(path_prefix="/api", probe={"path": "/apis/health"}),
        "routes[0].probe.path",
        "'/apis/health'",
        "'/api'",
    ),
    _case(
        "probe-path-not-path",
        _routed(probe={"path": "health"}),
        "routes[0].probe.path",
        "'health'",
        "does not start with '/'",
    ),
    _case(
        "methods-empty", _routed(methods=[]), "routes[0].methods", "empty list", "leave methods out"
    ),
    _case(
        "method-not-a-token",
        _routed(methods=["GET", "GET /"]),
        "routes[0].methods[1]",
        "'GET /'",
        "GET, HEAD, POST",
    ),
    _case(
        "method-connect",
        _routed(methods=["connect"]),
        "routes[0].methods[0]",
        "'connect'",
        "tunnel",
        "GET, HEAD",
    ),
    _case(
        "method-trace",
        _routed(methods=["TRACE"]),
        "routes[0].methods[0]",
        "'TRACE'",
        "echo",
        "GET, HEAD",
    ),
    _case(
        "method-not-string", _routed(methods=[1]), "routes[0].methods[0]", "1 is not", "GET, HEAD"
    ),
    # host
    _case(
        "host-port",
        _routed(host="api.example.com:8080"),
        "routes[0].host",
        "'api.example.com:8080'",
        "without a port",
    ),
    _case("host-bare-wildcard", _routed(host="*"), "routes[0].host", "'*'", "*.example.com"),
    _case(
        "host-inner-wildcard",
        _routed(host="a.*.com"),
        "routes[0].host",
        "'a.*.com'",
        "*.example.com",
    ),
    # strip_prefix
    _case(
        "strip-prefix-string",
        _routed(strip_prefix="yes"),
        "routes[0].strip_prefix",
        "'yes'",
        "true or false",
    ),
    # headers
    _case(
        "headers-not-mapping",
        _routed(headers=["X-A"]),
        "routes[0].headers",
        "a list",
        "add and remove",
    ),
    _case(
        "headers-add-not-mapping",
        _routed(headers={"add": "X-A: 1"}),
        "routes[0].headers.add",
        "'X-A: 1'",
        "X-Team: orders",
    ),
    _case(
        "header-name-space",
        _routed(headers={"add": {"X A": "1"}}),
        "routes[0].headers.add.X A",
        "'X A'",
        "letters, digits",
    ),
    _case(
        "header-add-authorization",
        _routed(headers={"add": {"Authorization": "x"}}),
        "routes[0].headers.add.Authorization",
        "'Authorization'",
        "proxy sets itself",
    ),
    _case(
        "header-add-amz-date",
        _routed(headers={"add": {"X-Amz-Date": "x"}}),
        "routes[0].headers.add.X-Amz-Date",
        "'X-Amz-Date'",
        "proxy sets itself",
    ),
    _case(
        "header-add-request-id",
        _routed(headers={"add": {"X-Request-Id": "x"}}),
        "routes[0].headers.add.X-Request-Id",
        "'X-Request-Id'",
        "proxy sets itself",
    ),
    _case(
        "header-add-other-amz",
        _routed(headers={"add": {"X-Amz-Target": "x"}}),
        "routes[0].headers.add.X-Amz-Target",
        "'X-Amz-Target'",
        "requires to be signed",
    ),
    _case(
        "header-add-proxy-star",
        _routed(headers={"add": {"Proxy-Foo": "x"}}),
        "routes[0].headers.add.Proxy-Foo",
        "'Proxy-Foo'",
        "proxy sets itself",
    ),
    _case(
        "header-value-number",
        _routed(headers={"add": {"X-N": 1}}),
        "routes[0].headers.add.X-N",
        "1 is not a string",
        "quote",
    ),
    _case(
        "header-value-crlf",
        _routed(headers={"add": {"X-N": "a\r\nB: c"}}),
        "routes[0].headers.add.X-N",
        "'a\\r\\nB: c'",
        "one-line",
    ),
    _case(
        "header-value-nul",
        _routed(headers={"add": {"X-N": "a\x00"}}),
        "routes[0].headers.add.X-N",
        "'a\\x00'",
        "one-line",
    ),
    _case(
        "header-add-twice",
        _routed(headers={"add": {"X-N": "1", "x-n": "2"}}),
        "routes[0].headers.add.x-n",
        "'x-n' repeats 'X-N'",
        "case-insensitive",
    ),
    _case(
        "headers-remove-not-list",
        _routed(headers={"remove": "X-A"}),
        "routes[0].headers.remove",
        "'X-A'",
        "[X-Debug]",
    ),
    _case(
        "header-remove-host",
        _routed(headers={"remove": ["Host"]}),
        "routes[0].headers.remove[0]",
        "'Host'",
        "proxy sets itself",
    ),
    _case(
        "header-remove-null",
        _routed(headers={"remove": [None]}),
        "routes[0].headers.remove[0]",
        "null",
        "letters, digits",
    ),
    _case(
        "header-add-and-remove",
        _routed(headers={"add": {"X-A": "1"}, "remove": ["x-a"]}),
        "routes[0].headers.remove",
        "'x-a'",
        "either added or removed",
    ),
    # max_body
    _case("max-body-unit", _routed(max_body="6 megs"), "routes[0].max_body", "'6 megs'", "6MiB"),
    _case("max-body-negative", _routed(max_body=-1), "routes[0].max_body", "-1", ">= 0"),
    _case(
        "max-body-fraction",
        _routed(max_body="1.5B"),
        "routes[0].max_body",
        "'1.5B'",
        "whole number",
    ),
    _case("max-body-boolean", _routed(max_body=True), "routes[0].max_body", "true", "6MiB"),
    # timeouts
    _case(
        "timeouts-not-mapping",
        _routed(timeouts=5),
        "routes[0].timeouts",
        "5",
        "connect, first_byte",
    ),
    _case(
        "timeout-unit",
        _routed(timeouts={"connect": "2x"}),
        "routes[0].timeouts.connect",
        "'2x'",
        "500ms",
    ),
    _case(
        "timeout-zero",
        _routed(timeouts={"first_byte": 0}),
        "routes[0].timeouts.first_byte",
        "0 is not more than zero",
        "500ms",
    ),
    _case(
        "timeout-boolean",
        _routed(timeouts={"idle": True}),
        "routes[0].timeouts.idle",
        "true",
        "500ms",
    ),
    _case(
        "timeout-total",
        _routed(timeouts={"total": "forever"}),
        "routes[0].timeouts.total",
        "'forever'",
        "or off",
    ),
    # credentials reference
    _case(
        "route-credentials-unknown",
        _doc(_route(credentials="prod"), credentials={"prd": {}}),
        "routes[0].credentials",
        "'prod'",
        "default, prd",
        "did you mean 'prd'?",
    ),
    # credential sets
    _case(
        "credentials-not-mapping",
        _doc(credentials=["a"]),
        "credentials",
        "a list",
        "ci: {profile: ci}",
    ),
    _case(
        "set-name",
        _doc(credentials={"bad name": {}}),
        "credentials.bad name",
        "'bad name'",
        "letters, digits",
    ),
    _case(
        "set-not-mapping",
        _doc(credentials={"ci": "dev"}),
        "credentials.ci",
        "'dev'",
        "profile, role_arn",
    ),
    _case(
        "set-profile",
        _doc(credentials={"ci": {"profile": ""}}),
        "credentials.ci.profile",
        "''",
        "~/.aws/config",
    ),
    _case(
        "set-role-arn",
        _doc(credentials={"ci": {"role_arn": "arn:aws:iam::123:role/x"}}),
        "credentials.ci.role_arn",
        "'arn:aws:iam::123:role/x'",
        "arn:aws:iam::123456789012:role/name",
    ),
    _case(
        "set-role-arn-user",
        _doc(credentials={"ci": {"role_arn": "arn:aws:iam::123456789012:user/x"}}),
        "credentials.ci.role_arn",
        ":user/x'",
        "role/name",
    ),
    _case(
        "set-external-id-alone",
        _doc(credentials={"ci": {"external_id": "abc"}}),
        "credentials.ci.external_id",
        "'abc' needs role_arn",
        "expected role_arn",
    ),
    _case(
        "set-external-id",
        _doc(credentials={"ci": {"role_arn": ROLE, "external_id": "a b"}}),
        "credentials.ci.external_id",
        "'a b'",
        "2-1224",
    ),
    _case(
        "set-session-alone",
        _doc(credentials={"ci": {"session_name": "s1"}}),
        "credentials.ci.session_name",
        "'s1' needs role_arn",
        "expected role_arn",
    ),
    _case(
        "set-session-name",
        _doc(credentials={"ci": {"role_arn": ROLE, "session_name": "s" * 65}}),
        "credentials.ci.session_name",
        "'sss",
        "2-64",
    ),
    _case(
        "set-duration-alone",
        _doc(credentials={"ci": {"duration": "1h"}}),
        "credentials.ci.duration",
        "'1h' needs role_arn",
        "expected role_arn",
    ),
    _case(
        "set-duration-short",
        _doc(credentials={"ci": {"role_arn": ROLE, "duration": "5m"}}),
        "credentials.ci.duration",
        "'5m'",
        "15m to 12h",
    ),
    _case(
        "set-duration-long",
        _doc(credentials={"ci": {"role_arn": ROLE, "duration": "13h"}}),
        "credentials.ci.duration",
        "'13h'",
        "15m to 12h",
    ),
    _case(
        "set-duration-fraction",
        _doc(credentials={"ci": {"role_arn": ROLE, "duration": 900.5}}),
        "credentials.ci.duration",
        "900.5",
        "whole seconds",
    ),
    _case(
        "set-source-alone",
        _doc(credentials={"ci": {"source": "default"}}),
        "credentials.ci.source",
        "'default' needs role_arn",
        "expected role_arn",
    ),
    _case(
        "set-source-unknown",
        _doc(credentials={"ci": {"role_arn": ROLE, "source": "dve"}, "dev": {}}),
        "credentials.ci.source",
        "'dve'",
        "default, ci, dev",
        "did you mean 'dev'?",
    ),
    _case(
        "set-source-cycle",
        _doc(
            credentials={
                "a": {"role_arn": ROLE, "source": "b"},
                "b": {"role_arn": ROLE, "source": "a"},
            }
        ),
        "credentials.a.source",
        "'b'",
        "a -> b -> a",
        "ends at a set without source",
    ),
    _case(
        "set-source-self",
        _doc(credentials={"a": {"role_arn": ROLE, "source": "a"}}),
        "credentials.a.source",
        "'a'",
        "a -> a",
        "ends at",
    ),
    _case(
        "set-profile-and-source",
        _doc(credentials={"ci": {"profile": "dev", "role_arn": ROLE, "source": "default"}}),
        "credentials.ci",
        "profile 'dev' and source 'default'",
        "keep",
    ),
    _case(
        "set-chained-duration",
        _doc(
            credentials={
                "a": {"role_arn": ROLE},
                "b": {"role_arn": ROLE, "source": "a", "duration": "2h"},
            }
        ),
        "credentials.b.duration",
        "7200 seconds",
        "at most 1h",
    ),
    # who may reach the proxy
    _case("allowed-hosts-not-list", _doc(allowed_hosts="a.example"), "allowed_hosts", "list"),
    _case(
        "allowed-hosts-port",
        _doc(allowed_hosts=["proxy.lan:8080"]),
        "allowed_hosts[0]",
        "'proxy.lan:8080'",
        "without a port",
    ),
    _case(
        "allowed-hosts-top-level-wildcard",
        _doc(allowed_hosts=["*.com"]),
        "allowed_hosts[0]",
        "top-level domain",
    ),
    _case("route-host-top-level-wildcard", _routed(host="*.io"), "routes[0].host", "rebinding"),
    _case(
        "origins-any", _routed(allowed_origins=["*"]), "routes[0].allowed_origins[0]", "any site"
    ),
    _case(
        "origins-null",
        _routed(allowed_origins=["null"]),
        "routes[0].allowed_origins[0]",
        "sandboxed",
    ),
    _case(
        "origins-path",
        _routed(allowed_origins=["http://localhost:3000/app"]),
        "routes[0].allowed_origins[0]",
        "has a path",
    ),
    _case(
        "origins-scheme",
        _routed(allowed_origins=["ftp://localhost"]),
        "routes[0].allowed_origins[0]",
        "http(s) URL",
    ),
    _case("origins-empty", _routed(allowed_origins=[]), "routes[0].allowed_origins", "origins"),
    _case(
        "encoded-slashes-not-bool",
        _routed(allow_encoded_slashes="yes please"),
        "routes[0].allow_encoded_slashes",
        "'yes please'",
    ),
    _case(
        "body-total",
        _doc(client_timeouts={"body_total": "forever"}),
        "client_timeouts.body_total",
        "'forever'",
    ),
    _case(
        "reload-token-unset",
        _doc(reload_token_env="SIGNING_PROXY_TEST_UNSET_TOKEN"),
        "reload_token_env",
        "not set",
    ),
    _case(
        "reload-token-both",
        _doc(reload_token_env="A", reload_token_file="/run/secrets/a"),
        "reload_token_file",
        "one source",
    ),
    _case("method-trace", _routed(methods=["trace"]), "routes[0].methods[0]", "echo"),
]


def test_who_may_reach_the_proxy_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """allowed_hosts, allowed_origins (as browsers send them), allow_encoded_slashes,
    client_timeouts.body_total, the reload token and extension methods."""
    token = tmp_path / "reload-token"
    token.write_text("from-a-file\n")
    config = parse_config(
        _doc(
            _route(
                allowed_origins=["HTTP://LocalHost:80/", "https://app.example:8443"],
                allow_encoded_slashes=True,
                methods=["get", "PROPFIND"],
            ),
            allowed_hosts=["Proxy.LAN", "*.svc.cluster.local"],
            client_timeouts={"body_total": "90s"},
            reload_token_file=str(token),
        )
    )
    route = config.routes[0]
    assert config.allowed_hosts == ("proxy.lan", "*.svc.cluster.local")
    assert route.allowed_origins == frozenset({"http://localhost", "https://app.example:8443"})
    assert route.allow_encoded_slashes is True
    assert route.methods == frozenset({"GET", "PROPFIND"})
    assert config.client_timeouts.body_total == 90.0
    assert config.reload_token is not None
    assert config.reload_token.value == b"from-a-file"
    assert "from-a-file" not in repr(config)


@pytest.mark.parametrize(("data", "path", "fragments"), CASES)
def test_validation_errors(data: object, path: str, fragments: tuple[str, ...]) -> None:
    """Each mistake is one line naming the key path, the bad value and what was expected."""
    error = _error(data)
    assert error.path == path
    for fragment in fragments:
        assert fragment in error.message
    assert "expected" in error.message or "needs" in error.message
    assert "\n" not in str(error)
    assert "\r" not in str(error)
    assert str(error) == (f"{path}: {error.message}" if path else error.message)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:hunter2@example.com",
        "ftp://user:hunter2@example.com",
        "https://user:hunter2@example.com/a b",
        "https://user:hunter2@example.com:99999",
    ],
)
def test_user_info_is_not_echoed(url: str) -> None:
    """A password in an upstream URL never appears in the error, whatever else is wrong."""
    error = _error(_doc(_route(upstream=url)))
    assert error.path == "routes[0].upstream"
    assert "'https://…@example.com" in error.message or "'ftp://…@example.com" in error.message
    assert "hunter2" not in str(error)


def test_long_values_are_shortened() -> None:
    """A long bad value is cut so that the error stays readable."""
    error = _error(_doc(_route(name="x" * 500)))
    assert len(str(error)) < 250
    assert "…" in error.message


# --- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "suggestion"),
    [
        pytest.param(_doc(listn="x"), "listn", "listen", id="top"),
        pytest.param(_doc(_route(upstrem=CLOUDFRONT)), "routes[0].upstrem", "upstream", id="route"),
        pytest.param(
            _doc(_route(sign={"regoin": "x"})), "routes[0].sign.regoin", "region", id="sign"
        ),
        pytest.param(_doc(_route(headers={"ad": {}})), "routes[0].headers.ad", "add", id="headers"),
        pytest.param(
            _doc(_route(timeouts={"first-byte": 1})), "routes[0].timeouts.first-byte", "first_byte"
        ),
        pytest.param(
            _doc(credentials={"ci": {"rolearn": ROLE}}), "credentials.ci.rolearn", "role_arn"
        ),
        pytest.param(_doc(_route(zzzzzz=1)), "routes[0].zzzzzz", None, id="no-suggestion"),
        pytest.param(NON_STRING_KEY, "routes[0].1", None, id="not-a-string"),
    ],
)
def test_unknown_keys(data: object, path: str, suggestion: str | None) -> None:
    """Unknown keys are errors at every level, with the allowed keys and the closest one."""
    error = _error(data)
    assert error.path == path
    assert error.message.startswith("unknown key (expected one of: ")
    if suggestion is None:
        assert "did you mean" not in error.message
    else:
        assert error.message.endswith(f"; did you mean {suggestion!r}?")


def test_unknown_route_key_message_in_full() -> None:
    """The unknown-key message lists every route key in order and suggests the closest."""
    error = _error(_doc(_route(upstrem=CLOUDFRONT, upstream=...)))
    assert str(error) == (
        "routes[0].upstrem: unknown key (expected one of: allow_encoded_slashes, "
        "allowed_origins, credentials, function_url, headers, host, inbound, max_body, "
        "max_concurrent, max_connections, methods, mode, name, path_prefix, probe, rate_limit, "
        "retries, sign, strip_prefix, timeouts, upstream, web_function); did you mean 'upstream'?"
    )


# --- reading the file -------------------------------------------------------------------------


def test_duplicate_key_in_route(tmp_path: Path) -> None:
    """A key written twice is an error naming the mapping, the key and the second line."""
    text = MINIMAL + "    upstream: https://other.example.com\n"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(tmp_path, text))
    assert str(caught.value) == "routes[0]: duplicate key 'upstream' (line 8)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "routes: []\nlisten: a:1\nroutes: []\n",
            "config.yaml: duplicate key 'routes' (line 3)",
            id="top-level",
        ),
        pytest.param(
            "credentials:\n  ci:\n    profile: a\n    profile: b\n",
            "credentials.ci: duplicate key 'profile' (line 4)",
            id="nested",
        ),
        pytest.param(
            "routes:\n  - name: a\n    headers:\n      add: {X-A: '1', X-A: '2'}\n",
            "routes[0].headers.add: duplicate key 'X-A' (line 4)",
            id="flow-mapping",
        ),
    ],
)
def test_duplicate_keys(in_tmp: Path, text: str, message: str) -> None:
    """Duplicate keys are refused at every level, where PyYAML would keep the last silently."""
    _write(in_tmp, text)
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    assert str(caught.value) == message


def test_merge_keys_load(tmp_path: Path) -> None:
    """Routes may share settings through a YAML anchor and merge key."""
    text = """\
    routes:
      - &orders
        name: orders
        upstream: https://d111111abcdef8.cloudfront.net
        function_url: https://abc123xyz.lambda-url.eu-central-1.on.aws
      - <<: *orders
        name: orders-v2
        path_prefix: /v2/
    """
    routes = load_config(_write(tmp_path, text)).routes
    assert [route.name for route in routes] == ["orders", "orders-v2"]
    assert routes[1].signing == routes[0].signing


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        pytest.param(
            "routes:\n  - name: a\n   upstream: x\n", "config.yaml:3:", id="bad-indentation"
        ),
        pytest.param("routes:\n  - name: 'a\n", "config.yaml:3:1: YAML syntax error: ", id="quote"),
        pytest.param("listen: [::1]:8080\n", "config.yaml:1:10: YAML syntax error: ", id="ipv6"),
        pytest.param("a: 1\n---\nb: 2\n", "config.yaml:2:1: YAML syntax error: ", id="two-docs"),
        pytest.param("routes: !Ref x\n", "config.yaml:1:9: YAML error: ", id="unknown-tag"),
        pytest.param("a: b\x00\n", "config.yaml: YAML syntax error: ", id="nul"),
    ],
)
def test_yaml_syntax_errors(in_tmp: Path, text: str, prefix: str) -> None:
    """YAML errors are one line: file:line:column, then PyYAML's problem."""
    _write(in_tmp, text)
    with pytest.raises(ConfigError) as caught:
        load_config("config.yaml")
    message = str(caught.value)
    assert message.startswith(prefix)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("line", "quoted"),
    [
        ("listen: [::1]:8080", 'listen: "[::1]:8080"'),
        ("admin: [fd00::5]:9090  # metrics", 'admin: "[fd00::5]:9090"'),
    ],
)
def test_unquoted_ipv6_address_says_to_quote_it(tmp_path: Path, line: str, quoted: str) -> None:
    """An IPv6 address and port left unquoted gets YAML's error and how to write it."""
    path = _write(tmp_path, f"{line}\nroutes: []\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).endswith(f"; an IPv6 address with a port must be quoted: {quoted}")


def test_yaml_syntax_error_exact(tmp_path: Path) -> None:
    """The syntax error names the file, line and column of the problem."""
    path = _write(tmp_path, "routes:\n  - name: a\n    b: c: d\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (
        str(caught.value) == f"{path}:3:9: YAML syntax error: mapping values are not allowed here"
    )


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        pytest.param(lambda p: p / "missing.yaml", "No such file", id="missing"),
        pytest.param(lambda p: p, "directory", id="directory"),
    ],
)
def test_unreadable_file(tmp_path: Path, make: Any, fragment: str) -> None:
    """A file that cannot be read is one line naming the file and the reason."""
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    assert "cannot read the config file" in caught.value.message
    assert fragment in caught.value.message


def test_file_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is refused with the offset of the bad byte."""
    path = tmp_path / "config.yaml"
    path.write_bytes(b"listen: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: not UTF-8 text (bad byte at offset 8)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "the document is empty", id="empty"),
        pytest.param("# only a comment\n", "the document is empty", id="comment"),
        pytest.param("- a\n", "a list is not a mapping", id="list"),
    ],
)
def test_document_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    """Mistakes in the document as a whole are located by the file's name."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.path == str(path)
    assert caught.value.message.startswith(message)


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark, as some Windows editors write, does not break loading."""
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).routes[0].name == "orders"


# --- quick_config -----------------------------------------------------------------------------


def test_quick_config() -> None:
    """The flags build one route "default" at /, with the role on top of the default chain."""
    config = quick_config(
        upstream=CLOUDFRONT + "/",
        function_url=FUNCTION_URL,
        mode="iam",
        listen="127.0.0.1:9090",
        role_arn=ROLE,
    )
    assert config == Config(
        routes=(
            Route(
                name="default",
                upstream=Upstream("https", "d111111abcdef8.cloudfront.net", 443, ""),
                path_prefix="/",
                mode="iam",
                signing=SigningTarget(FUNCTION_HOST, "eu-central-1", "lambda"),
                credentials="default",
            ),
        ),
        listen=Address("127.0.0.1", 9090),
        credentials=(CredentialSet("default", role_arn=ROLE),),
    )


def test_quick_config_defaults() -> None:
    """Without --listen and --role-arn: the default address and the plain default chain."""
    config = quick_config(
        upstream="http://127.0.0.1:9000", function_url=None, mode="oac", listen=None, role_arn=None
    )
    assert config.listen == Address("127.0.0.1", 8080)
    assert config.credentials == (CredentialSet("default"),)
    assert config.routes[0].mode == "oac"
    assert config.routes[0].signing is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            {"upstream": "ftp://x"},
            "--upstream: 'ftp://x' is not an http(s) URL "
            "(expected e.g. https://d111111abcdef8.cloudfront.net)",
            id="upstream",
        ),
        pytest.param(
            {"function_url": "https://example.com"},
            "--function-url: 'https://example.com' is not a function URL "
            "(expected https://<url-id>.lambda-url.<region>.on.aws)",
            id="function-url",
        ),
        pytest.param(
            {"function_url": None},
            f"--function-url: required with --mode iam (expected e.g. {FUNCTION_URL}, "
            "or --mode oac or none)",
            id="function-url-missing",
        ),
        pytest.param(
            {"mode": "sign"},
            "--mode: 'sign' is not a mode (expected one of: iam, oac, none)",
            id="mode",
        ),
        pytest.param(
            {"listen": "8080"},
            "--listen: '8080' is not an address "
            "(expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)",
            id="listen",
        ),
        pytest.param(
            {"role_arn": "invoker"},
            "--role-arn: 'invoker' is not an IAM role ARN "
            "(expected e.g. arn:aws:iam::123456789012:role/name)",
            id="role-arn",
        ),
    ],
)
def test_quick_config_errors_name_flags(flags: dict[str, Any], message: str) -> None:
    """Errors from the quick form name the flag instead of a key path."""
    arguments: dict[str, Any] = {
        "upstream": CLOUDFRONT,
        "function_url": FUNCTION_URL,
        "mode": "iam",
        "listen": None,
        "role_arn": None,
    }
    with pytest.raises(ConfigError) as caught:
        quick_config(**(arguments | flags))
    assert str(caught.value) == message
