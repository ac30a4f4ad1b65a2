"""The inspector page in a real headless browser (Debian's chromium, driven by Selenium): it
loads, shows a request live, expands it, and replays it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from proxy.credentials import static_fetch
from proxy.emulator import Emulator, Key
from tests.browser import WAIT, chromium, off_loop
from tests.stack import KEY, KEY_ID, route
from tests.test_inspector import inspected

SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH-browser-token-never-shown"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless chromium with a fresh profile."""
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def _console(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """What the page logged to the browser console."""
    entries: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


async def test_the_page_shows_expands_and_replays_a_request(
    browser: webdriver.Chrome, client: aiohttp.ClientSession
) -> None:
    """A request sent while the page is open appears without a reload; clicking it shows the
    canonical request with the session token masked; Replay adds a row marked as a replay."""
    key = Key(KEY.secret_access_key, session_token=SESSION_TOKEN)
    keys = {"default": static_fetch(KEY_ID, KEY.secret_access_key, SESSION_TOKEN)}
    wait = WebDriverWait(browser, WAIT)
    async with (
        Emulator(keys={KEY_ID: key}) as emulator,
        inspected(route(emulator.cloudfront_url), overrides=keys) as proxy,
    ):
        await off_loop(lambda: browser.get(f"{proxy.admin_url}/inspect"))
        live = (By.ID, "live")
        await off_loop(lambda: wait.until(seen.text_to_be_present_in_element(live, "live")))

        async with client.get(f"{proxy.url}/orders?id=7&token=tok-secret") as response:
            assert response.status == 200
        row = await off_loop(
            lambda: wait.until(seen.visibility_of_element_located((By.ID, "exchange-1")))
        )
        assert "/orders?id=7&token=[masked, 10 chars]" in await off_loop(lambda: row.text)

        await off_loop(row.click)
        canonical = (By.CSS_SELECTOR, '#details-1 [data-field="canonical_request"]')
        token_line = f"x-amz-security-token:[masked, {len(SESSION_TOKEN)} chars]"
        await off_loop(
            lambda: wait.until(seen.text_to_be_present_in_element(canonical, token_line))
        )
        assert SESSION_TOKEN not in await off_loop(lambda: browser.page_source)

        replay = (By.CSS_SELECTOR, "#details-1 button.replay")
        await off_loop(lambda: wait.until(seen.element_to_be_clickable(replay)).click())
        replayed = (By.CSS_SELECTOR, 'tr.exchange[data-replay-of="1"]')
        new_row = await off_loop(lambda: wait.until(seen.visibility_of_element_located(replayed)))
        assert "replay of #1" in await off_loop(lambda: new_row.text)
        result = (By.CSS_SELECTOR, '#details-1 [data-field="replay_result"]')
        await off_loop(lambda: wait.until(seen.text_to_be_present_in_element(result, "status 200")))
        console = await off_loop(lambda: _console(browser))

    errors = [
        entry
        for entry in console
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]
    assert errors == []  # no script error, no CSP violation (the page has no favicon)
    assert len(emulator.requests) == 2
    assert all(request.verdict.ok for request in emulator.requests)
