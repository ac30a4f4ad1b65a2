"""Load the AWS SigV4 test-suite cases from tests/data/sigv4-testsuite (aws-c-auth, Apache-2.0)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SUITE = Path(__file__).parent / "data" / "sigv4-testsuite" / "v4"


@dataclass(frozen=True)
class Case:
    """One test-suite case: the request, its signing context and the expected outputs."""

    name: str
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    context: dict[str, object]
    directory: Path

    def expected(self, name: str) -> str:
        """The content of one expectation file, e.g. ``header-signature.txt``."""
        return (self.directory / name).read_text(encoding="utf-8")

    @property
    def credentials(self) -> dict[str, str]:
        """The access key id, secret and optional token of this case."""
        value = self.context["credentials"]
        assert isinstance(value, dict)
        return value

    @property
    def amz_date(self) -> str:
        """The case's timestamp as X-Amz-Date."""
        stamp = str(self.context["timestamp"])  # 2015-08-30T12:36:00Z
        return stamp.replace("-", "").replace(":", "")


def load(name: str) -> Case:
    """Parse one case's request.txt: LF line endings, obs-fold lines joined, body after a blank."""
    directory = SUITE / name
    raw = (directory / "request.txt").read_bytes().decode("utf-8")
    head, _, body = raw.partition("\n\n")
    lines = head.split("\n")
    # The target may hold a raw space ("/example space/"): the method and version are the ends.
    method, _, rest = lines[0].partition(" ")
    target = rest.rpartition(" ")[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t") and headers:
            name_, value = headers[-1]
            headers[-1] = (name_, f"{value} {line.strip()}")
        else:
            name_, _, value = line.partition(":")
            headers.append((name_, value.strip()))
    context = json.loads((directory / "context.json").read_text(encoding="utf-8"))
    return Case(name, method, target, headers, body.encode("utf-8"), context, directory)


def names() -> list[str]:
    """Every case in the suite, sorted."""
    return sorted(path.name for path in SUITE.iterdir() if path.is_dir())
