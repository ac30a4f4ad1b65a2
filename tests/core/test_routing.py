"""Route matching and the normalised upstream path, a pure function of the request."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import example, given
from hypothesis import strategies as st

from proxy.core.routing import match, normalize_path, split_target
from proxy.core.sigv4 import canonical_query
from proxy.errors import BadRequestError, MethodNotAllowedError, NoRouteError
from proxy.model import Route, Upstream

CLOUDFRONT = Upstream("https", "d111111abcdef8.cloudfront.net", 443)


def _route(name: str, **fields: object) -> Route:
    return Route(name=name, upstream=fields.pop("upstream", CLOUDFRONT), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/orders?id=1&x", "/orders", "id=1&x"),
        ("/a//b/./c/../d/", "/a/b/d/", ""),
        ("/%61dmin", "/admin", ""),
        ("/a%2fb%20c", "/a%2Fb%20c", ""),
        ("/%2E%2E/admin", "/admin", ""),
        ('/a"<>^`{|}\\', "/a%22%3C%3E%5E%60%7B%7C%7D%5C", ""),
        ("/ሴ", "/%E1%88%B4", ""),
        ("/p?q=a b", "/p", "q=a%20b"),
        ("/p?q=%2f&r=+", "/p", "q=%2F&r=%2B"),  # the query is sent as signed: see below
        ("/p#frag", "/p", ""),
    ],
)
def test_split_target_normalises(target: str, path: str, query: str) -> None:
    """The target is normalised once: escapes, dot segments, empty segments, unsafe bytes."""
    assert split_target(target) == (path, query)


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/x",
        "evil.example:443",
        "*",
        "/a%zz",
        "/a%4",
        "/p?q=%",
        "/p?q=%zz",
        "/p?%zz=1",
        "/p?q=%4",
        "/p?a=1&b=%g0",
        "/p?q=100%",
    ],
)
def test_split_target_refuses(target: str) -> None:
    """Absolute-form, authority-form and broken escapes are refused with 400."""
    with pytest.raises(BadRequestError):
        split_target(target)


@pytest.mark.parametrize(
    ("query", "sent"),
    [
        ("a=1&b=2", "a=1&b=2"),  # already in the signed encoding: untouched
        ("b=2&a=1&a=0", "b=2&a=1&a=0"),  # the client's order and repeats, not sorted
        ("x=!'()*,", "x=%21%27%28%29%2A%2C"),  # sub-delimiters are escaped, as signed
        ("t=%7e&u=%7E&v=~", "t=~&u=~&v=~"),  # escaped unreserved characters are decoded
        ("q=%2f%3a", "q=%2F%3A"),  # other escapes are upper-cased
        ("q=a b&r=a%20b", "q=a%20b&r=a%20b"),  # a space is %20
        ("q=a+b", "q=a%2Bb"),  # a raw plus is a literal plus
        ("q=a%2Bb", "q=a%2Bb"),  # an escaped one stays one
        ("q=a%20b+c", "q=a%20b%2Bc"),
        ("ሴ=😀", "%E1%88%B4=%F0%9F%98%80"),  # UTF-8
        ("%E1%88%B4=%f0%9f%98%80", "%E1%88%B4=%F0%9F%98%80"),
        ("q=%FF", "q=%FF"),  # bytes that are not UTF-8 are kept as bytes
        ("flag", "flag"),  # a bare name stays bare (every verifier reads it as flag=)
        ("empty=", "empty="),
        ("flag&empty=&x", "flag&empty=&x"),
        ("x=y=z", "x=y%3Dz"),  # split on the first "=" only
        ("==", "=%3D"),
        ("=v", "=v"),  # an empty name
        ("a=1&&b=2&", "a=1&b=2"),  # empty parts carry no parameter
        ("&", ""),
        ("k[]=v&k%5B%5D=w", "k%5B%5D=v&k%5B%5D=w"),
        ("p=/a?b:c@d", "p=%2Fa%3Fb%3Ac%40d"),
        ("q=%25zz", "q=%25zz"),  # an escaped percent sign, then text
        ("q=%00", "q=%00"),
    ],
)
def test_query_is_sent_in_the_encoding_it_is_signed_in(query: str, sent: str) -> None:
    """Each name and value is decoded and re-encoded strictly, order and repeats kept."""
    path, normalised = split_target(f"/p?{query}")
    assert (path, normalised) == ("/p", sent)
    assert canonical_query(normalised) == _sorted_as_received(normalised)


def _sorted_as_received(query: str) -> str:
    """The query canonicalised without re-encoding, as a verifier given the raw URL does."""
    pairs = sorted(part.partition("=")[::2] for part in query.split("&") if part)
    return "&".join(f"{name}={value}" for name, value in pairs)


def _decoded(query: str) -> list[tuple[bytes, bytes | None]]:
    """Each parameter percent-decoded (``+`` a plus), None for a bare name's value."""
    pairs: list[tuple[bytes, bytes | None]] = []
    for part in query.split("&"):
        if part:
            name, equals, value = part.partition("=")
            pairs.append((unquote_to_bytes(name), unquote_to_bytes(value) if equals else None))
    return pairs


