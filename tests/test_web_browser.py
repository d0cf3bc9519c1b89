"""The web terminal and the back office end to end, in a real headless Chromium (Debian's
``chromium``, driven by Playwright with the system browser; ``.ci/run`` installs it).

A live server with the synthetic feed (4 ticks a second per symbol): log in from the demo
list, see quotes move, buy at the market, see the position and the account bar, close it
and find the deal in the history; in the back office halt a symbol and see the trader's
order refused with MT5's retcode. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_api_fixtures import ADMIN, LiveServer, make_runtime

CHROMIUM = os.environ.get("CFD_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install -e '.[dev]')")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
                allow_module_level=True)

expect = sync_api.expect
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer(make_runtime(feed="synthetic", feed_interval_ms=250)) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def trader(server: LiveServer, browser: object) -> Iterator[object]:
    """The terminal, logged in as the first demo account through the demo list."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/")
    acc = server.rt.demo["accounts"][0]
    expect(page.locator("#demo-list li")).to_have_count(3)  # the demo logins, listed
    _shot(page, "web-login.png")
    page.get_by_role("button", name=f"Log in as {acc['login']}").click()
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#acc-who")).to_contain_text(str(acc["login"]))
    yield page
    assert errors == []  # no uncaught script error on the page
    page.close()


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)  # type: ignore[attr-defined]


def _money(text: str) -> float:
    return float(text.replace(",", ""))


def test_quotes_move_and_the_chart_draws(trader: object) -> None:
    page = trader
    bid = page.locator('#watch-body tr[data-symbol="AAPL"] td.bid')
    expect(bid).to_have_text(re.compile(r"^\d+\.\d\d$"))
    first = bid.inner_text()
    expect(bid).not_to_have_text(first, timeout=15_000)  # the feed moved it
    expect(page.locator('#watch-body tr[data-symbol="AAPL"] td.mkt')).to_have_text("open")
    expect(page.locator("#chart-caption")).to_contain_text(" O ")  # a bar was drawn
    # ticks past the last bar ask for the bars again while they keep coming (every 100 ms
    # for a second: one reload after 300 ms, the next not before 2 s)
    reloads = page.evaluate("""async () => {
      let n = 0; const orig = window.loadBars;
      window.loadBars = () => { n++; return orig(); };
      for (let i = 0; i < 10; i++) { chart.onStale(); await new Promise(r => setTimeout(r, 100)); }
      window.loadBars = orig; return n; }""")
    assert reloads == 1
    # keyboard: from AAPL down one row, Enter selects MSFT
    page.locator('#watch-body tr[data-symbol="AAPL"]').focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#chart-symbol")).to_have_text("MSFT")
    page.locator('#watch-body tr[data-symbol="AAPL"]').click()
    expect(page.locator("#chart-symbol")).to_have_text("AAPL")


def test_market_order_position_account_close_history(trader: object) -> None:
    page = trader
    page.fill("#o-volume", "2")
    # order_check before sending: 2 lots * ~230 * 0.2 margin rate = ~92 USDT of margin
    expect(page.locator("#c-result")).to_have_text("0 Done")
    margin = _money(page.locator("#c-margin").inner_text())
    assert 80 < margin < 100, margin
    assert page.locator("#c-commission").inner_text() == "0.00"  # the catalogue charges none
    page.locator("#o-send").click()
    expect(page.locator("#o-result")).to_contain_text("10009")
    row = page.locator("#positions tbody tr", has_text="AAPL")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("2.00")
    # the account bar shows the position's margin (the figure order_check announced, give
    # or take the fill price) and equity follows the quotes
    expect(page.locator("#acc-margin")).not_to_have_text("0.00")
    bar_margin = _money(page.locator("#acc-margin").inner_text())
    assert abs(bar_margin - margin) < 1.0, (bar_margin, margin)
    profit = row.locator("td").nth(10)
    expect(profit).not_to_have_text("", timeout=5_000)
    equity = page.locator("#acc-equity").inner_text()
    expect(page.locator("#acc-equity")).not_to_have_text(equity, timeout=15_000)
    _shot(page, "web-terminal-position.png")
    row.get_by_role("button", name=re.compile("Close position")).click()
    expect(page.locator("#toast")).to_contain_text("10009")
    expect(page.locator("#positions tbody")).to_contain_text("No open positions")
    expect(page.locator("#acc-margin")).to_have_text("0.00")
    page.get_by_role("tab", name="History").click()
    out = page.locator("#history-table tbody tr", has_text="AAPL").filter(has_text="Out")
    expect(out).to_have_count(1)
    expect(out).to_contain_text("2.00")
    # sortable: the Profit header's button sorts ascending, then descending
    profit_head = page.locator("#history-table th", has_text="Profit")
    profit_head.get_by_role("button").click()
    expect(profit_head).to_have_attribute("aria-sort", "ascending")
    profits = page.locator("#history-table tbody tr td:nth-child(11)").all_inner_texts()
    values = [_money(v) for v in profits]
    assert values == sorted(values), values
    profit_head.get_by_role("button").press("Enter")  # and from the keyboard
    expect(profit_head).to_have_attribute("aria-sort", "descending")
    _shot(page, "web-terminal.png")


