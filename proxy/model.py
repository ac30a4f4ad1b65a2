"""The configuration as the proxy uses it: frozen, validated objects built by proxy.config.load."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["iam", "oac", "none"]
Algorithm = Literal["sigv4", "sigv4a"]
InboundType = Literal["github", "stripe", "slack", "shopify", "hmac", "bearer", "basic"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MIB = 1024 * 1024
DEFAULT_MAX_BODY = 6 * MIB  # Lambda's cap for a buffered request payload
DEFAULT_CREDENTIALS = "default"  # the name of the botocore default chain
# The methods a route takes when it names none.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True, slots=True)
class Address:
    """A host and port to listen on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can connect (a host name could resolve to anything)."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def overlaps(self, other: Address) -> bool:
        """Whether both cannot listen at once: one port (not 0, "any free one"), and one host
        or a wildcard host on either side."""
        wildcards = ("0.0.0.0", "::", "")  # noqa: S104 - compared with, not bound
        same_host = self.host.lower() == other.host.lower()
        return self.port == other.port != 0 and (
            same_host or self.host in wildcards or other.host in wildcards
        )


@dataclass(frozen=True, slots=True)
class SigningTarget:
    """What a signature is computed for: the signing host (a function URL's, a Web Function
    endpoint's; a port only when it is not the scheme's default), the region, the service,
    and the algorithm. For SigV4a ``region`` is the region set, the X-Amz-Region-Set value:
    ``*`` or regions joined by commas."""

    host: str
    region: str
    service: str
    algorithm: Algorithm = "sigv4"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where requests are sent; ``base_path`` ("" or "/prefix") is prepended to every path."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    base_path: str = ""
    # Derived once here, not on every request: the Host header the upstream receives, and
    # ``scheme://host[:port]`` (the port only when it is not the scheme's default).
    host_header: str = field(init=False, compare=False)
    origin: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        host_header = host if self.port == default else f"{host}:{self.port}"
        object.__setattr__(self, "host_header", host_header)
        object.__setattr__(self, "origin", f"{self.scheme}://{host_header}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Bounds on one upstream exchange, in seconds; ``total`` None means no overall bound."""

    connect: float = 10.0
    # A buffered Lambda function may run 15 minutes before its first byte; allow a minute more.
    first_byte: float = 960.0
    idle: float = 960.0
    total: float | None = None


IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Retries:
    """When a request is sent again. A connection that could not be made (nothing was sent)
    is retried for every method; a reply in ``statuses`` only for ``methods``. Waits grow
    exponentially from ``backoff`` with full jitter, up to ``max_backoff`` (or a Retry-After),
    and all retrying stops after ``attempts`` tries or ``budget`` seconds."""

    attempts: int = 3
    backoff: float = 0.1
    max_backoff: float = 2.0
    budget: float = 10.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    methods: frozenset[str] = IDEMPOTENT


@dataclass(frozen=True, slots=True)
class HeaderRules:
    """Headers a route sets on, or removes from, every forwarded request."""

    add: tuple[tuple[str, str], ...] = ()
    remove: frozenset[str] = frozenset()  # lower-case names


@dataclass(frozen=True, slots=True, repr=False)
class Secret:
    """A secret read at start from the environment or a file; it never prints itself."""

    value: bytes
    source: str  # "env GITHUB_WEBHOOK_SECRET" or "file /run/secrets/github": safe to show

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"


@dataclass(frozen=True, slots=True)
class Inbound:
    """Who may use a route: an authentication check and/or the client addresses allowed.

    ``type`` None means addresses only. For ``bearer`` with ``header`` set, that header holds
    the bare secret (X-Api-Key style); otherwise ``Authorization: Bearer <secret>``. For
    ``hmac``, ``header`` names the signature header. ``tolerance`` bounds the age of Stripe's
    and Slack's signed timestamps.
    """

    type: InboundType | None = None
    secret: Secret | None = None
    header: str | None = None
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = ""
    username: str | None = None
    tolerance: float = 300.0
    allow_ips: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` requests per second on average, bursts of up to ``burst``."""

    rate: float
    burst: int


@dataclass(frozen=True, slots=True)
class Probe:
    """The request ``signing-proxy check`` sends on a route, signed as the route signs:
    one the function can answer without side effects."""

    method: str = "HEAD"
    target: str | None = None  # a path (and query) the route takes; None: its path_prefix


@dataclass(frozen=True, slots=True)
class Route:
    """One entry of ``routes:``; routes are tried in order and the first match wins."""

    name: str
    upstream: Upstream
    path_prefix: str = "/"
    mode: Mode = "iam"
    signing: SigningTarget | None = None  # set for mode "iam"
    methods: frozenset[str] | None = None  # None: every method
    host: str | None = None  # inbound Host to match, lower-case; "*.example.com" allowed
    strip_prefix: bool = False
    headers: HeaderRules = field(default_factory=HeaderRules)
    max_body: int = DEFAULT_MAX_BODY
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    credentials: str = DEFAULT_CREDENTIALS
    inbound: Inbound | None = None
    rate_limit: RateLimit | None = None
    max_concurrent: int | None = None
    max_connections: int | None = None  # None: the shared pool, no limit
    probe: Probe = field(default_factory=Probe)
    # Browser pages of these origins (``scheme://host[:port]``, lower-case) may call the route.
    allowed_origins: frozenset[str] = frozenset()
    # %2F, %5C (and a raw backslash) in the path reach the function instead of a 400.
    allow_encoded_slashes: bool = False


@dataclass(frozen=True, slots=True)
class CredentialSet:
    """One entry of ``credentials:``: a botocore source, optionally with a role assumed on top."""

    name: str
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str | None = None
    duration: int | None = None  # seconds
    source: str | None = None  # another set whose credentials assume role_arn (role chaining)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The inbound listener's certificate chain and private key (PEM files)."""

    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """Bounds on what a client may take, in seconds: to send its request headers (slow-loris
    clients; also how long an idle keep-alive connection stays open), between two chunks of
    its body, and for its whole body."""

    headers: float = 15.0
    body: float = 60.0
    body_total: float = 300.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    routes: tuple[Route, ...]
    listen: Address = field(default_factory=lambda: Address("127.0.0.1", 8080))
    credentials: tuple[CredentialSet, ...] = (CredentialSet(DEFAULT_CREDENTIALS),)
    client_timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)
    admin: Address | None = None  # the admin listener (health, readiness, metrics, reload)
    tls: TlsFiles | None = None  # HTTPS on the inbound listener
    upstream_ca_file: str | None = None  # authorities trusted for upstreams besides the system's
    # How long requests in flight may take to finish after SIGTERM before they are cut.
    shutdown_grace: float = 30.0
    # Listening beyond loopback with signing routes that do not authenticate their callers
    # must be asked for in so many words.
    allow_unauthenticated: bool = False
    # Host names (lower-case; "*.example.com" allowed) served besides loopback and route hosts.
    allowed_hosts: tuple[str, ...] = ()
    # What POST /reload on the admin listener must carry as a bearer token; without one, an
    # admin listener beyond loopback does not reload over HTTP.
    reload_token: Secret | None = None

    @property
    def unauthenticated_routes(self) -> list[str]:
        """Routes that send requests with an AWS identity (iam, oac) without checking callers."""
        return [r.name for r in self.routes if r.mode != "none" and r.inbound is None]

    def credential_set(self, name: str) -> CredentialSet:
        """The set called ``name``; validation guarantees that every route's set exists."""
        for item in self.credentials:
            if item.name == name:
                return item
        raise KeyError(name)


DEFAULT_LISTEN = Address("127.0.0.1", 8080)