_QUERY_TEXT = st.lists(
    st.one_of(
        st.sampled_from("abcXYZ019-._~!$'()*+,;:@/?= \"[]{}|^`<>"),
        st.sampled_from(["%7e", "%7E", "%2f", "%2B", "%20", "%25", "%3D", "%26", "%41", "%ff"]),
        # "%" alone is a broken escape (refused above), "#" would start a fragment.
        st.characters(codec="utf-8", exclude_characters="%#"),
    ),
    max_size=8,
).map("".join)
_QUERY_PARTS = st.one_of(
    st.builds(lambda name, value: f"{name}={value}", _QUERY_TEXT, _QUERY_TEXT),
    _QUERY_TEXT,  # a bare name
    st.just(""),  # an empty part
)
queries = st.lists(_QUERY_PARTS, max_size=6).map("&".join)
_RAW_VERIFIER = SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "sts", "us-east-1")


@given(queries)
@example("x=!'()*,&t=%7e&q=a+b&flag&=&a=b=c&&")
def test_signed_query_is_the_sent_query_sorted(query: str) -> None:
    """What sigv4 signs is the query as sent, only sorted: botocore's raw-URL canonical query
    (how moto checks signatures) agrees, and the decoded parameters are the client's."""
    _, sent = split_target(f"/p?{query}")
    assert canonical_query(sent) == _sorted_as_received(sent)
    raw_url = AWSRequest(method="GET", url=f"http://127.0.0.1/p?{sent}")
    assert _RAW_VERIFIER.canonical_query_string(raw_url) == canonical_query(sent)
    assert _decoded(sent) == _decoded(query.replace("+", "%2B"))  # a raw "+" is a plus
    assert split_target(f"/p?{sent}")[1] == sent  # normalising twice changes nothing
    for name, _, value in (part.partition("=") for part in sent.split("&") if part):
        assert quote(unquote_to_bytes(name), safe="") == name
        assert quote(unquote_to_bytes(value), safe="") == value


ROUTES = (
    _route("admin", path_prefix="/admin", methods=frozenset({"POST"})),
    _route("api", path_prefix="/api/", strip_prefix=True),
    _route("hooks", path_prefix="/hooks", host="*.example.com"),
    _route("site", path_prefix="/site", host="www.example.org"),
    _route("v1", path_prefix="/v1", upstream=Upstream("http", "127.0.0.1", 9000, "/base")),
)