def test_pending_order_modify_and_remove(trader: object) -> None:
    page = trader
    page.locator('#watch-body tr[data-symbol="AAPL"]').click()
    page.select_option("#o-kind", "_LIMIT")
    expect(page.locator("#o-price-l")).to_be_visible()
    expect(page.locator("#o-deviation-l")).to_be_hidden()
    page.fill("#o-volume", "1")
    page.fill("#o-price", "200.00")  # a buy limit below the market (~230)
    expect(page.locator("#c-result")).to_have_text("0 Done")
    expect(page.locator("#o-send")).to_have_text("Place Buy Limit 1 AAPL")
    page.locator("#o-send").click()
    expect(page.locator("#o-result")).to_contain_text("10008 Order placed")
    page.get_by_role("tab", name=re.compile("Orders")).click()
    row = page.locator("#orders tbody tr", has_text="AAPL")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Buy Limit")
    expect(row).to_contain_text("200.00")
    row.get_by_role("button", name=re.compile("Modify order")).click()
    expect(page.locator("#modify")).to_be_visible()
    page.fill("#m-price", "201.50")
    page.locator("#m-ok").click()
    expect(page.locator("#modify")).to_be_hidden()
    expect(row).to_contain_text("201.50")
    row.get_by_role("button", name=re.compile("Remove order")).click()
    expect(page.locator("#orders tbody")).to_contain_text("No pending orders")
    expect(page.locator("#messages")).to_contain_text("Remove order")
    page.select_option("#o-kind", "")
    page.get_by_role("tab", name=re.compile("Positions")).click()


def test_back_office_halt_refuses_the_trader(server: LiveServer, browser: object,
                                             trader: object) -> None:
    other = server.rt.demo["accounts"][1]  # a second trader holds NVDA: exposure to show
    h = {"X-CFD-Login": str(other["login"]), "Authorization": f"Bearer {other['api_key']}"}
    with httpx.Client(base_url=server.url, headers=h, timeout=30) as c:
        ask = c.get("/v1/symbol_info_tick/NVDA").json()["ask"]
        r = c.post("/v1/order_send", json={"action": 1, "symbol": "NVDA", "volume": 100.0,
                                           "type": 0, "price": ask, "deviation": 50,
                                           "type_filling": 0})
        assert r.json()["retcode"] == 10009, r.text
    office = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    office.goto(server.url + "/backoffice")
    office.get_by_role("button", name="Use the demo server's admin key").click()
    expect(office.locator("#app")).to_be_visible()
    expect(office.locator("#accounts tbody tr")).to_have_count(3)
    # the account with margin first; exposure: NVDA long 100 lots
    expect(office.locator("#accounts tbody tr").first).to_contain_text(str(other["login"]))
    expect(office.locator("#exposure tbody tr", has_text="NVDA")).to_contain_text("100")
    # the next rollover's projected financing: the NVDA long pays its night
    expect(office.locator("#financing")).to_contain_text("Next rollover")
    expect(office.locator("#financing tbody tr", has_text="NVDA")).to_have_count(1)
    expect(office.locator("#corporate")).to_contain_text("Upcoming")
    form = office.locator('form[data-kind="market"]')
    form.locator('input[name="symbol"]').fill("MSFT")
    form.get_by_role("button", name="Halt…").click()
    expect(office.locator("#confirm")).to_be_visible()
    expect(office.locator("#confirm-what")).to_contain_text("Halt trading in MSFT")
    office.locator("#confirm-ok").click()  # no reason yet: refused in the dialog
    expect(office.locator("#confirm-error")).to_contain_text("reason")
    office.fill("#confirm-reason", "pending news")
    office.locator("#confirm-ok").click()
    expect(office.locator("#act-result")).to_contain_text("10009")
    expect(office.locator("#markets tbody")).to_contain_text("halted")
    expect(office.locator("#audit tbody tr").first).to_contain_text("pending news")
    expect(office.locator("#audit tbody tr").first).to_contain_text("admin:admin")
    office.locator("#accounts tbody tr").first.click()
    expect(office.locator("#detail")).to_be_visible()
    expect(office.locator("#d-positions tbody")).to_contain_text("NVDA")
    _shot(office, "web-backoffice.png")

    page = trader
    page.locator('#watch-body tr[data-symbol="MSFT"]').click()
    expect(page.locator('#watch-body tr[data-symbol="MSFT"] td.mkt')).to_have_text("halted")
    expect(page.locator("#c-result")).to_contain_text("10017 Trade is disabled")
    page.locator("#o-send").click()
    expect(page.locator("#o-result")).to_contain_text("10017 Trade is disabled")
    _shot(page, "web-terminal-halted.png")
    office.close()


