"""The deployment files: the Dockerfile, the image's config, the compose and Kubernetes examples.

The Dockerfile is checked by reading it here (test_image.py builds and runs it with a real
engine), and the image's command line (ENTRYPOINT + CMD, its ENV and its config file) is run
directly as a real process, on any machine. The examples are parsed and checked against each
other and against the image.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import signal
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.load import load_config
from proxy.config.values import parse_duration
from proxy.errors import ConfigError
from proxy.model import Config
from tests.processes import (
    CONSOLE_SCRIPT,
    FUNCTION_URL,
    assert_clean_exit,
    assert_proxy_error,
    child_env,
    free_port,
    listening_line,
    run,
    send,
    started,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_CONFIG = ROOT / "deploy" / "docker" / "config.yaml"
COMPOSE = ROOT / "docker-compose.example.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
CLOUDFRONT = "https://d111111abcdef8.cloudfront.net"
ADMIN_PORT = 9901
# The container's temp dir (where big bodies are spooled), not a path these tests write to.
CONTAINER_TMP = "/tmp"  # noqa: S108
# Every variable the image's config reads; cleared before each run so the host cannot leak in.
IMAGE_VARIABLES = (
    "SIGNING_PROXY_LISTEN",
    "SIGNING_PROXY_ADMIN",
    "SIGNING_PROXY_ALLOW_UNAUTHENTICATED",
    "SIGNING_PROXY_SHUTDOWN_GRACE",
    "UPSTREAM_URL",
    "FUNCTION_URL",
    "SIGNING_MODE",
)


# --- reading the Dockerfile ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its continuation lines joined."""

    keyword: str
    args: str


def read_dockerfile(text: str) -> list[list[Instruction]]:
    """The instructions of each build stage, in order (a stage starts at each FROM)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        # Comment lines are dropped, also in the middle of a continued instruction (as Docker
        # does); parser directives such as `# syntax=` are comments to this reader.
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, f"the Dockerfile ends inside a continued line: {pending!r}"
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, f"{instruction.keyword} before the first FROM"
        stages[-1].append(instruction)
    return stages


def dockerfile_stages() -> list[list[Instruction]]:
    return read_dockerfile(DOCKERFILE.read_text())


def final_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    """The one instruction called ``keyword`` in ``stage`` (Docker uses the last; we want one)."""
    found = [item for item in stage if item.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the stage, found {found}"
    return found[0]


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction; fails for the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        pytest.fail(f"{args!r} is shell form (expected a JSON array: exec form)")
    assert isinstance(value, list)
    assert value
    assert all(isinstance(item, str) for item in value)
    return value


def healthcheck_command(stage: list[Instruction]) -> tuple[list[str], list[str]]:
    """HEALTHCHECK's options and its exec-form command."""
    options, marker, command = only(stage, "HEALTHCHECK").args.partition("CMD ")
    assert marker, "HEALTHCHECK without CMD"
    return options.split(), exec_form(command)


def image_env(stage: list[Instruction]) -> dict[str, str]:
    """Every ENV of the stage, in the KEY=VALUE form."""
    env: dict[str, str] = {}
    for item in stage:
        if item.keyword == "ENV":
            for word in shlex.split(item.args):
                key, equals, value = word.partition("=")
                assert equals, f"ENV {item.args!r}: use KEY=VALUE (the legacy form is ambiguous)"
                env[key] = value
    return env


def image_user(stage: list[Instruction]) -> tuple[str, str]:
    user, _, group = only(stage, "USER").args.partition(":")
    return user, group


def image_command() -> list[str]:
    """What `docker run IMAGE` runs (ENTRYPOINT + CMD), with the installed console script."""
    stage = final_stage()
    command = exec_form(only(stage, "ENTRYPOINT").args) + exec_form(only(stage, "CMD").args)
    assert command[0] == CONSOLE_SCRIPT.name
    return [str(CONSOLE_SCRIPT), *command[1:]]


def copies(stage: list[Instruction]) -> Iterator[tuple[list[str], str]]:
    """(sources, destination) of each COPY without --from (those read the build context)."""
    for item in stage:
        if item.keyword == "COPY":
            words = item.args.split()
            if any(word.startswith("--from") for word in words):
                continue
            *sources, destination = [word for word in words if not word.startswith("--")]
            yield sources, destination


