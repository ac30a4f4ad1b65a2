"""The inspector page in a real headless browser (Debian's chromium, driven by Selenium): it
loads, shows a request live, expands it, and replays it; it lists what came before it was
opened, keeps paths on one line, and lays out a refusal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as seen
from selenium.webdriver.support.ui import WebDriverWait

from proxy.emulator import Emulator, Key
from proxy.inspector.store import MAX_SUBSCRIBERS
from proxy.serve.credentials import static_fetch
from proxy.serve.server import Running
from tests.browser import WAIT, chromium, off_loop
from tests.inspector.test_store import inspected
from tests.stack import KEY, KEY_ID, route

SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH-browser-token-never-shown"
LOADED = (By.CSS_SELECTOR, '#exchanges[data-list="loaded"]')
# Long enough to be cut on any screen; its words must never be broken over lines.
LONG_PATH = "/orders/" + "/".join(f"segment-{number}-of-a-long-path" for number in range(12))


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
        hint = await off_loop(
            lambda: wait.until(seen.visibility_of_element_located((By.ID, "empty"))).text
        )
        assert f"curl {proxy.url}/" in hint
        assert "signing-proxy serve --config proxy.yaml --inspect" in hint

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
        assert not await off_loop(lambda: browser.find_element(By.ID, "empty").is_displayed())
        console = await off_loop(lambda: _console(browser))

    errors = [
        entry
        for entry in console
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]
    assert errors == []  # no script error, no CSP violation (the page has no favicon)
    assert len(emulator.requests) == 2
    assert all(request.verdict.ok for request in emulator.requests)


@contextlib.asynccontextmanager
async def _no_live_stream(client: aiohttp.ClientSession, proxy: Running) -> AsyncIterator[None]:
    """Every live stream the inspector allows held open, so that the page's own is refused."""
    async with contextlib.AsyncExitStack() as streams:
        for _ in range(MAX_SUBSCRIBERS):
            events = await streams.enter_async_context(
                client.get(f"{proxy.admin_url}/inspect/events")
            )
            async with asyncio.timeout(WAIT):  # a bound against a hang only
                await events.content.readuntil(b"\n\n")  # subscribed
        yield


async def _rows(browser: webdriver.Chrome) -> list[str]:
    """The ids of the rows the page shows, top to bottom."""

    def ids() -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "tr.exchange")
        return [row.get_attribute("id") or "" for row in rows]

    return await off_loop(ids)