def test_margin_call_and_stop_out_are_announced(server: LiveServer, trader: object) -> None:
    page = trader
    login = server.rt.demo["accounts"][0]["login"]
    page.locator('#watch-body tr[data-symbol="AAPL"]').click()
    page.fill("#o-volume", "1")
    expect(page.locator("#c-result")).to_have_text("0 Done")
    page.locator("#o-send").click()
    expect(page.locator("#o-result")).to_contain_text("10009")
    expect(page.locator("#positions tbody tr", has_text="AAPL")).to_have_count(1)
    admin = httpx.Client(base_url=server.url, headers=ADMIN, timeout=30)
    # margin ~46 USDT against ~100,000 of equity: a level near 217,000%. A margin-call
    # level of 1,000,000% puts the account at a margin call without moving a price.
    r = admin.post("/admin/levels", json={"login": login, "margin_call": 1e6, "stop_out": 0})
    assert r.json()["retcode"] == 10009
    expect(page.locator("#account-bar")).to_have_class(re.compile("lvl-call"))
    expect(page.locator("#acc-state")).to_contain_text("MARGIN CALL")
    expect(page.locator("#messages")).to_contain_text("Margin call: margin level")
    _shot(page, "web-terminal-margin-call.png")
    # a stop-out level above the account's level: the engine closes the position (reason SO)
    r = admin.post("/admin/levels", json={"login": login, "margin_call": 1e6, "stop_out": 1e6})
    assert r.json()["retcode"] == 10009
    expect(page.locator("#messages")).to_contain_text("Stop-out: Sell 1.00 AAPL at 2",
                                                      timeout=15_000)
    expect(page.locator("#positions tbody")).to_contain_text("No open positions")
    expect(page.locator("#account-bar")).to_have_class(re.compile("lvl-ok"))
    admin.post("/admin/levels", json={"login": login, "margin_call": 100, "stop_out": 50})


def test_phone_width_has_no_sideways_page(server: LiveServer, browser: object) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # type: ignore[attr-defined]
    page.goto(server.url + "/")
    acc = server.rt.demo["accounts"][1]
    page.fill("#login-login", str(acc["login"]))
    page.fill("#login-key", "not-the-key")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-error")).to_have_text("Unknown login or wrong API key")
    page.fill("#login-key", acc["api_key"])
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator('#watch-body tr[data-symbol="AAPL"] td.bid')).not_to_have_text("")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # tables scroll inside their panels, the page does not
    _shot(page, "web-terminal-phone.png")
    page.goto(server.url + "/backoffice")
    page.get_by_role("button", name="Use the demo server's admin key").click()
    expect(page.locator("#accounts tbody tr")).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    _shot(page, "web-backoffice-phone.png")
    page.close()
