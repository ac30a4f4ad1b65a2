"""The command line's arguments: the argparse parser of every subcommand, and the parsed flags
turned into what the commands need (the config loader with its quick-form route and
--config/--listen overrides, --admin, --workers, the request ``sign`` prints).
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from proxy import __version__
from proxy.config.load import check_admin_address, load_config, quick_config
from proxy.config.signing import implied_target
from proxy.config.values import parse_host_port
from proxy.errors import ConfigError
from proxy.model import Address, Config, SigningTarget
from proxy.serve.supervisor import worker_count

if TYPE_CHECKING:
    from proxy.cli.sign import SignRequest


def _common_options() -> argparse.ArgumentParser:
    """--log-level and --log-format, taken before the subcommand and after it alike (a
    default of SUPPRESS, so that a subcommand's parser does not overwrite what came first)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=argparse.SUPPRESS,
        help="how much to log to stderr (default: info; warning for demo, check, sign, health)",
    )
    common.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=argparse.SUPPRESS,
        help="text lines (default), or one JSON object per line with the access log's fields",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets ``name`` (which ``main`` runs) and
    ``default_log_level``."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="signing-proxy",
        description="Sign requests with AWS SigV4 for a Lambda function URL behind CloudFront.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"signing-proxy {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    add_parser = functools.partial(commands.add_parser, parents=[common])

    serve = add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy with a config file, or with one route given by flags.",
    )
    _config_arguments(serve)
    serve.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve /healthz, /readyz, /metrics and POST /reload here (overrides admin: of "
        "--config)",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        default="1",
        help="processes sharing the listening socket: a number, or auto for one per core "
        "(default 1; the config file has no such key)",
    )
    serve.add_argument(
        "--inspect",
        action="store_true",
        help="serve the request inspector at /inspect on the admin listener "
        "(127.0.0.1:9901 unless --admin or admin: says otherwise)",
    )
    serve.set_defaults(name="serve", default_log_level="info")

    check = add_parser(
        "check",
        help="probe every route and say what is wrong and how to fix it",
        description=(
            "Validate the config, resolve each credential set (and show its identity), "
            "connect to each upstream, send one signed probe per route and print a verdict "
            "with the fix for each failure. Exit 0 only when every route passes."
        ),
    )
    _config_arguments(check)
    check.add_argument(
        "--route", action="append", default=[], metavar="NAME", help="only this route (repeatable)"
    )
    check.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the verdicts (default: on a terminal)",
    )
    check.add_argument(
        "--timeout", metavar="DURATION", default="10s", help="per step (default 10s)"
    )
    check.set_defaults(name="check", default_log_level="warning")

    sign = add_parser(
        "sign",
        help="print one request signed as the proxy signs it (curl command or JSON)",
        description=(
            "Sign one request for a route of the config (give a path), or for an explicit "
            "host, region and service (give a URL), and print it as a curl command."
        ),
    )
    sign.add_argument("target", metavar="PATH_OR_URL", help="/orders?id=7 with --route, else a URL")
    sign.add_argument("--config", metavar="FILE", help="the config (or SIGNING_PROXY_CONFIG)")
    sign.add_argument("--route", metavar="NAME", help="sign as this route does")
    sign.add_argument("--host", help="the host to sign for (default: the URL's)")
    sign.add_argument(
        "--region",
        help="default: from a function-URL, Web Function or execute-api host; with sigv4a the "
        "region set (* or regions joined by commas)",
    )
    sign.add_argument(
        "--service", help="default: from a function-URL, Web Function or execute-api host"
    )
    sign.add_argument(
        "--algorithm",
        choices=("sigv4", "sigv4a"),
        help="default sigv4, or sigv4a for a .lambda-web.global.on.aws host",
    )
    sign.add_argument("-X", "--method", help="default GET, or POST with --data")
    sign.add_argument("-d", "--data", metavar="DATA", help="the body, or @FILE")
    sign.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="repeatable"
    )
    sign.add_argument(
        "--date", metavar="YYYYMMDDTHHMMSSZ", help="sign at this time (repeatable output)"
    )
    sign.add_argument("--json", action="store_true", help="print the parts as JSON")
    sign.add_argument(
        "--show-canonical",
        action="store_true",
        help="also print the canonical request and string to sign",
    )
    sign.set_defaults(name="sign", default_log_level="warning")

    health = add_parser(
        "health",
        help="exit 0 when the admin listener answers (for container health checks)",
        description="GET the URL; exit 0 on 200 within 3 seconds, 1 otherwise.",
    )
    health.add_argument(
        "--url",
        help="default: /healthz on the admin address of --config (or SIGNING_PROXY_CONFIG), "
        "else SIGNING_PROXY_ADMIN, else 127.0.0.1:9901",
    )
    health.add_argument("--config", metavar="FILE", help="the config whose admin: to ask")
    health.set_defaults(name="health", default_log_level="warning")

    emulate = add_parser(
        "emulate",
        help="run a local CloudFront + function URL stand-in",
        description=(
            "Run an emulated CloudFront distribution in front of an emulated Lambda function "
            "URL (auth type AWS_IAM) that verifies every signature. No AWS account needed."
        ),
    )
    emulate.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9000")
    origin = emulate.add_mutually_exclusive_group()
    origin.add_argument(
        "--function-url",
        metavar="URL",
        default="https://abc123xyz.lambda-url.eu-central-1.on.aws",
        help="the function URL it pretends to be (its host is what requests must be signed for)",
    )
    origin.add_argument(
        "--web-function",
        metavar="URL",
        help="pretend to be this Lambda Web Function endpoint instead: SigV4 for a regional "
        "one, SigV4a for https://<id>.lambda-web.global.on.aws",
    )
    emulate.add_argument(
        "--oac", action="store_true", help="CloudFront signs with origin access control"
    )
    emulate.add_argument(
        "--sts-url",
        metavar="URL",
        help="also accept credentials issued by the moto server at URL (e.g. http://127.0.0.1:5000)",
    )
    emulate.set_defaults(name="emulate", default_log_level="info")

    demo = add_parser(
        "demo",
        help="run the proxy against the emulator and send a few requests",
        description=(
            "Start the emulator and the proxy together, send a GET, a JSON POST and a "
            "streamed request, print what the function URL saw, and exit."
        ),
    )
    demo.add_argument(
        "--serve", action="store_true", help="keep both running for your own requests"
    )
    demo.add_argument(
        "--listen", metavar="HOST:PORT", default=None, help="proxy address with --serve"
    )
    demo.add_argument(
        "--admin",
        metavar="HOST:PORT",
        default="127.0.0.1:9901",
        help="where --serve shows the request inspector (default 127.0.0.1:9901)",
    )
    demo.add_argument(
        "--web-function",
        metavar="URL",
        help="emulate this Lambda Web Function endpoint instead of a function URL (the proxy "
        "signs with SigV4, or SigV4a for .lambda-web.global.on.aws)",
    )
    # The demo prints its own story on stdout; per-request logs would interleave with it.
    demo.set_defaults(name="demo", default_log_level="warning")
    return parser


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="the YAML config file")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="where the proxy listens (default 127.0.0.1:8080); overrides listen: of --config",
    )
    quick = parser.add_argument_group("one route without a config file (refused with --config)")
    quick.add_argument("--upstream", metavar="URL", help="where requests go (e.g. CloudFront)")
    quick.add_argument("--function-url", metavar="URL", help="the function URL to sign for")
    quick.add_argument(
        "--web-function",
        metavar="URL",
        help="the Lambda Web Function endpoint to sign for "
        "(SigV4, or SigV4a for .lambda-web.global.on.aws)",
    )
    quick.add_argument("--mode", choices=["iam", "oac", "none"], help="default iam")
    quick.add_argument("--role-arn", metavar="ARN", help="assume this role for signing")


