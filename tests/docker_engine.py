"""A real Docker engine for the image test: a client that builds with BuildKit, an engine that
answers (`.ci/docker` installs and starts one), and the Dockerfile's base image, pulled or, where
no registry can be reached, made locally under the same name from Debian bookworm."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Guards against a hung engine or download only; nothing asserts how long anything takes.
COMMAND_GUARD = 120.0
SLOW_GUARD = 900.0
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STAND_IN_LABEL = "org.signing-proxy.stand-in"
# The RUN --mount in the Dockerfile needs BuildKit: built into clients before 23 (with
# DOCKER_BUILDKIT=1), the buildx plugin after.
_LAST_CLIENT_WITH_BUILTIN_BUILDKIT = 22


@dataclass(frozen=True)
class Docker:
    """One docker client, with the environment it builds with."""

    cli: str
    env: dict[str, str]

    def run(
        self, *args: str, guard: float = COMMAND_GUARD, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS``, its output captured."""
        return subprocess.run(  # noqa: S603 - a fixed client and the test's own arguments
            [self.cli, *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=guard,
            check=False,
        )

    def check(self, *args: str, guard: float = COMMAND_GUARD, cwd: Path | None = None) -> str:
        """``docker ARGS``'s standard output; a failure shows the command and what it said."""
        done = self.run(*args, guard=guard, cwd=cwd)
        if done.returncode != 0:
            raise AssertionError(
                f"docker {shlex.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
            )
        return done.stdout


def find_docker() -> Docker | str:
    """A client whose engine answers and that builds with BuildKit, or why there is none."""
    candidates = dict.fromkeys(c for c in (shutil.which("docker"), "/usr/bin/docker") if c)
    reasons: list[str] = []
    for cli in candidates:
        if not os.access(cli, os.X_OK):
            continue
        docker = Docker(cli, {**os.environ, "DOCKER_BUILDKIT": "1"})
        try:
            info = docker.run("info", "--format", "{{.ServerVersion}}", guard=30)
        except subprocess.TimeoutExpired:
            reasons.append(f"{cli} info: no answer within 30 s")
            continue
        if info.returncode != 0:
            said = (info.stderr.strip().splitlines() or ["no output"])[-1]
            reasons.append(f"{cli} info: {said}")
            continue
        if _builds_with_buildkit(docker):
            return docker
        reasons.append(f"{cli}: a client without the buildx plugin cannot build RUN --mount")
    if not reasons:
        return "no docker client is installed (.ci/docker installs Debian's docker.io)"
    return "; ".join(reasons) + " (.ci/docker installs and starts Debian's docker.io)"


def _builds_with_buildkit(docker: Docker) -> bool:
    if docker.run("buildx", "version").returncode == 0:
        return True
    version = docker.run("version", "--format", "{{.Client.Version}}").stdout.strip()
    major = re.match(r"(\d+)\.", version)
    return major is not None and int(major.group(1)) <= _LAST_CLIENT_WITH_BUILTIN_BUILDKIT


def base_images(dockerfile: Path) -> list[str]:
    """The images the Dockerfile's stages start FROM (not its own stage names)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM":
            if words[1] not in stages and words[1] not in images:
                images.append(words[1])
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
    return images


def ensure_base_image(docker: Docker, image: str, workdir: Path) -> str:
    """Have ``image`` in the engine: already there, pulled, or a local stand-in. Says which."""
    if docker.run("image", "inspect", image).returncode == 0:
        labels = docker.check("image", "inspect", "--format", "{{json .Config.Labels}}", image)
        return "a local stand-in (made earlier)" if STAND_IN_LABEL in labels else "present"
    if docker.run("pull", image, guard=SLOW_GUARD).returncode == 0:
        return "pulled"
    _make_stand_in(docker, image, workdir)
    return "a local stand-in (Debian bookworm with python3: no registry answered)"


def _make_stand_in(docker: Docker, image: str, workdir: Path) -> None:
    """Debian bookworm with python3 and pip under ``image``'s name, trusting the host's CAs.

    The host's bundle goes in so that pip inside the build reaches the package index the host
    reaches (through the same TLS-inspecting proxy, if there is one); EXTERNALLY-MANAGED goes
    so that pip installs into the system Python as it does in the official image; and python
    and pip are on PATH under the names the official image gives them.
    """
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise AssertionError(
            f"{image} could not be pulled and mmdebstrap, which makes a stand-in, is missing "
            "(.ci/docker installs it; Debian: apt-get install mmdebstrap)"
        )
    hooks = [
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        'ln -sf python3 "$1/usr/bin/python" && ln -sf pip3 "$1/usr/bin/pip"',
    ]
    if HOST_CA_BUNDLE.is_file():
        hooks.append(f'cp {shlex.quote(str(HOST_CA_BUNDLE))} "$1/etc/ssl/certs/"')
    tarball = workdir / "base.tar"
    command: list[str] = [
        mmdebstrap,
        "--variant=minbase",
        "--include=python3,python3-pip,python3-venv,ca-certificates",
        *(f"--customize-hook={hook}" for hook in hooks),
        "bookworm",
        str(tarball),
    ]
    made = subprocess.run(  # noqa: S603 - a fixed program and arguments
        command, capture_output=True, text=True, timeout=SLOW_GUARD, check=False
    )
    if made.returncode != 0:
        raise AssertionError(f"mmdebstrap exited {made.returncode}:\n{made.stderr[-4000:]}")
    changes: Sequence[str] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        f"LABEL {STAND_IN_LABEL}=bookworm",
        'CMD ["python3"]',
    )
    docker.check(
        "import", *(f"--change={c}" for c in changes), str(tarball), image, guard=SLOW_GUARD
    )
    tarball.unlink()