# --- the Dockerfile --------------------------------------------------------------------------


def test_dockerfile_has_two_python_slim_stages() -> None:
    """Two stages, both FROM python:3.11-slim: a wheel builder and the runtime image."""
    stages = dockerfile_stages()
    assert len(stages) == 2
    for stage in stages:
        image = stage[0].args.split()[0]
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image
    assert stages[0][0].args.split()[1:] == ["AS", "build"]


def test_build_stage_makes_wheels_of_the_project() -> None:
    """The first stage runs `pip wheel .` into /wheels; the final one installs only those."""
    build, final = dockerfile_stages()
    runs = [item.args for item in build if item.keyword == "RUN"]
    assert any(re.search(r"pip wheel .*--wheel-dir /wheels .*\.$", args) for args in runs), runs
    (install,) = [
        item.args for item in final if item.keyword == "RUN" and "pip install" in item.args
    ]
    assert "from=build" in install
    # No network at install time and no cache left in a layer: exactly the built wheels.
    for flag in ("--no-index", "--find-links=/wheels", "--no-cache-dir"):
        assert flag in install


def test_build_stage_copies_what_the_build_reads() -> None:
    """The build context files pip needs (pyproject, its readme, the package) are copied."""
    build = dockerfile_stages()[0]
    sources = {source.rstrip("/") for group, _ in copies(build) for source in group}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"pyproject.toml", project["readme"], "proxy"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), source


@pytest.mark.parametrize(
    "tool",
    ["apt-get install", "apt install", "apk add", "gcc", "g++", "build-essential", "make "],
)
def test_final_stage_installs_no_build_tools(tool: str) -> None:
    """The runtime image installs no compiler or package-manager toolchain."""
    for item in final_stage():
        if item.keyword == "RUN":
            assert tool not in item.args, item.args


def test_final_stage_runs_as_fixed_non_root_uid() -> None:
    """USER is numeric and non-root (10001), and the user exists with that uid and HOME."""
    stage = final_stage()
    user, group = image_user(stage)
    assert user.isdigit()
    assert int(user) != 0
    assert user == "10001"
    assert group in ("", "10001")
    setup = " ".join(item.args for item in stage if item.keyword == "RUN")
    assert "groupadd --gid 10001 " in setup
    assert "useradd --uid 10001 --gid 10001 --home-dir /home/proxy " in setup
    # The empty ~/.aws belongs to the user, so mounts over it and caches under it work.
    assert re.search(r"install -d -o 10001 -g 10001 -m 0700 /home/proxy/\.aws\b", setup)


# Users and groups that Debian's base-passwd puts in every python:slim image.
# fmt: off
DEBIAN_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man",
    "proxy", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio",
    "dip", "www-data", "backup", "operator", "list", "irc", "src", "gnats", "shadow", "utmp",
    "video", "sasl", "plugdev", "staff", "games", "users", "nogroup", "nobody", "sync", "_apt",
})
# fmt: on


def test_image_account_names_are_free_in_debian() -> None:
    """The user and group the image adds are not names Debian's base image already has."""
    setup = " ".join(item.args for item in final_stage() if item.keyword == "RUN")
    added = re.findall(
        r"(?:groupadd|useradd)\b[^&;]*?\s([a-z_][a-z0-9_-]*)(?=\s*(?:&&|;|$))", setup
    )
    assert len(added) == 2, setup
    assert not DEBIAN_ACCOUNTS & set(added), added


def test_final_stage_environment() -> None:
    """HOME is the user's home, output is unbuffered and no bytecode is written."""
    env = image_env(final_stage())
    assert env["HOME"] == "/home/proxy"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_config_variable_names_the_copied_config() -> None:
    """SIGNING_PROXY_CONFIG is exactly where deploy/docker/config.yaml is copied to."""
    stage = final_stage()
    destinations = {
        destination
        for sources, destination in copies(stage)
        if sources == [IMAGE_CONFIG.relative_to(ROOT).as_posix()]
    }
    assert destinations == {image_env(stage)["SIGNING_PROXY_CONFIG"]}


def test_expose_proxy_and_admin_ports() -> None:
    """The image documents the proxy port 8080 and the admin port 9901."""
    assert set(only(final_stage(), "EXPOSE").args.split()) == {"8080", str(ADMIN_PORT)}


