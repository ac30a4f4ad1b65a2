"""The command line: ``main`` runs the subcommand ``arguments.py`` parsed, sets up logging, and
is the only place that exits the process (its exit codes, a closed pipe)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from proxy.cli.arguments import (
    admin_override,
    build_parser,
    loader,
    overrides,
    sign_request,
    workers,
)
from proxy.cli.serve import Stop, serve, serve_worker, serve_workers
from proxy.config.load import load_config
from proxy.config.values import parse_duration, parse_host_port
from proxy.errors import ConfigError, SigningProxyError
from proxy.model import Address
from proxy.serve.logs import setup_logging
from proxy.serve.supervisor import WORKER_FD

# Where --inspect serves the inspector when no admin address is given: health's default too.
_INSPECT_ADMIN = Address("127.0.0.1", 9901)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; the exit code is 0 on success, 1 on failure, 2 for bad input."""
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.argv = arguments  # workers of serve --workers run this same command line
    level = getattr(args, "log_level", None) or args.default_log_level
    setup_logging(level=level, form=getattr(args, "log_format", "text"))
    command = _COMMANDS[args.name]
    try:
        return command(args)
    except ConfigError as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return 2
    except SigningProxyError as exc:
        print(f"signing-proxy: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`check | head -1`): end quietly, as a program killed by
        # SIGPIPE would, and keep the interpreter from failing again on its last flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _serve(args: argparse.Namespace) -> int:
    load = loader(args)
    config = load()
    worker_fd = os.environ.get(WORKER_FD)
    if worker_fd is not None:
        return _run(lambda stop: serve_worker(config, load, int(worker_fd), stop))
    admin = admin_override(args, config.listen)
    count = workers(args)
    if args.inspect:
        if count > 1:
            raise ConfigError(
                "--inspect", "the inspector shows one process's requests: use --workers 1"
            )
        admin = admin or config.admin or _INSPECT_ADMIN
    notes = overrides(args)
    if count > 1:
        return _run(
            lambda stop: serve_workers(config, load, admin, count, args.argv, stop, notes=notes)
        )
    return _run(lambda stop: serve(config, load, admin, stop, inspect=args.inspect, notes=notes))


def _sign(args: argparse.Namespace) -> int:
    from proxy.cli.sign import run

    config_path = args.config or os.environ.get("SIGNING_PROXY_CONFIG")
    config = load_config(config_path) if config_path and args.route else None
    request = sign_request(args)
    print(run(request, config, as_json_output=args.json, canonical=args.show_canonical))
    return 0


def _check(args: argparse.Namespace) -> int:
    from proxy.check.command import check

    config = loader(args)()
    timeout = parse_duration(args.timeout, path="--timeout")
    # https://no-color.org: an environment that asks for no colour gets none unless forced.
    auto = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    color = args.color == "always" or (args.color == "auto" and auto)
    return _run(lambda stop: check(config, routes=args.route, color=color, timeout=timeout))


def _health(args: argparse.Namespace) -> int:
    from proxy.cli.health import health

    return health(args.url, config_path=args.config or os.environ.get("SIGNING_PROXY_CONFIG"))


def _emulate(args: argparse.Namespace) -> int:
    from proxy.cli.demo import emulate

    return _run(
        lambda stop: emulate(
            listen=args.listen,
            function_url=args.function_url,
            web_function=args.web_function,
            oac=args.oac,
            sts_url=args.sts_url,
            stop=stop,
        )
    )


def _demo(args: argparse.Namespace) -> int:
    from proxy.cli.demo import demo

    admin = Address(*parse_host_port(args.admin, path="--admin", example="127.0.0.1:9901"))
    return _run(
        lambda stop: demo(
            serve=args.serve,
            listen=args.listen,
            admin=admin,
            web_function=args.web_function,
            stop=stop,
        )
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve,
    "check": _check,
    "sign": _sign,
    "health": _health,
    "emulate": _emulate,
    "demo": _demo,
}


Main = Callable[[Stop], Coroutine[Any, Any, int]]


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
    stop = Stop()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.interrupt)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    return await main(stop)