@pytest.mark.parametrize(
    ("method", "host", "target", "route", "path"),
    [
        ("POST", "localhost:8080", "/admin", "admin", "/admin"),
        ("POST", "localhost", "/admin/x", "admin", "/admin/x"),
        ("GET", "localhost", "/api/orders", "api", "/orders"),
        ("GET", "localhost", "/api/", "api", "/"),
        ("GET", "a.example.com", "/hooks/github", "hooks", "/hooks/github"),
        ("GET", "WWW.Example.ORG:8080", "/site", "site", "/site"),
        ("GET", "localhost", "/v1/x?y=1", "v1", "/base/v1/x"),
        ("POST", "localhost", "/%61dmin", "admin", "/admin"),
    ],
)
def test_first_matching_route(method: str, host: str, target: str, route: str, path: str) -> None:
    """Routes match on method, host and path prefix at a segment boundary, first wins."""
    found = match(ROUTES, method=method, host=host, target=target)
    assert (found.route.name, found.path) == (route, path)


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("localhost", "/adminx"),
        ("localhost", "/api"),
        ("example.com", "/hooks"),
        ("localhost", "/hooks"),
        ("www.example.org.evil", "/site"),
        ("localhost", "/public/../hooks"),
    ],
)
def test_no_route(host: str, target: str) -> None:
    """A request no route takes is a 404, never a guess."""
    with pytest.raises(NoRouteError):
        match(ROUTES, method="GET", host=host, target=target)


def test_method_not_allowed_names_allowed_methods() -> None:
    """A path that matches only with another method is a 405 listing the allowed ones."""
    with pytest.raises(MethodNotAllowedError) as caught:
        match(ROUTES, method="GET", host="localhost", target="/admin")
    assert caught.value.allowed == frozenset({"POST"})


@given(st.text(alphabet="/.%2Ea-z", max_size=30))
def test_normalised_path_is_stable(path: str) -> None:
    """Normalising twice changes nothing, so matching, sending and signing see one form."""
    try:
        once = normalize_path("/" + path)
    except BadRequestError:
        return
    assert normalize_path(once) == once
    assert "//" not in once
    assert "/./" not in once + "/"
    assert "/../" not in once + "/"


ENCODED = (
    _route("files", path_prefix="/files", allow_encoded_slashes=True),
    _route("rest", path_prefix="/"),
)


@pytest.mark.parametrize(
    ("target", "refused"),
    [
        ("/a%2Fb", True),
        ("/a%2fb", True),
        ("/a%5Cb", True),
        ("/a\\b", True),  # a raw backslash goes on the wire as %5C
        ("/a%252Fb", False),  # an escaped percent sign, then text
        ("/a%2Eb", False),
        ("/files/a%2Fb%5Cc", False),
        ("/files/../a%2Fb", True),  # resolved first: it is the catch-all's path
    ],
)
def test_encoded_slashes_need_a_route_that_allows_them(target: str, refused: bool) -> None:
    """%2F and %5C (and a raw backslash) are 400 unless the matched route allows them."""
    if refused:
        with pytest.raises(BadRequestError, match="allow_encoded_slashes: true on route 'rest'"):
            match(ENCODED, method="GET", host=None, target=target)
    else:
        match(ENCODED, method="GET", host=None, target=target)


@pytest.mark.parametrize("target", ["/a%00b", "/files/a%00", "/x%00/../y%00"])
def test_an_encoded_nul_is_always_refused(target: str) -> None:
    """%00 is 400 even on a route that allows encoded slashes."""
    with pytest.raises(BadRequestError, match="%00"):
        match(ENCODED, method="GET", host=None, target=target)


def test_trace_is_405_even_where_every_method_is_taken() -> None:
    """TRACE never matches: 405 with the usual methods in Allow and RFC 9110's reason."""
    with pytest.raises(MethodNotAllowedError, match="RFC 9110") as caught:
        match((_route("all"),), method="TRACE", host=None, target="/x")
    assert "TRACE" not in caught.value.allowed
    assert {"GET", "POST", "OPTIONS"} <= caught.value.allowed


def test_other_methods_are_taken_only_by_a_route_that_names_them() -> None:
    """PROPFIND skips a route without methods: and matches one that lists it."""
    routes = (_route("all"), _route("dav", path_prefix="/", methods=frozenset({"PROPFIND"})))
    assert match(routes, method="PROPFIND", host=None, target="/x").route.name == "dav"
    with pytest.raises(MethodNotAllowedError):
        match(routes[:1], method="PROPFIND", host=None, target="/x")
