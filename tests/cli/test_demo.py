"""`signing-proxy demo --serve` says what happens to each request; the serve banner is in the
JSON log too."""

from __future__ import annotations

import json
import logging

import pytest

from proxy.cli.demo import request_line
from tests.processes import (
    CLOUDFRONT,
    assert_clean_exit,
    child_env,
    free_port,
    module_command,
    send,
    started,
)


def test_demo_serve_prints_a_line_for_each_request() -> None:
    """A verified GET and a request the proxy refuses each get one line on stdout, with the
    path but not the query."""
    port, admin = free_port(), free_port()
    command = module_command(
        "demo", "--serve", "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"
    )
    with started(command) as child:
        child.wait_for(lambda line: line.startswith("Requests, as the proxy answers them"))
        assert send(port, "GET", "/hello?token=secret-in-query").status == 200
        verified = child.wait_for(lambda line: "/hello" in line)
        refused = send(port, "GET", "/x", headers={"Host": "rebind.attacker.example"})
        assert refused.status == 421
        refusal = child.wait_for(lambda line: "GET /x" in line)
        assert_clean_exit(child, child.stop())
    assert verified.strip() == "GET /hello -> 200  signed, verified by the function URL"
    assert refusal.strip().startswith("GET /x -> 421  refused by the proxy: host_not_allowed")
    assert "secret-in-query" not in "".join(child.stdout + child.stderr)


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("signing_proxy.access", logging.INFO, "", 0, "", None, None)
    record.__dict__.update({"method": "POST", "path": "/orders", "status": 200, **fields})
    return record


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"upstream_status": 200}, "POST /orders -> 200  signed, verified by the function URL"),
        (
            {"status": 403, "upstream_status": 403, "amzn_error_type": "AccessDeniedException"},
            "POST /orders -> 403  refused by the function URL: AccessDeniedException",
        ),
        (
            {"status": 403, "upstream_status": 403},
            "POST /orders -> 403  refused by CloudFront",
        ),
        (
            {
                "status": 413,
                "error": "body_too_large",
                "error_message": "the request body is "
                "larger than this route's max_body of 6 MiB; raise max_body",
            },
            "POST /orders -> 413  refused by the proxy: body_too_large: the request body is "
            "larger than this route's max_body of 6 MiB",
        ),
        (
            {"upstream_status": 200, "cut": "client_gone"},
            "POST /orders -> 200  signed, verified by the function URL; the reply was cut short "
            "(client_gone)",
        ),
    ],
    ids=["verified", "refused-by-lambda", "refused-by-cloudfront", "refused-by-proxy", "cut"],
)
def test_request_line(fields: dict[str, object], line: str) -> None:
    """One line says what happened: verified, or who refused it and why."""
    assert request_line(_record(**fields)).strip() == line


def test_the_json_log_has_the_banner_as_a_record() -> None:
    """With --log-format json the start is one JSON record on stderr, with the URL and routes;
    stdout keeps the human banner."""
    port = free_port()
    command = module_command(
        "serve", "--upstream", CLOUDFRONT, "--mode", "none", "--listen", f"127.0.0.1:{port}",
        "--log-format", "json",
    )  # fmt: skip
    with started(command, env=child_env()) as child:
        banner = child.wait_for(lambda line: "listening on" in line)
        assert_clean_exit(child, child.stop())
    records = [json.loads(line) for line in child.stderr if line.startswith("{")]
    [start] = [record for record in records if "url" in record]
    assert start["url"] == f"http://127.0.0.1:{port}"
    assert start["routes"] == ["default"]
    assert f"http://127.0.0.1:{port}" in banner
