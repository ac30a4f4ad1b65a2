"""${VAR} and ${VAR:-default} in config values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.config.env_expansion import expand_env
from proxy.config.load import load_config
from proxy.errors import ConfigError

ENV = {"HOST": "d111.cloudfront.net", "PORT": "8443", "EMPTY": "", "MAX": "32", "FLAG": "true"}


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("https://${HOST}", "https://d111.cloudfront.net"),
        ("${HOST}:${PORT}", "d111.cloudfront.net:8443"),
        ("${UNSET:-127.0.0.1:8080}", "127.0.0.1:8080"),
        ("${UNSET:-}", ""),
        ("${EMPTY:-fallback}", "fallback"),  # as in a shell: empty takes the default too
        ("${EMPTY}", ""),
        ("${MAX}", 32),
        ("${FLAG}", True),
        ("${UNSET:-6MiB}", "6MiB"),
        ("cost: $$5 and $${HOST}", "cost: $$5 and ${HOST}"),
        ("$${HOST}", "${HOST}"),
        ("no references", "no references"),
        ("${UNSET:-[a, b]}", "[a, b]"),
    ],
)
def test_expansion(value: str, expanded: object) -> None:
    """References are replaced; a lone reference may become a number or a boolean."""
    assert expand_env({"key": value}, ENV) == {"key": expanded}


def test_expansion_walks_lists_and_mappings() -> None:
    """Nested values are expanded where they stand; keys and non-strings are left alone."""
    data: Any = {"routes": [{"upstream": "https://${HOST}", "max_concurrent": 3}]}
    assert expand_env(data, ENV) == {
        "routes": [{"upstream": "https://d111.cloudfront.net", "max_concurrent": 3}]
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("${MISSING}", "MISSING is not set"),
        ("x-${MISSING}-y", "MISSING is not set"),
        ("${not valid}", "malformed reference"),
        ("${HOST", "malformed reference"),
    ],
)
def test_unset_or_malformed_reference_names_the_key(value: str, says: str) -> None:
    """An unset variable without a default, or a broken reference, is an error at its key."""
    with pytest.raises(ConfigError) as caught:
        expand_env({"routes": [{"upstream": value}]}, ENV)
    assert caught.value.path == "routes[0].upstream"
    assert says in caught.value.message


def test_config_file_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_config expands the file's values from the environment before validating them."""
    monkeypatch.setenv("UPSTREAM_URL", "https://d111111abcdef8.cloudfront.net")
    monkeypatch.setenv("MAX_CONCURRENT", "8")
    path = tmp_path / "config.yaml"
    path.write_text(
        "listen: ${LISTEN:-127.0.0.1:9999}\n"
        "routes:\n"
        "  - name: orders\n"
        "    upstream: ${UPSTREAM_URL}\n"
        "    function_url: https://abc123xyz.lambda-url.eu-central-1.on.aws\n"
        "    max_concurrent: ${MAX_CONCURRENT}\n"
    )
    config = load_config(path)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 9999)
    assert config.routes[0].upstream.host == "d111111abcdef8.cloudfront.net"
    assert config.routes[0].max_concurrent == 8
