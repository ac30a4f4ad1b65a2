"""Fixtures shared by every test: no real AWS credentials, and a real local STS (moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer


@pytest.fixture(autouse=True)
def isolated_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never see real credentials: no AWS_* variables, HOME in a temp dir, no IMDS."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    # The chain would otherwise try 169.254.169.254 and wait for its timeout.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


@pytest.fixture(scope="session")
def moto_sts_url() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1, standing in for STS."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def local_sts(moto_sts_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point botocore's STS client at moto, with throwaway keys for the caller."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_sts_url)
    return moto_sts_url
