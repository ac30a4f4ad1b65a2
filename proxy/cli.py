"""The command line: argument parsing and subcommands; the only place that exits the process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from proxy import __version__
from proxy.config import load_config, quick_config
from proxy.errors import ConfigError, SigningProxyError
from proxy.server import describe_routes, running
from proxy.settings import Config

log = logging.getLogger("signing_proxy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit code is 0 on success, 1 on failure, 2 for bad input."""
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level or args.default_log_level)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except ConfigError as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return 2
    except SigningProxyError as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="signing-proxy",
        description="Sign requests with AWS SigV4 for a Lambda function URL behind CloudFront.",
    )
    parser.add_argument("--version", action="version", version=f"signing-proxy {__version__}")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="how much to log to stderr (default: info; warning for demo)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy with a config file, or with one route given by flags.",
    )
    serve.add_argument("--config", metavar="FILE", help="the YAML config file")
    quick = serve.add_argument_group("one route without a config file")
    quick.add_argument("--upstream", metavar="URL", help="where requests go (e.g. CloudFront)")
    quick.add_argument("--function-url", metavar="URL", help="the function URL to sign for")
    quick.add_argument("--mode", default="iam", choices=["iam", "oac", "none"])
    quick.add_argument("--listen", metavar="HOST:PORT", help="default 127.0.0.1:8080")
    quick.add_argument("--role-arn", metavar="ARN", help="assume this role for signing")
    serve.set_defaults(command=_serve, default_log_level="info")

    emulate = commands.add_parser(
        "emulate",
        help="run a local CloudFront + function URL stand-in",
        description=(
            "Run an emulated CloudFront distribution in front of an emulated Lambda function "
            "URL (auth type AWS_IAM) that verifies every signature. No AWS account needed."
        ),
    )
    emulate.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9000")
    emulate.add_argument(
        "--function-url",
        metavar="URL",
        default="https://abc123xyz.lambda-url.eu-central-1.on.aws",
        help="the function URL it pretends to be (its host is what requests must be signed for)",
    )
    emulate.add_argument(
        "--oac", action="store_true", help="CloudFront signs with origin access control"
    )
    emulate.add_argument(
        "--sts-url",
        metavar="URL",
        help="also accept credentials issued by the moto server at URL (e.g. http://127.0.0.1:5000)",
    )
    emulate.set_defaults(command=_emulate, default_log_level="info")

    demo = commands.add_parser(
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
    # The demo prints its own story on stdout; per-request logs would interleave with it.
    demo.set_defaults(command=_demo, default_log_level="warning")
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # botocore's debug log prints the requests it signs, session tokens included: it stays
    # at warnings, whatever --log-level says.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("aiohttp.server").addFilter(_malformed_requests_in_one_line)


def _malformed_requests_in_one_line(record: logging.LogRecord) -> bool:
    """aiohttp logs a malformed request with a traceback quoting the raw request line, which
    may carry a caller's token in its query: keep one line naming the problem instead."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError):
        record.msg = "refused a malformed request: %s (HTTP %s)"
        record.args = (type(exc).__name__, exc.code)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


def _serve(args: argparse.Namespace) -> int:
    config = _config_from(args)
    return _run(lambda stop: _serve_until_stopped(config, stop))


def _config_from(args: argparse.Namespace) -> Config:
    config_path = args.config or os.environ.get("SIGNING_PROXY_CONFIG")
    quick = [args.upstream, args.function_url, args.listen, args.role_arn]
    if config_path and any(quick):
        raise ConfigError(
            "--config", "give either a config file or --upstream/--function-url, not both"
        )
    if config_path:
        return load_config(config_path)
    if not args.upstream:
        raise ConfigError(
            "serve",
            "nothing to serve: give --config FILE, or --upstream URL --function-url URL",
        )
    return quick_config(
        upstream=args.upstream,
        function_url=args.function_url,
        mode=args.mode,
        listen=args.listen,
        role_arn=args.role_arn,
    )


async def _serve_until_stopped(config: Config, stop: asyncio.Event) -> int:
    async with running(config) as proxy:
        print(f"signing-proxy {__version__} listening on {proxy.url}")
        for line in describe_routes(config):
            print(line)
        sys.stdout.flush()
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    return 0


def _emulate(args: argparse.Namespace) -> int:
    from proxy.demo import emulate

    return _run(
        lambda stop: emulate(
            listen=args.listen,
            function_url=args.function_url,
            oac=args.oac,
            sts_url=args.sts_url,
            stop=stop,
        )
    )


def _demo(args: argparse.Namespace) -> int:
    from proxy.demo import demo

    return _run(lambda stop: demo(serve=args.serve, listen=args.listen, stop=stop))


Main = Callable[[asyncio.Event], Coroutine[Any, Any, int]]


def _run(main: Main) -> int:
    """Run ``main`` on uvloop where it is installed (not on Windows), with an event that Ctrl-C
    and SIGTERM set, so that stopping takes the normal cleanup path."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_with_signals(main))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_with_signals(main))


async def _with_signals(main: Main) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await main(stop)
