"""The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`),
driven by Selenium, against a real `csms serve` with a simulated charger over the wire:
the charger comes online and a session appears live, Reset is clicked and the charger's
answer shows. A screenshot is kept in the test's temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from support.server_process import running_server
from test_api_e2e import api_url, create_key, wait_for_api

from simulator.chargepoint import Timing, VirtualChargePoint
from simulator.physics import ChargingCurve, Vehicle
from simulator.transport import url_connector

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOW_TO_ENABLE = (
    "the browser test needs Debian's headless Chromium and Selenium:"
    " apt-get install -y chromium chromium-driver && pip install selenium"
)


def open_browser() -> Any:
    webdriver = pytest.importorskip("selenium.webdriver", reason=HOW_TO_ENABLE)
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(HOW_TO_ENABLE)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(options=options, service=service)


async def until(browser: Any, condition: Callable[[Any], Any], timeout: float = 20) -> Any:
    """Wait (in a worker thread) until `condition(browser)` is truthy. The page re-renders
    as events arrive, so an element found may go stale: the condition is simply tried again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        browser, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return await trio.to_thread.run_sync(lambda: wait.until(condition))


def css(selector: str, *, click: bool = False) -> Callable[[Any], Any]:
    """A condition: the text of the first element matching `selector` (clicked, if asked)."""
    from selenium.webdriver.common.by import By

    def find(browser: Any) -> Any:
        found = browser.find_elements(By.CSS_SELECTOR, selector)
        if not found:
            return False
        text = found[0].text
        if click:
            found[0].click()
        return text or True

    return find


async def test_dashboard_shows_the_fleet_live_and_sends_commands(tmp_path: Path) -> None:
    browser = open_browser()
    try:
        with running_server(tmp_path) as server:
            await trio.to_thread.run_sync(wait_for_api, server)
            key = create_key(server, "browser", "admin")
            url = api_url(server)
            created = httpx.post(
                f"{url}/api/tokens",
                json={"id_tag": "RFID-1"},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert created.status_code == 201, created.text
            await trio.to_thread.run_sync(browser.get, f"{url}/#key={key}")
            await until(browser, css("#stream-state.on"))

            charger = VirtualChargePoint(
                "SIM-1",
                url_connector(f"ws://127.0.0.1:{server.ocpp_port}/ocpp", "SIM-1"),
                timing=Timing(reboot_delay_s=0.2, reconnect_delay_s=0.2),
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(charger.run)
                await until(browser, css('.station[data-station="SIM-1"][data-online="true"]'))
                vehicle = Vehicle(60_000.0, 0.3, 11_000.0, ChargingCurve.typical_ac())
                nursery.start_soon(charger.plug_in, 1, vehicle, "RFID-1")
                row = await until(browser, css("#sessions tbody tr[data-session]"))
                assert "SIM-1/1" in row and "RFID-1" in row
                await until(browser, css('.connector[data-status="Charging"]'))
                fleet = tmp_path / "dashboard-fleet.png"
                assert await trio.to_thread.run_sync(browser.save_screenshot, str(fleet))

                await until(browser, css('.station[data-station="SIM-1"]', click=True))
                await until(browser, css("#station-view:not([hidden])"))
                await until(browser, css('button[data-command="Reset"]', click=True))
                result = await until(browser, css('#command-result[data-status="200"]'))
                assert "Reset" in result and "Accepted" in result
                await until(browser, css("#station-sessions tbody tr[data-session]"))
                shot = tmp_path / "dashboard-station.png"
                assert await trio.to_thread.run_sync(browser.save_screenshot, str(shot))
                assert shot.stat().st_size > 0 and fleet.stat().st_size > 0
                print(f"dashboard screenshots: {fleet} {shot}")
                nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(browser.quit)