@pytest.mark.parametrize("keyword", ["ENTRYPOINT", "CMD"])
def test_entrypoint_and_cmd_are_exec_form(keyword: str) -> None:
    """ENTRYPOINT and CMD are JSON arrays, so the proxy is PID 1 and receives SIGTERM itself."""
    exec_form(only(final_stage(), keyword).args)


def test_image_runs_signing_proxy_serve() -> None:
    """`docker run IMAGE` means `signing-proxy serve`, stopped with SIGTERM."""
    stage = final_stage()
    assert exec_form(only(stage, "ENTRYPOINT").args) == ["signing-proxy"]
    assert exec_form(only(stage, "CMD").args) == ["serve"]
    assert only(stage, "STOPSIGNAL").args == "SIGTERM"


def test_healthcheck_uses_the_health_subcommand() -> None:
    """HEALTHCHECK runs `signing-proxy health` in exec form, with a timeout above its 3 s."""
    options, command = healthcheck_command(final_stage())
    assert command == ["signing-proxy", "health"]
    values = dict(option.removeprefix("--").split("=", 1) for option in options)
    assert {"interval", "timeout", "start-period", "retries"} <= set(values)
    assert parse_duration(values["timeout"], path="timeout") > 3.0
    assert parse_duration(values["interval"], path="interval") >= parse_duration(
        values["timeout"], path="timeout"
    )


# --- .dockerignore -----------------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (a close reading of its rules:
    a pattern matches the path or one of its parent directories; ``**/`` matches any depth)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        if pattern.startswith("**/"):
            tail = pattern[3:]
            candidates = [
                "/".join(parts[j : i + 1]) for i in range(len(parts)) for j in range(i + 1)
            ]
            hit = any(fnmatch.fnmatchcase(c, tail) for c in candidates)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if hit:
            verdict = not negated
    return verdict


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "proxy/__pycache__/cli.cpython-311.pyc",
        "bench/out/result.json",
        "signing_proxy.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    """Virtualenv, caches, git history and benchmark output never enter the build context."""
    assert ignored(path, dockerignore_patterns())


def test_dockerignore_keeps_what_the_build_copies() -> None:
    """Every file a COPY reads from the context is in the context."""
    patterns = dockerignore_patterns()
    sources = [
        source for stage in dockerfile_stages() for group, _ in copies(stage) for source in group
    ]
    files = [
        path.relative_to(ROOT).as_posix()
        for source in sources
        for path in (
            [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*.py")
        )
    ]
    assert files
    assert [path for path in files if ignored(path, patterns)] == []


# --- the image's command line, run directly ---------------------------------------------------


def image_process_env(**values: str) -> dict[str, str]:
    """The image's ENV and ``values`` over the test's credential-free environment.

    HOME stays the test's temp home (the image's /home/proxy does not exist here) and the
    config is the repository's copy of the file the image has at SIGNING_PROXY_CONFIG."""
    env = child_env()
    for name in IMAGE_VARIABLES:
        env.pop(name, None)
    env.update({k: v for k, v in image_env(final_stage()).items() if k != "HOME"})
    env["SIGNING_PROXY_CONFIG"] = str(IMAGE_CONFIG)
    env.update(values)
    return env


def admin_line(port: int) -> Callable[[str], bool]:
    return lambda line: f"admin on http://127.0.0.1:{port}" in line


def test_image_command_line_serves_reports_health_and_stops() -> None:
    """ENTRYPOINT + CMD with the image's config: listens, health 0, metrics, JSON 502, SIGTERM 0."""
    port, admin, closed = free_port(), free_port(), free_port()
    env = image_process_env(
        UPSTREAM_URL=f"http://127.0.0.1:{closed}",  # nothing listens there
        FUNCTION_URL=FUNCTION_URL,
        SIGNING_PROXY_LISTEN=f"127.0.0.1:{port}",
        SIGNING_PROXY_ADMIN=f"127.0.0.1:{admin}",
        SIGNING_MODE="none",  # no AWS credentials exist in the tests
    )
    with started(image_command(), env=env) as child:
        child.wait_for(listening_line(port))
        child.wait_for(admin_line(admin))

        health = run(
            [str(CONSOLE_SCRIPT), "health", "--url", f"http://127.0.0.1:{admin}/healthz"], env=env
        )
        assert health.returncode == 0, health.stderr
        assert len(health.stdout.splitlines()) == 1, health.stdout

        metrics = send(admin, "GET", "/metrics")
        assert metrics.status == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert b"# HELP " in metrics.body
        assert b"# TYPE " in metrics.body

        reply = send(port, "GET", "/orders?id=7")
        assert_proxy_error(reply, status=502, error="upstream_unreachable", route="default")
        assert_clean_exit(child, child.stop(signal.SIGTERM))


