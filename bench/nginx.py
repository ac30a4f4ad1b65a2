"""nginx for the benchmark, when it is installed: the fast origin, and the C proxy hop to compare.

Each instance gets its own prefix directory (config, pid file, logs, temp paths) under the
benchmark's temporary directory, runs in the foreground (``daemon off``) as the current user
with one worker process, and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import getpass
import grp
import os
import shutil
from pathlib import Path

from bench.processes import Child, free_port, port_open, wait_until

ORIGIN_BODY = '{"ok":true}\\n'  # the built-in upstream's body, in nginx's string syntax


def binary() -> str | None:
    """The nginx on PATH, if any."""
    return shutil.which("nginx")


def _common(prefix: Path) -> str:
    # As root, nginx would switch its worker to "nobody", which cannot use the temp paths.
    user = ""
    if os.geteuid() == 0:
        user = f"user {getpass.getuser()} {grp.getgrgid(os.getegid()).gr_name};\n"
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
{temp}
"""


def origin_config(
    prefix: Path,
    *,
    port: int,
    more_ports: tuple[int, ...] = (),
    tls_ports: tuple[int, ...] = (),
    certificate: tuple[Path, Path] | None = None,
) -> str:
    """The origin: 200 with a small JSON body for everything; request bodies read and dropped.

    ``more_ports`` serve the same, so each system can have an upstream port of its own (the Go
    proxy runs out of ephemeral ports towards a port it shares); ``tls_ports`` serve it over
    HTTPS with ``certificate`` (certificate chain file, key file).

    ``return`` answers as soon as the headers are in and drops the body afterwards; a client
    still sending a large body then sees its reply early (wrk stalls on that). So /upload
    reads the whole body first (``proxy_request_buffering``, kept in memory up to
    ``client_body_buffer_size``), then asks this same server for the reply without the body.
    """
    listens = "\n".join(
        f"        listen 127.0.0.1:{each} reuseport backlog=4096;" for each in (port, *more_ports)
    )
    if tls_ports:
        assert certificate is not None, "tls_ports need a certificate"
        chain, key = certificate
        listens += "".join(
            f"\n        listen 127.0.0.1:{each} ssl reuseport backlog=4096;" for each in tls_ports
        )
        listens += f"\n        ssl_certificate {chain};\n        ssl_certificate_key {key};"
    return (
        _common(prefix)
        + f"""    upstream itself {{
        server 127.0.0.1:{port};
        keepalive 64;
    }}
    server {{
{listens}
        client_max_body_size 10m;
        default_type application/json;
        location / {{
            return 200 '{ORIGIN_BODY}';
        }}
        location /upload {{
            client_body_buffer_size 10m;
            proxy_request_buffering on;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://itself/done;  # answered by location /
        }}
    }}
}}
"""
    )


def hop_config(prefix: Path, *, port: int, origin_port: int, stream_port: int) -> str:
    """A reverse proxy in front of the origin with upstream keep-alive: one C proxy hop.

    Request bodies are buffered (in memory up to 1 MiB, then in a temp file) before they go
    upstream, as this proxy must to hash them; streamed replies are passed on unbuffered.
    """
    return (
        _common(prefix)
        + f"""    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 128;
    }}
    upstream streamer {{
        server 127.0.0.1:{stream_port};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        client_max_body_size 10m;
        client_body_buffer_size 1m;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering on;
        location / {{
            proxy_pass http://origin;
        }}
        location /stream {{
            proxy_pass http://streamer;
            proxy_buffering off;
        }}
    }}
}}
"""
    )


def start(executable: str, name: str, config: str, *, directory: Path, port: int) -> Child:
    """Write ``config`` under ``directory/name`` and run nginx with it until ``port`` answers."""
    prefix = directory / name
    prefix.mkdir(parents=True, exist_ok=True)
    config_path = prefix / "nginx.conf"
    config_path.write_text(config)
    command = [executable, "-p", str(prefix), "-c", str(config_path), "-e", "stderr"]
    child = Child(name, command, directory=directory)
    try:
        wait_until(lambda: _listening(child, port), timeout=15, what=f"{name} on port {port}")
    except BaseException:
        child.stop()
        raise
    return child


def start_origin(executable: str, directory: Path, *, name: str = "nginx") -> tuple[Child, int]:
    """nginx as the origin (``origin_config``) on a free port, once it answers there."""
    port = free_port()
    config = origin_config(directory / name, port=port)
    return start(executable, name, config, directory=directory, port=port), port


def _listening(child: Child, port: int) -> bool:
    if not child.running():
        raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
    return port_open(port)