def loader(args: argparse.Namespace) -> Callable[[], Config]:
    """How to (re)read the config: the file, or the quick form's flags."""
    config_path = args.config or os.environ.get("SIGNING_PROXY_CONFIG")
    if config_path:
        source = "--config" if args.config else "SIGNING_PROXY_CONFIG"
        for flag, value in _quick_only(args):
            if value is not None:
                raise ConfigError(
                    flag,
                    f"sets the one route given without a config file, but {source} names "
                    f"{config_path}: set it on the file's routes instead, or leave out the file",
                )
        listen = args.listen
        return lambda: load_config(config_path, listen=listen)
    if not args.upstream:
        raise ConfigError(
            args.name,
            "no config: give --config FILE (or set SIGNING_PROXY_CONFIG), or "
            "--upstream URL --function-url URL",
        )
    return lambda: quick_config(
        upstream=args.upstream,
        function_url=args.function_url,
        mode=args.mode or "iam",
        listen=args.listen,
        role_arn=args.role_arn,
        web_function=args.web_function,
    )


def _quick_only(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """The flags that make up the quick form's route, which a config file has its own of."""
    return [
        ("--upstream", args.upstream),
        ("--function-url", args.function_url),
        ("--web-function", args.web_function),
        ("--mode", args.mode),
        ("--role-arn", args.role_arn),
    ]


def overrides(args: argparse.Namespace) -> list[str]:
    """What the banner says the flags changed of the config file."""
    config_path = args.config or os.environ.get("SIGNING_PROXY_CONFIG")
    if not config_path:
        return []
    given = [
        ("--listen", args.listen, "listen"),
        ("--admin", getattr(args, "admin", None), "admin"),
    ]
    return [f"{flag} overrides {key}: of {config_path}" for flag, value, key in given if value]


def admin_override(args: argparse.Namespace, listen: Address) -> Address | None:
    """serve --admin (None: not given), which needs a port other than ``listen``'s."""
    if not args.admin:
        return None
    admin = Address(*parse_host_port(args.admin, path="--admin", example="127.0.0.1:9901"))
    check_admin_address(admin, listen, key="--admin")
    return admin


def workers(args: argparse.Namespace) -> int:
    """serve --workers: a number, or auto for one per core."""
    try:
        return worker_count(args.workers)
    except ValueError:
        raise ConfigError("--workers", f"{args.workers!r} is not a number >= 1 or auto") from None


def sign_request(args: argparse.Namespace) -> SignRequest:
    """What ``sign`` signs: --data (or @FILE), -H, -X, --date and the target."""
    from proxy.cli.sign import SignRequest

    body, data = b"", args.data
    if data is not None:
        if data.startswith("@"):
            try:
                body = Path(data[1:]).read_bytes()
            except OSError as exc:
                raise ConfigError("--data", f"cannot read {data[1:]}: {exc.strerror}") from exc
        else:
            body = data.encode()
    headers = []
    for header in args.header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise ConfigError("--header", f"{header!r} is not NAME: VALUE")
        headers.append((name.strip(), value.strip()))
    return SignRequest(
        method=(args.method or ("POST" if data is not None else "GET")).upper(),
        target=args.target,
        body=body,
        data=data,
        headers=tuple(headers),
        amz_date=args.date,
        route=args.route,
        signing=None if args.route else _explicit_target(args),
    )


def _explicit_target(args: argparse.Namespace) -> SigningTarget | None:
    """--host/--region/--service/--algorithm, filled from the host name where it implies
    them."""
    host = (args.host or urlsplit(args.target).hostname or "").lower()
    implied = implied_target(host, path="--host" if args.host else "PATH_OR_URL")
    algorithm = args.algorithm or (implied.algorithm if implied else "sigv4")
    # A SigV4a region set is not a region: the implied one serves only the same algorithm.
    same = implied is not None and implied.algorithm == algorithm
    region = args.region or (implied.region if implied and same else None)
    if algorithm == "sigv4a" and region is None:
        region = "*"
    service = args.service or (implied.service if implied else None)
    if not host or not region or not service:
        return None
    return SigningTarget(host, region, service, algorithm)