def test_health_against_a_closed_port_exits_1() -> None:
    """`signing-proxy health` fails (exit 1, one line) when nothing answers."""
    closed = free_port()
    result = run([str(CONSOLE_SCRIPT), "health", "--url", f"http://127.0.0.1:{closed}/healthz"])
    assert result.returncode == 1
    assert len((result.stdout + result.stderr).splitlines()) == 1, result


def test_image_without_upstream_is_a_config_error() -> None:
    """An unset UPSTREAM_URL stops the image at start: exit 2, one line naming key and variable."""
    env = image_process_env(FUNCTION_URL=FUNCTION_URL)
    result = run(image_command(), env=env)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "routes[0].upstream" in line
    assert "UPSTREAM_URL" in line


def load_image_config(monkeypatch: pytest.MonkeyPatch, **values: str) -> Config:
    """The image's config file loaded with exactly ``values`` among the variables it reads."""
    for name in IMAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_config(IMAGE_CONFIG)


def test_image_config_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only the URLs set: loopback 8080, admin on all interfaces at 9901, iam signing."""
    config = load_image_config(monkeypatch, UPSTREAM_URL=CLOUDFRONT, FUNCTION_URL=FUNCTION_URL)
    assert str(config.listen) == "127.0.0.1:8080"
    assert str(config.admin) == f"0.0.0.0:{ADMIN_PORT}"
    assert config.shutdown_grace == 30.0
    (route,) = config.routes
    assert route.name == "default"
    assert route.mode == "iam"
    assert route.signing is not None
    assert route.signing.host == "abc123xyz.lambda-url.eu-central-1.on.aws"


def test_image_config_refuses_a_public_listener_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Listening on 0.0.0.0 needs SIGNING_PROXY_ALLOW_UNAUTHENTICATED=true in so many words."""
    urls = {"UPSTREAM_URL": CLOUDFRONT, "FUNCTION_URL": FUNCTION_URL}
    with pytest.raises(ConfigError, match="listen"):
        load_image_config(monkeypatch, SIGNING_PROXY_LISTEN="0.0.0.0:8080", **urls)
    config = load_image_config(
        monkeypatch,
        SIGNING_PROXY_LISTEN="0.0.0.0:8080",
        SIGNING_PROXY_ALLOW_UNAUTHENTICATED="true",
        **urls,
    )
    assert config.allow_unauthenticated is True


# --- docker-compose.example.yaml ---------------------------------------------------------------


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def sidecar() -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"]["signing-proxy"]
    return service


def test_compose_has_app_and_sidecar_sharing_its_network() -> None:
    """The proxy joins the app's network namespace, so the app calls 127.0.0.1:8080."""
    services = compose()["services"]
    assert set(services) == {"app", "signing-proxy"}
    assert sidecar()["network_mode"] == "service:app"
    # Compose refuses published ports on a service that borrows another's network: the admin
    # port is published by the app, and only on the host's loopback.
    assert "ports" not in sidecar()
    assert f"127.0.0.1:{ADMIN_PORT}:{ADMIN_PORT}" in services["app"]["ports"]


