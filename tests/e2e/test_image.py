"""The Docker image, built from the Dockerfile and run by a real engine as a sidecar user runs it.

One container, started once: ``--network host`` (the engine here has no bridge; the proxy
listens on 127.0.0.1 only), a read-only root with a tmpfs /tmp, a mounted ~/.aws whose profile
assumes a role through moto's STS, in front of ``signing-proxy emulate``, which verifies every
signature with its own code. `.ci/docker` makes an engine answer; without one these tests are
skipped with the reason. Where the base image cannot be pulled, a Debian stand-in is made under
its name (tests/docker_engine.py).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy import __version__
from tests.docker_engine import SLOW_GUARD, Docker, base_images, ensure_base_image, find_docker
from tests.processes import FUNCTION_URL, GUARD, free_port, module_command, send, started

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
TAG = "signing-proxy:e2e"
IMAGE_UID = 10001  # the Dockerfile's USER
ROLE = "arn:aws:iam::123456789012:role/sidecar"
# Over the proxy's in-memory limit (1 MiB), so the body is spooled to the tmpfs /tmp.
SPOOLED_BODY = bytes(range(256)) * (8 * 1024)
# The image's HEALTHCHECK runs every 15 s after a 10 s start period; a bound, not a measure.
HEALTHY_GUARD = 120.0
# The container's own /tmp (a tmpfs), not a path on this machine.
CONTAINER_TMP = "/tmp"  # noqa: S108


@dataclass(frozen=True)
class Container:
    """The running container: its name, the proxy's port and its admin port."""

    docker: Docker
    name: str
    port: int
    admin: int

    def inspect(self, template: str) -> str:
        return self.docker.check("inspect", "--format", template, self.name).strip()

    def logs(self) -> str:
        done = self.docker.run("logs", self.name)
        return done.stdout + done.stderr


@pytest.fixture(scope="module")
def docker() -> Docker:
    """A client and an engine that answers, or the test is skipped saying why."""
    found = find_docker()
    if isinstance(found, str):
        pytest.skip(f"no Docker engine: {found}")
    return found