async def test_the_page_lists_earlier_requests_on_load_without_the_live_stream(
    browser: webdriver.Chrome, emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """Requests made before the page was opened are listed as soon as it has loaded, and
    "No requests yet" is not shown, even when its live stream is refused."""
    wait = WebDriverWait(browser, WAIT)
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        for number in range(6):
            async with client.get(f"{proxy.url}/orders/{number}") as response:
                assert response.status == 200
        async with _no_live_stream(client, proxy):
            await off_loop(lambda: browser.get(f"{proxy.admin_url}/inspect"))
            await off_loop(lambda: wait.until(seen.presence_of_element_located(LOADED)))
            shown = await _rows(browser)
            empty = await off_loop(lambda: browser.find_element(By.ID, "empty").is_displayed())
            live = (By.ID, "live")
            await off_loop(lambda: wait.until(seen.text_to_be_present_in_element(live, "reload")))
    assert shown == [f"exchange-{number}" for number in range(6, 0, -1)]
    assert not empty


async def test_a_long_path_stays_on_one_line(
    browser: webdriver.Chrome, emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A long path is cut on one line (as tall as a short path), never broken mid-word, and
    the whole of it is in the cell's title and in the expanded row."""
    wait = WebDriverWait(browser, WAIT)
    await off_loop(lambda: browser.set_window_size(900, 700))
    async with inspected(route(emulator.cloudfront_url)) as proxy:
        for path in ("/orders", LONG_PATH):
            async with client.get(f"{proxy.url}{path}") as response:
                assert response.status == 200
        await off_loop(lambda: browser.get(f"{proxy.admin_url}/inspect"))
        await off_loop(lambda: wait.until(seen.presence_of_element_located(LOADED)))
        measured: dict[str, Any] = await off_loop(
            lambda: browser.execute_script(
                """
                const [long, short] = [2, 1].map(
                  (id) => document.querySelector(`#exchange-${id} .path-text`));
                return {
                  heights: [long, short].map((text) => text.getBoundingClientRect().height),
                  whiteSpace: getComputedStyle(long).whiteSpace,
                  text: long.textContent,
                  title: long.title,
                  cut: long.scrollWidth > long.clientWidth,
                };
                """
            )
        )
        await off_loop(lambda: browser.find_element(By.ID, "exchange-2").click())
        target = (By.CSS_SELECTOR, '#details-2 [data-field="target"]')
        await off_loop(
            lambda: wait.until(seen.text_to_be_present_in_element(target, f"GET {LONG_PATH}"))
        )
    long_height, short_height = measured["heights"]
    assert long_height == short_height
    assert measured["whiteSpace"] == "nowrap"
    assert measured["text"] == measured["title"] == LONG_PATH
    assert measured["cut"]


async def test_a_refused_request_shows_what_aws_said_and_what_to_check(
    browser: webdriver.Chrome, client: aiohttp.ClientSession
) -> None:
    """Expanding a request the function refused (signed with the wrong secret) shows what
    AWS said with its expected canonical string, what the proxy concluded, what to check and
    the upstream's reply body, with the session token masked throughout."""
    key = Key(KEY.secret_access_key, session_token=SESSION_TOKEN)
    wrong = {"default": static_fetch(KEY_ID, "not/the/function's+secret", SESSION_TOKEN)}
    wait = WebDriverWait(browser, WAIT)
    async with (
        Emulator(keys={KEY_ID: key}) as emulator,
        inspected(route(emulator.cloudfront_url), overrides=wrong) as proxy,
    ):
        async with client.get(f"{proxy.url}/orders?id=7") as response:
            assert response.status == 403
        await off_loop(lambda: browser.get(f"{proxy.admin_url}/inspect"))
        row = await off_loop(
            lambda: wait.until(seen.visibility_of_element_located((By.ID, "exchange-1")))
        )
        await off_loop(row.click)
        body = (By.CSS_SELECTOR, '#details-1 [data-field="upstream_body"]')
        await off_loop(lambda: wait.until(seen.visibility_of_element_located(body)))

        def texts() -> dict[str, str]:
            shown = {}
            for name in ("aws", "concluded", "checks", "upstream_body"):
                element = browser.find_element(
                    By.CSS_SELECTOR, f'#details-1 [data-section="{name}"]'
                )
                shown[name] = element.text if element.is_displayed() else "(hidden)"
            return shown

        sections = await off_loop(texts)
        checks = await off_loop(
            lambda: browser.find_elements(By.CSS_SELECTOR, '#details-1 [data-field="checks"] li')
        )
        page = await off_loop(lambda: browser.page_source)

    masked_token = f"x-amz-security-token:[masked, {len(SESSION_TOKEN)} chars]"
    assert sections["aws"].startswith("What AWS said")
    assert "InvalidSignatureException" in sections["aws"]
    assert "The Canonical String for this request should have been" in sections["aws"]
    assert masked_token in sections["aws"]
    assert sections["concluded"].startswith("What the proxy concluded\nsignature mismatch")
    assert sections["checks"].startswith("What to check")
    assert len(checks) >= 3
    assert "signing-proxy check --route r" in sections["checks"]
    assert sections["upstream_body"].startswith("The upstream's reply body")
    assert '{"Message":' in sections["upstream_body"]
    assert "The Canonical String for this request should have been" in sections["upstream_body"]
    assert SESSION_TOKEN not in page