def test_compose_builds_the_image_from_the_dockerfile() -> None:
    """The sidecar is built from the repository's Dockerfile."""
    build = sidecar()["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_mounts_aws_directory_read_only_at_home() -> None:
    """~/.aws is mounted read-only at the image user's ~/.aws, with AWS_PROFILE set."""
    target = posixpath.join(image_env(final_stage())["HOME"], ".aws")
    mounts = []
    for volume in sidecar()["volumes"]:
        if isinstance(volume, str):  # the short form, source:target[:options]
            source, mounted, *options = volume.split(":")
            mounts.append((source, mounted, "ro" in ",".join(options).split(",")))
        else:
            mounts.append((volume["source"], volume["target"], volume.get("read_only") is True))
    assert ("~/.aws", target, True) in mounts
    assert "AWS_PROFILE" in sidecar()["environment"]


def test_compose_sets_every_variable_the_image_config_requires() -> None:
    """UPSTREAM_URL and FUNCTION_URL (the references without a default) are set."""
    required = required_variables(IMAGE_CONFIG.read_text())
    assert required == {"UPSTREAM_URL", "FUNCTION_URL"}
    assert required <= set(sidecar()["environment"])


def test_compose_keeps_the_image_healthcheck_and_outwaits_the_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No healthcheck override; stop_grace_period outlasts the shutdown grace the proxy gets."""
    assert "healthcheck" not in sidecar()
    env = {k: v for k, v in sidecar()["environment"].items() if k in IMAGE_VARIABLES}
    config = load_image_config(monkeypatch, **env)
    grace = parse_duration(sidecar()["stop_grace_period"], path="stop_grace_period")
    assert grace > config.shutdown_grace


# --- deploy/kubernetes ---------------------------------------------------------------------------


def required_variables(text: str) -> set[str]:
    """Names in the config's ${NAME} references without a default (``$${`` is a literal)."""

    def strings(value: object) -> Iterator[str]:
        if isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)
        elif isinstance(value, str):
            yield value.replace("$${", "")

    # Read from the parsed values, so that references in comments do not count.
    return {
        name
        for value in strings(yaml.safe_load(text))
        for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value)
    }


def kubernetes_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None)
    return documents


def kubernetes_object(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in kubernetes_documents() if doc["kind"] == kind]
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = kubernetes_object("Deployment")["spec"]["template"]["spec"]
    return spec


def proxy_container() -> dict[str, Any]:
    """The signing-proxy container, a native sidecar (initContainers) or a plain one."""
    spec = pod_spec()
    candidates: list[dict[str, Any]] = [
        container
        for container in spec.get("initContainers", []) + spec["containers"]
        if container["name"] == "signing-proxy"
    ]
    (container,) = candidates
    return container


def container_port(container: dict[str, Any], port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


def configmap_config() -> str:
    text: str = kubernetes_object("ConfigMap")["data"]["config.yaml"]
    return text


@pytest.mark.parametrize(
    "path",
    [COMPOSE, *sorted(KUBERNETES.glob("*.yaml"))],
    ids=lambda path: path.relative_to(ROOT).as_posix(),
)
def test_example_files_are_valid_yaml(path: Path) -> None:
    """Every example parses; every Kubernetes document has apiVersion, kind and a name."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents
    if path.parent == KUBERNETES:
        for document in documents:
            assert {"apiVersion", "kind", "metadata"} <= set(document)
            assert document["metadata"]["name"]


def test_kubernetes_examples_hold_serviceaccount_configmap_and_deployment() -> None:
    """The three objects of the example, each once."""
    kinds = sorted(doc["kind"] for doc in kubernetes_documents())
    assert kinds == ["ConfigMap", "Deployment", "ServiceAccount"]


def test_proxy_is_a_native_sidecar() -> None:
    """As an init container the proxy restarts always (native sidecar, Kubernetes >= 1.29)."""
    container = proxy_container()
    assert container in pod_spec()["initContainers"]
    assert container["restartPolicy"] == "Always"
    assert [c["name"] for c in pod_spec()["containers"]] == ["app"]


@pytest.mark.parametrize(
    ("probe", "path"),
    [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")],
)
def test_probes_hit_the_admin_port(probe: str, path: str) -> None:
    """Readiness asks /readyz, liveness and startup /healthz, all on the admin port 9901."""
    container = proxy_container()
    get = container[probe]["httpGet"]
    assert get["path"] == path
    assert container_port(container, get["port"]) == ADMIN_PORT


def test_admin_port_agrees_everywhere() -> None:
    """The configmap's admin address, the container port and the scrape annotation agree."""
    admin = yaml.safe_load(configmap_config())["admin"]
    assert admin == f"0.0.0.0:{ADMIN_PORT}"
    (port,) = [p for p in proxy_container()["ports"] if p["containerPort"] == ADMIN_PORT]
    # Named ports are IANA service names: at most 15 characters, lower case.
    assert re.fullmatch(r"[a-z0-9-]{1,15}", port["name"])
    annotations = kubernetes_object("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ADMIN_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pod_outwaits_the_drain() -> None:
    """terminationGracePeriodSeconds is longer than the ConfigMap's shutdown_grace."""
    grace = yaml.safe_load(configmap_config())["shutdown_grace"]
    assert pod_spec()["terminationGracePeriodSeconds"] > parse_duration(grace, path="grace")


def test_pod_runs_as_the_image_user_with_a_read_only_root() -> None:
    """Non-root as the image's uid 10001, read-only root, /tmp an emptyDir for spooled bodies."""
    user, _ = image_user(final_stage())
    security = pod_spec()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(user)
    container = proxy_container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == CONTAINER_TMP]
    assert "emptyDir" in volumes[tmp["name"]]


def test_proxy_container_has_requests_and_limits() -> None:
    """CPU and memory requests and a memory limit are set."""
    resources = proxy_container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_configmap_is_mounted_where_the_image_reads_its_config() -> None:
    """The ConfigMap's config.yaml lands at the image's SIGNING_PROXY_CONFIG path."""
    path = image_env(final_stage())["SIGNING_PROXY_CONFIG"]
    directory, name = posixpath.split(path)
    container = proxy_container()
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == directory]
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    configmap = kubernetes_object("ConfigMap")
    assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert name in configmap["data"]
    # No --config flag: the image's variable names the file.
    assert "--config" not in container.get("args", [])