@pytest.fixture(scope="module")
def image(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from the repository's Dockerfile, unchanged, with `docker build`."""
    workdir = tmp_path_factory.mktemp("base")
    for base in base_images(ROOT / "Dockerfile"):
        print(f"base image {base}: {ensure_base_image(docker, base, workdir)}")
    # --network host only because this engine has no bridge: the build's pip needs the index.
    docker.check("build", "--network", "host", "--tag", TAG, ".", cwd=ROOT, guard=SLOW_GUARD)
    return TAG


@pytest.fixture(scope="module")
def aws_home(tmp_path_factory: pytest.TempPathFactory, moto_sts_url: str) -> Path:
    """A ~/.aws whose profile assumes ROLE from long-term keys, STS being moto on loopback."""
    home = tmp_path_factory.mktemp("aws")
    (home / "config").write_text(
        "[profile sidecar]\n"
        f"role_arn = {ROLE}\n"
        "source_profile = keys\n"
        "region = eu-central-1\n"
        f"endpoint_url = {moto_sts_url}\n"
        "[profile keys]\n"
        "region = eu-central-1\n"
        f"endpoint_url = {moto_sts_url}\n"
    )
    (home / "credentials").write_text(
        "[keys]\naws_access_key_id = AKIAIMAGETESTKEY0001\n"
        "aws_secret_access_key = image-test-secret-not-a-real-key\n"
    )
    # Readable by the image's uid: on a laptop, `--user $(id -u)` is the README's way instead.
    for path in (home, home / "config", home / "credentials"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return home


@pytest.fixture(scope="module")
def emulator(moto_sts_url: str) -> Iterator[str]:
    """`signing-proxy emulate` on loopback, also accepting the keys moto's STS issues."""
    port = free_port()
    command = module_command("emulate", "--listen", f"127.0.0.1:{port}", "--sts-url", moto_sts_url)
    with started(command) as process:
        process.wait_for(lambda line: "listening on" in line)
        yield f"http://127.0.0.1:{port}"
        process.stop()


@pytest.fixture(scope="module")
def container(docker: Docker, image: str, aws_home: Path, emulator: str) -> Iterator[Container]:
    """The image running as a sidecar would: read-only root, tmpfs /tmp, ~/.aws mounted."""
    started_at = Container(docker, f"signing-proxy-e2e-{free_port()}", free_port(), free_port())
    docker.check(
        "run", "--detach", "--name", started_at.name,
        "--network", "host", "--read-only", "--tmpfs", CONTAINER_TMP,
        "--volume", f"{aws_home}:/home/proxy/.aws:ro",
        "--env", "AWS_PROFILE=sidecar",
        "--env", f"UPSTREAM_URL={emulator}",
        "--env", f"FUNCTION_URL={FUNCTION_URL}",
        "--env", f"SIGNING_PROXY_LISTEN=127.0.0.1:{started_at.port}",
        "--env", f"SIGNING_PROXY_ADMIN=127.0.0.1:{started_at.admin}",
        image,
    )  # fmt: skip
    try:
        _wait_until_ready(started_at)
        yield started_at
    finally:
        print(f"container logs:\n{started_at.logs()}")
        docker.run("rm", "--force", started_at.name)


def _wait_until_ready(container: Container) -> None:
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        if container.inspect("{{.State.Running}}") != "true":
            pytest.fail(f"the container stopped:\n{container.logs()}")
        try:
            if send(container.admin, "GET", "/readyz").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the proxy in the container never became ready:\n{container.logs()}")


def test_the_image_builds_from_the_dockerfile_and_prints_its_size(
    docker: Docker, image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Dockerfile builds with `docker build`; the image's size is printed."""
    size = int(docker.check("image", "inspect", "--format", "{{.Size}}", image))
    with capsys.disabled():
        print(f"\nimage {image}: {size / 2**20:.1f} MiB")
    assert docker.check("image", "inspect", "--format", "{{.Config.User}}", image).strip() == (
        f"{IMAGE_UID}:{IMAGE_UID}"
    )


def test_a_request_is_signed_with_the_mounted_profiles_role_and_verified(
    container: Container,
) -> None:
    """A GET through the container is verified by the emulator, signed by the profile's role."""
    reply = send(container.port, "GET", "/orders?id=7")
    assert reply.status == 200, reply.body
    echoed = reply.json()
    assert echoed["verified"] is True
    assert echoed["role_arn"] == ROLE
    assert echoed["access_key_id"] != "AKIAIMAGETESTKEY0001"
    assert echoed["target"] == "/orders?id=7"


def test_a_body_spooled_to_the_tmpfs_is_signed_under_a_read_only_root(
    container: Container,
) -> None:
    """A 2 MiB POST, spooled to /tmp (the only writable place), arrives whole and verified."""
    assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    reply = send(container.port, "POST", "/upload", body=SPOOLED_BODY)
    assert reply.status == 200, reply.body
    echoed = reply.json()
    assert echoed["verified"] is True
    assert echoed["body_length"] == len(SPOOLED_BODY)
    assert echoed["body_sha256"] == hashlib.sha256(SPOOLED_BODY).hexdigest()


def test_the_proxy_is_pid_1_and_runs_as_a_non_root_uid(container: Container) -> None:
    """The container's first process is the proxy, with every uid and gid 10001, none 0."""
    pid = container.inspect("{{.State.Pid}}")
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == [str(IMAGE_UID)] * 4
    assert fields["Gid"].split() == [str(IMAGE_UID)] * 4
    assert fields["NSpid"].split()[-1] == "1"  # PID 1 in the container's own namespace
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    # The console script, started by its interpreter: no shell in between to swallow SIGTERM.
    assert command[1].endswith(b"/signing-proxy"), command
    assert command[2] == b"serve", command


def test_metrics_show_build_info_and_the_credentials_expiry_timestamp(
    container: Container,
) -> None:
    """/metrics has build_info with this version and an expiry timestamp in the future."""
    send(container.port, "GET", "/")  # the credentials are fetched by the first signature
    text = send(container.admin, "GET", "/metrics").body.decode()
    samples = {
        sample.name: sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    build = samples["signing_proxy_build_info"]
    assert build.labels["version"] == __version__
    assert build.labels["python"].startswith("3.")
    expiry = samples["signing_proxy_credentials_expiry_timestamp_seconds"]
    assert expiry.labels["credentials"]
    assert expiry.value > time.time()


def test_the_healthcheck_becomes_healthy(container: Container) -> None:
    """The image's own HEALTHCHECK (`signing-proxy health`) reports the container healthy."""
    deadline = time.monotonic() + HEALTHY_GUARD
    status = container.inspect("{{.State.Health.Status}}")
    while status == "starting" and time.monotonic() < deadline:
        time.sleep(1)
        status = container.inspect("{{.State.Health.Status}}")
    assert status == "healthy", container.inspect("{{json .State.Health}}")


def test_docker_stop_drains_a_stream_in_flight_and_exits_0(container: Container) -> None:
    """`docker stop` (SIGTERM to PID 1) lets a stream in flight finish, then the exit is 0."""
    connection = http.client.HTTPConnection("127.0.0.1", container.port, timeout=GUARD)
    # Long enough between events that SIGTERM lands while the stream is still open.
    connection.request("GET", "/stream?chunks=3&delay=4")
    response = connection.getresponse()
    assert response.status == 200
    first = response.readline() + response.readline()
    stopped: list[str] = []
    stopper = threading.Thread(
        target=lambda: stopped.append(
            container.docker.check("stop", "--time", "60", container.name, guard=SLOW_GUARD)
        )
    )
    stopper.start()
    rest = response.read()
    connection.close()
    stopper.join(timeout=SLOW_GUARD)
    assert stopped, "docker stop did not return"
    assert first + rest == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    assert container.inspect("{{.State.ExitCode}}") == "0", container.logs()
    assert container.inspect("{{.State.OOMKilled}}") == "false"
    logs = container.logs()
    assert "waiting for 1 request(s) in flight" in logs, logs
    assert "Traceback" not in logs
    assert json.loads(container.inspect("{{json .State.Running}}")) is False
