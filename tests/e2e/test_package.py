"""The package users install: the sdist and the wheel `python -m build` makes, in a fresh venv.

The tree is copied first (without .git, the virtualenv and earlier build output), so building
writes nothing into the checkout. `python -m build` makes the sdist and then the wheel from
that sdist, which is what proves the sdist carries everything the wheel is built from. The
wheel is then installed alone into a new virtualenv, with its runtime dependencies from the
package index, and its console script is run from there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from proxy import __version__
from tests.processes import child_env

ROOT = Path(__file__).resolve().parents[2]
# Building installs setuptools into two isolated environments and installing the wheel fetches
# the runtime dependencies: slower than the other processes, and still only a guard.
SLOW_GUARD = 300.0
# Local state of a checkout that a fresh clone would not have.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
)
TEST_ONLY = ("moto", "pytest", "selenium")
PAGE = "proxy/inspector/page/index.html"


@dataclass(frozen=True)
class Dist:
    """The two files `python -m build` made."""

    sdist: Path
    wheel: Path


def run_slow(command: Sequence[str], *, cwd: Path) -> str:
    """Run ``command`` in ``cwd`` without the checkout on the path; its stdout, or fail."""
    env = child_env()
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(  # noqa: S603 - our own interpreter and the venv's tools
        list(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=SLOW_GUARD,
        check=False,
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """The sdist and the wheel, built from a copy of the tree into a temporary directory."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    out = work / "dist"
    run_slow([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=work)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dist(sdist, wheel)


@pytest.fixture(scope="module")
def venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel alone installed; its bin directory."""
    work = tmp_path_factory.mktemp("venv")
    run_slow([sys.executable, "-m", "venv", str(work / "venv")], cwd=work)
    bin_dir = work / "venv" / "bin"
    run_slow([str(bin_dir / "pip"), "install", "--quiet", str(dist.wheel)], cwd=work)
    return bin_dir


def test_file_names_carry_the_version(dist: Dist) -> None:
    """The sdist and the wheel are named for proxy.__version__, the one place it is written."""
    assert dist.sdist.name == f"signing_proxy-{__version__}.tar.gz"
    assert dist.wheel.name == f"signing_proxy-{__version__}-py3-none-any.whl"


def test_wheel_holds_the_inspector_page_and_no_tests(dist: Dist) -> None:
    """The wheel has the inspector's page and the console script, and nothing but the package."""
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(f"signing_proxy-{__version__}.dist-info/entry_points.txt")
    assert PAGE in names
    assert "signing-proxy = proxy.cli.main:main" in entry_points.decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"proxy", f"signing_proxy-{__version__}.dist-info"}


def test_sdist_holds_what_the_wheel_is_built_from(dist: Dist) -> None:
    """The sdist has the metadata, the readme, every module the wheel has and the page."""
    prefix = f"signing_proxy-{__version__}/"
    with tarfile.open(dist.sdist) as sdist:
        names = {name.removeprefix(prefix) for name in sdist.getnames()}
    with zipfile.ZipFile(dist.wheel) as wheel:
        package = {name for name in wheel.namelist() if name.startswith("proxy/")}
    assert {"pyproject.toml", "README.md", PAGE} <= names
    assert package <= names


def test_wheel_installs_without_the_test_tools(venv: Path) -> None:
    """Installing the wheel brings the runtime dependencies only, and the package from the venv."""
    listed = json.loads(run_slow([str(venv / "pip"), "list", "--format=json"], cwd=venv))
    installed = {item["name"].lower() for item in listed}
    assert {"aiohttp", "botocore", "signing-proxy"} <= installed
    assert not installed & set(TEST_ONLY)
    where = run_slow([str(venv / "python"), "-c", "import proxy; print(proxy.__file__)"], cwd=venv)
    assert Path(where.strip()).is_relative_to(venv.parent)


def test_installed_version(venv: Path) -> None:
    """The installed `signing-proxy --version` prints proxy.__version__."""
    output = run_slow([str(venv / "signing-proxy"), "--version"], cwd=venv)
    assert output.strip() == f"signing-proxy {__version__}"


def test_installed_demo(venv: Path) -> None:
    """The installed `signing-proxy demo` runs the three requests and all of them verify."""
    output = run_slow([str(venv / "signing-proxy"), "demo"], cwd=venv)
    assert (
        output.strip().splitlines()[-1].startswith("All 3 requests arrived signed and verified")
    ), output