def container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def test_proxy_env_sets_urls_and_regional_sts() -> None:
    """The variables the config needs are set, and STS calls stay in the region."""
    env = container_env(proxy_container())
    assert required_variables(configmap_config()) <= set(env)
    assert {"UPSTREAM_URL", "FUNCTION_URL"} <= set(env)
    assert env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"


def test_configmap_config_loads_with_the_deployment_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The ConfigMap's config, expanded with the Deployment's env, is a valid config."""
    for name, value in container_env(proxy_container()).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(configmap_config())
    config = load_config(path)
    assert str(config.listen) == "127.0.0.1:8080"
    (route,) = config.routes
    assert route.mode == "iam"
    assert route.upstream.host == "d111111abcdef8.cloudfront.net"


def test_serviceaccount_has_the_irsa_annotation_and_the_pod_uses_it() -> None:
    """The ServiceAccount names an IAM role for IRSA; the Deployment's pods run as it."""
    account = kubernetes_object("ServiceAccount")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", role)
    assert pod_spec()["serviceAccountName"] == account["metadata"]["name"]
    # fsGroup makes the projected token file readable by the non-root uid.
    assert pod_spec()["securityContext"]["fsGroup"] == pod_spec()["securityContext"]["runAsUser"]


def test_kubernetes_proxy_command_line_runs(tmp_path: Path) -> None:
    """The sidecar's args and ConfigMap run: JSON logs, healthz 200, readyz 503, SIGTERM 0."""
    port, admin = free_port(), free_port()
    text = configmap_config()
    # Only the addresses change: the test cannot take 8080 and 9901 on a shared machine.
    for fixed, free in (("127.0.0.1:8080", port), (f"0.0.0.0:{ADMIN_PORT}", admin)):
        assert text.count(fixed) == 1
        text = text.replace(fixed, f"127.0.0.1:{free}")
    config = tmp_path / "config.yaml"
    config.write_text(text)
    env = image_process_env(**container_env(proxy_container()))
    env["SIGNING_PROXY_CONFIG"] = str(config)
    command = [str(CONSOLE_SCRIPT), *proxy_container()["args"]]
    with started(command, env=env) as child:
        child.wait_for(listening_line(port))
        child.wait_for(admin_line(admin))
        assert send(admin, "GET", "/healthz").status == 200
        # The tests have no AWS credentials: the iam route's set is unresolvable, so the pod
        # would stay out of its Services while staying alive.
        assert send(admin, "GET", "/readyz").status == 503
        assert_clean_exit(child, child.stop(signal.SIGTERM))
    for line in child.stderr:
        assert isinstance(json.loads(line), dict), line
    assert child.stderr, "expected JSON log lines on stderr"
