// The trader's web terminal: quotes over /ws/ticks, everything else over the MT5 routes.
// The account, positions and orders are polled (1 s, 2 s) while the page is visible: a
// browser cannot send /ws/account's headers. Quotes are coalesced: the latest per symbol,
// painted once per animation frame.
"use strict";

const T = {
  login: null, symbols: new Map(), order: [], quotes: new Map(), market: new Map(),
  dirty: new Set(), selected: null, account: null, positions: [], orders: [],
  ws: null, wsDelay: 1000, rows: new Map(), ticks: 0, visible: new Set(), lastDealSec: 0, seenDeals: new Set(),
  levelState: "ok", tf: 1, checkSeq: 0,
};
const $ = (id) => document.getElementById(id);
const E = () => Web.K.enums;

// ------------------------------------------------------------------ login
async function showDemo() {
  try {
    const r = await fetch("/demo/credentials");
    if (!r.ok) return;
    const demo = await r.json();
    const list = $("demo-list");
    for (const a of demo.accounts) {
      list.append(Web.el("li", {},
        Web.el("button", { type: "button", onclick: () => login(a.login, a.api_key) },
          `Log in as ${a.login}`), ` ${a.name}`));
    }
    $("demo-admin").textContent = `admin key: ${demo.admin_key}`;
    $("demo").hidden = false;
  } catch (e) { /* not a demo server */ }
}

async function login(lg, key) {
  $("login-error").textContent = "";
  Web.setAuth({ "X-CFD-Login": String(lg).trim(), Authorization: `Bearer ${key.trim()}` });
  try {
    T.account = await Web.api("/v1/account_info");
  } catch (e) {
    Web.setAuth({});
    $("login-error").textContent = e.status === 401 ? "Unknown login or wrong API key" : e.message;
    return;
  }
  T.login = String(lg).trim();
  sessionStorage.setItem("cfd.terminal", JSON.stringify({ login: T.login, key: key.trim() }));
  $("login").hidden = true;
  $("app").hidden = false;
  await start();
}

function logout() {
  sessionStorage.removeItem("cfd.terminal");
  location.reload();
}

// ------------------------------------------------------------------ start
async function start() {
  const syms = await Web.api("/v1/symbols_get");
  for (const s of syms) {
    T.symbols.set(s.name, s);
    T.order.push(s.name);
    if (s.bid) T.quotes.set(s.name, { bid: s.bid, ask: s.ask, time: s.time });
  }
  buildWatch();
  buildTimeframes();
  buildTables();
  await refreshMarket();
  select(T.order[0]);
  connect();
  paintAccount();
  T.lastDealSec = Math.floor(Date.now() / 1000) - 60;
  every(1000, refreshAccount);
  every(2000, refreshOrders);
  every(3000, watchDeals);
  every(10000, refreshMarket);
  every(5000, () => { if (!document.hidden) checkOrder(); });
  let counted = 0;
  setInterval(() => {  // the feed's rate, shown beside "live"
    if (T.ws && T.ws.readyState === WebSocket.OPEN) {
      $("feed-state").textContent = `live · ${T.ticks - counted} ticks/s`;
    }
    counted = T.ticks;
  }, 1000);
  refreshHistory();
}

// Polled reads: every ``ms`` while the page is visible; a 401 logs out.
const every = (ms, fn) => Web.every(ms, fn, logout);

// ------------------------------------------------------------------ quotes
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/ticks?symbols=${encodeURIComponent(T.order.join(","))}`);
  T.ws = ws;
  ws.onopen = () => { T.wsDelay = 1000; $("feed-state").textContent = "live"; };
  ws.onmessage = (m) => {
    const t = JSON.parse(m.data);
    if (t.event !== "tick") return;
    T.ticks += 1;
    T.quotes.set(t.symbol, t);
    T.dirty.add(t.symbol);
    Web.schedule("watch", paintWatch);
    if (t.symbol === T.selected) {
      chart.tick(t.bid, t.time);
      Web.schedule("ticket", paintTicketPrices);
    }
  };
  ws.onclose = () => {
    $("feed-state").textContent = "reconnecting";
    setTimeout(connect, T.wsDelay);
    T.wsDelay = Math.min(T.wsDelay * 2, 10000);
  };
}

function buildWatch() {
  const body = $("watch-body");
  const rows = T.order.map((name) => {
    const s = T.symbols.get(name);
    const tr = Web.el("tr", { tabindex: 0, "data-symbol": name, title: s.description },
      Web.el("th", { scope: "row" }, name), Web.el("td", { class: "num bid" }),
      Web.el("td", { class: "num ask" }), Web.el("td", { class: "num chg" }),
      Web.el("td", { class: "mkt" }));
    tr.addEventListener("click", () => select(name));
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(name); }
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        let n = e.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        while (n && n.hidden) n = e.key === "ArrowDown" ? n.nextElementSibling : n.previousElementSibling;
        if (n) n.focus();
      }
    });
    T.dirty.add(name);
    T.rows.set(name, tr);
    return tr;
  });
  body.replaceChildren(...rows);
  // only rows on screen are painted; a row scrolled into view is painted then
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const name = e.target.dataset.symbol;
      if (e.isIntersecting) { T.visible.add(name); T.dirty.add(name); } else T.visible.delete(name);
    }
    Web.schedule("watch", paintWatch);
  }, { root: body.closest(".scroll") });
  for (const tr of rows) seen.observe(tr);
  $("watch-filter").addEventListener("input", (e) => {
    const q = e.target.value.trim().toUpperCase();
    for (const tr of body.children) {
      const s = T.symbols.get(tr.dataset.symbol);
      tr.hidden = q !== "" && !tr.dataset.symbol.includes(q) && !s.description.toUpperCase().includes(q);
    }
  });
  paintWatch();
}

function paintWatch() {
  for (const name of T.dirty) {
    if (!T.visible.has(name)) continue;  // painted when it scrolls into view
    const tr = T.rows.get(name);
    const q = T.quotes.get(name);
    const s = T.symbols.get(name);
    if (!tr || !s) continue;
    const [, bid, ask, chg, mkt] = tr.children;
    if (q) {
      const prev = Number(bid.dataset.v || 0);
      bid.className = `num bid ${q.bid > prev ? "up" : q.bid < prev ? "down" : bid.className.includes("up") ? "up" : ""}`;
      bid.dataset.v = q.bid;
      bid.textContent = Web.fmtPrice(q.bid, s.digits);
      ask.textContent = Web.fmtPrice(q.ask, s.digits);
      const open = s.session_open;
      const pct = open ? (q.bid - open) / open * 100 : null;
      chg.textContent = pct === null ? "" : `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
      chg.className = `num chg ${Web.signClass(pct)}`;
    }
    const m = T.market.get(name);
    if (m) {
      mkt.textContent = marketText(m);
      mkt.title = marketText(m);
      mkt.className = `mkt st-${m.state}`;
    }
  }
  T.dirty.clear();
}

function marketText(m) {
  if (m.state === "closed" && m.next_open_msc) {
    return `closed, opens ${new Date(m.next_open_msc).toISOString().slice(5, 16).replace("T", " ")}`;
  }
  return m.state;
}

async function refreshMarket() {
  const rows = await Web.api("/web/market");
  for (const m of rows) {
    const old = T.market.get(m.symbol);
    if (!old || old.state !== m.state || old.next_open_msc !== m.next_open_msc) {
      if (old) Web.announce(`${m.symbol}: market ${marketText(m)}`);
      T.market.set(m.symbol, m);
      T.dirty.add(m.symbol);
    }
  }
  Web.schedule("watch", paintWatch);
  if (T.selected) paintTicketState();
}

// ------------------------------------------------------------------ chart
let chart = null;

function buildTimeframes() {
  chart = new CandleChart($("chart"), $("chart-caption"));
  // a tick past the last bar: ask for the bars again, at most once every 2 s (a timer that
  // restarted on every tick would never fire under a fast feed)
  chart.onStale = () => {
    if (T.staleTimer) return;
    const wait = Math.max(300, 2000 - (Date.now() - (T.staleAt || 0)));
    T.staleTimer = setTimeout(() => { T.staleTimer = null; T.staleAt = Date.now(); loadBars(); }, wait);
  };
  const wanted = ["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1"];
  const host = $("timeframes");
  for (const name of wanted) {
    const v = Web.K.timeframes[name];
    if (v === undefined) continue;
    const b = Web.el("button", { type: "button", "data-tf": v, "aria-pressed": String(v === T.tf) }, name);
    b.addEventListener("click", () => {
      T.tf = v;
      for (const x of host.children) x.setAttribute("aria-pressed", String(x === b));
      loadBars();
    });
    host.append(b);
  }
}

function spanOf(tf) {
  if (tf >= 0xC000) return 31 * 86400;
  if (tf >= 0x8000) return 7 * 86400;
  if (tf >= 0x4000) return (tf & 0x3fff) * 3600;
  return tf * 60;
}

async function loadBars() {
  const sym = T.selected;
  const tf = T.tf;
  const span = spanOf(tf);
  const now = Math.floor(Date.now() / 1000);
  const from = Math.max(0, now - span * 200);
  const q = new URLSearchParams({ symbol: sym, timeframe: tf, date_from: from, date_to: now + 60 });
  const bars = await Web.api(`/v1/copy_rates_range?${q}`);
  if (sym !== T.selected || tf !== T.tf) return;
  chart.setBars(bars, T.symbols.get(sym).digits, span);
}

// ------------------------------------------------------------------ selection
function select(name) {
  T.selected = name;
  const s = T.symbols.get(name);
  for (const tr of $("watch-body").children) tr.setAttribute("aria-selected", String(tr.dataset.symbol === name));
  $("chart-symbol").textContent = name;
  $("chart-desc").textContent = s.description;
  $("ticket-symbol").textContent = name;
  const kinds = [["", "Market", E().OrderModeFlag.MARKET], ["_LIMIT", "Limit", E().OrderModeFlag.LIMIT],
                 ["_STOP", "Stop", E().OrderModeFlag.STOP], ["_STOP_LIMIT", "Stop limit", E().OrderModeFlag.STOP_LIMIT]];
  $("o-kind").replaceChildren(...kinds.filter((k) => s.order_mode & k[2])
    .map((k) => Web.el("option", { value: k[0] }, k[1])));
  const times = [["GTC", "Good till cancelled", E().ExpirationFlag.GTC], ["DAY", "Today", E().ExpirationFlag.DAY],
                 ["SPECIFIED", "Specified time", E().ExpirationFlag.SPECIFIED],
                 ["SPECIFIED_DAY", "Specified day", E().ExpirationFlag.SPECIFIED_DAY]];
  $("o-expiry").replaceChildren(...times.filter((k) => s.expiration_mode & k[2])
    .map((k) => Web.el("option", { value: k[0] }, k[1])));
  const step = s.volume_step;
  for (const id of ["o-volume"]) {
    Object.assign($(id), { min: s.volume_min, max: s.volume_max, step, value: s.volume_min });
  }
  for (const id of ["o-price", "o-stoplimit", "o-sl", "o-tp", "m-price", "m-sl", "m-tp"]) $(id).step = s.point;
  $("o-price").value = "";
  $("o-stoplimit").value = "";
  $("o-sl").value = "";
  $("o-tp").value = "";
  ticketLayout();
  loadBars();
  refreshMarket().catch(() => {});
}

// ------------------------------------------------------------------ account
async function refreshAccount() {
  const [acc, pos] = await Promise.all([Web.api("/v1/account_info"), Web.api("/v1/positions_get")]);
  T.account = acc;
  T.positions = pos;
  positionsTable.set(pos);
  $("n-positions").textContent = pos.length ? `(${pos.length})` : "";
  Web.schedule("account", paintAccount);
}

function levelState(a) {
  if (!a.margin) return "ok";
  const x = a.margin_so_mode === 1 ? a.equity : a.margin_level;
  if (x <= a.margin_so_so) return "stopout";
  if (x <= a.margin_so_call) return "call";
  if (x <= a.margin_so_call * 1.5) return "near";
  return "ok";
}

function paintAccount() {
  const a = T.account;
  if (!a) return;
  $("acc-who").textContent = `${a.login} ${a.name}`;
  $("acc-who").title = `${a.company}, ${a.server}: ${a.currency}, leverage 1:${a.leverage}`;
  $("acc-balance").textContent = Web.fmtMoney(a.balance);
  $("acc-credit").textContent = Web.fmtMoney(a.credit);
  $("acc-equity").textContent = Web.fmtMoney(a.equity);
  $("acc-margin").textContent = Web.fmtMoney(a.margin);
  $("acc-free").textContent = Web.fmtMoney(a.margin_free);
  $("acc-level").textContent = a.margin ? Web.fmtPct(a.margin_level) : "—";
  const st = levelState(a);
  const unit = a.margin_so_mode === 1 ? ` ${a.currency}` : "%";
  const words = { ok: "", near: `near margin call (${a.margin_so_call}${unit})`,
                  call: `MARGIN CALL (at or below ${a.margin_so_call}${unit})`,
                  stopout: `STOP-OUT level (${a.margin_so_so}${unit}) reached` };
  $("account-bar").className = `bar lvl-${st}`;
  $("acc-state").textContent = words[st];
  const rank = { ok: 0, near: 1, call: 2, stopout: 3 };
  if (rank[st] >= 2 && rank[st] > rank[T.levelState]) {
    const msg = st === "call"
      ? `Margin call: margin level ${Web.fmtPct(a.margin_level)} is at or below ${a.margin_so_call}${unit}`
      : `Stop-out level reached: margin level ${Web.fmtPct(a.margin_level)}, positions are being closed`;
    Web.announce(msg, "alert");
    toast(msg, "alert");
  }
  T.levelState = st;
}

async function refreshOrders() {
  const orders = await Web.api("/v1/orders_get");
  T.orders = orders;
  ordersTable.set(orders);
  $("n-orders").textContent = orders.length ? `(${orders.length})` : "";
}

// New deals since the last look: stop-outs (reason SO) are announced.
async function watchDeals() {
  const now = Math.floor(Date.now() / 1000);
  const q = new URLSearchParams({ date_from: Math.max(0, T.lastDealSec - 2), date_to: now + 60 });
  const deals = await Web.api(`/v1/history_deals_get?${q}`);
  const fresh = deals.filter((d) => !T.seenDeals.has(d.ticket));
  T.seenDeals = new Set(deals.map((d) => d.ticket));  // bounded by the window
  if (deals.length) T.lastDealSec = Math.max(T.lastDealSec, ...deals.map((d) => d.time));
  const so = fresh.filter((d) => d.reason === E().DealReason.SO);
  for (const d of so) {
    const msg = `Stop-out: ${Web.name("DealType", d.type)} ${Web.fmtVol(d.volume)} ${d.symbol} at ${Web.fmtPrice(d.price, digitsOf(d.symbol))}, profit ${Web.fmtMoney(d.profit)} (${d.comment})`;
    Web.announce(msg, "alert");
    toast(msg, "alert");
  }
  if (fresh.length) refreshHistory();
}

async function refreshHistory() {
  const now = Math.floor(Date.now() / 1000);
  const period = Number($("h-period").value);
  const q = new URLSearchParams({ date_from: period ? Math.max(0, now - period) : 0, date_to: now + 60 });
  const deals = await Web.api(`/v1/history_deals_get?${q}`);
  historyTable.set(deals);
  const DT = E().DealType;
  const trades = deals.filter((d) => d.type === DT.BUY || d.type === DT.SELL);
  const sum = (rows, k) => rows.reduce((x, d) => x + d[k], 0);
  const other = deals.filter((d) => d.type !== DT.BUY && d.type !== DT.SELL);
  $("h-sum").textContent = `${deals.length} deals · trading profit ${Web.fmtMoney(sum(trades, "profit"))}`
    + ` · commission ${Web.fmtMoney(sum(deals, "commission"))} · swap ${Web.fmtMoney(sum(deals, "swap"))}`
    + ` · fees ${Web.fmtMoney(sum(deals, "fee"))} · balance and other ${Web.fmtMoney(sum(other, "profit"))}`;
}

// ------------------------------------------------------------------ tables
let positionsTable, ordersTable, historyTable;

function digitsOf(sym) { const s = T.symbols.get(sym); return s ? s.digits : 2; }

function buildTables() {
  const px = (k) => ({ key: k, label: { price_open: "Open", sl: "S/L", tp: "T/P", price_current: "Price", price: "Price" }[k],
    num: true, fmt: (v, r) => Web.fmtPrice(v, digitsOf(r.symbol)) });
  positionsTable = new Web.Table($("positions"), [
    { key: "symbol", label: "Symbol" }, { key: "ticket", label: "Ticket", num: true, wide: false },
    { key: "time", label: "Time", fmt: Web.fmtTime, wide: false },
    { key: "type", label: "Type", fmt: (v) => Web.name("PositionType", v) },
    { key: "volume", label: "Volume", num: true, fmt: Web.fmtVol },
    { ...px("price_open"), wide: false }, { ...px("sl"), wide: false }, { ...px("tp"), wide: false }, px("price_current"),
    { key: "swap", label: "Swap", num: true, fmt: Web.fmtMoney, wide: false },
    { key: "profit", label: "Profit", num: true, fmt: Web.fmtMoney, cls: (r) => Web.signClass(r.profit) },
    { key: "act", label: "", sortable: false, render: (r) => Web.el("span", { class: "acts" },
      Web.el("button", { type: "button", "data-act": "close", onclick: () => closePosition(r),
        "aria-label": `Close position ${r.ticket}` }, "Close"),
      Web.el("button", { type: "button", "data-act": "modify", onclick: () => modify(r, true),
        "aria-label": `Modify position ${r.ticket}` }, "S/L T/P")) },
  ], { empty: "No open positions", sortKey: "time" });
  ordersTable = new Web.Table($("orders"), [
    { key: "symbol", label: "Symbol" }, { key: "ticket", label: "Ticket", num: true },
    { key: "time_setup", label: "Time", fmt: Web.fmtTime },
    { key: "type", label: "Type", fmt: (v) => Web.name("OrderType", v) },
    { key: "volume_current", label: "Volume", num: true, fmt: Web.fmtVol },
    px("price_open"), px("sl"), px("tp"), px("price_current"),
    { key: "time_expiration", label: "Expires", fmt: Web.fmtTime },
    { key: "act", label: "", sortable: false, render: (r) => Web.el("span", { class: "acts" },
      Web.el("button", { type: "button", "data-act": "modify", onclick: () => modify(r, false),
        "aria-label": `Modify order ${r.ticket}` }, "Modify"),
      Web.el("button", { type: "button", "data-act": "remove", onclick: () => removeOrder(r),
        "aria-label": `Remove order ${r.ticket}` }, "Remove")) },
  ], { empty: "No pending orders", sortKey: "time_setup" });
  historyTable = new Web.Table($("history-table"), [
    { key: "time", label: "Time", fmt: Web.fmtTime }, { key: "ticket", label: "Deal", num: true },
    { key: "order", label: "Order", num: true }, { key: "symbol", label: "Symbol" },
    { key: "type", label: "Type", fmt: (v) => Web.name("DealType", v) },
    { key: "entry", label: "Entry", fmt: (v) => Web.name("DealEntry", v) },
    { key: "volume", label: "Volume", num: true, fmt: Web.fmtVol }, px("price"),
    { key: "commission", label: "Commission", num: true, fmt: Web.fmtMoney },
    { key: "swap", label: "Swap", num: true, fmt: Web.fmtMoney },
    { key: "profit", label: "Profit", num: true, fmt: Web.fmtMoney, cls: (r) => Web.signClass(r.profit) },
    { key: "reason", label: "Reason", fmt: (v) => Web.name("DealReason", v) },
    { key: "comment", label: "Comment" },
  ], { empty: "No deals in this period", sortKey: "time", sortDir: -1 });
}

// ------------------------------------------------------------------ wiring
function showTab(id) {
  for (const b of $("book-tabs").children) {
    const on = b.getAttribute("aria-controls") === id;
    b.setAttribute("aria-selected", String(on));
    $(b.getAttribute("aria-controls")).hidden = !on;
  }
  if (id === "history") refreshHistory();
}

document.addEventListener("DOMContentLoaded", async () => {
  await Web.loadConstants();
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    login($("login-login").value, $("login-key").value);
  });
  $("logout").addEventListener("click", logout);
  for (const b of $("book-tabs").children) {
    b.addEventListener("click", () => showTab(b.getAttribute("aria-controls")));
    b.addEventListener("keydown", (e) => {
      const tabs = [...$("book-tabs").children];
      const i = tabs.indexOf(b);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const n = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
        n.focus();
        showTab(n.getAttribute("aria-controls"));
      }
    });
  }
  $("h-period").addEventListener("change", refreshHistory);
  const form = $("order-form");
  form.addEventListener("input", (e) => {
    if (e.target.name === "side" || e.target.name === "kind") $("o-price").value = "";
    ticketLayout();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const req = request();
    if (typeof req === "string") { $("o-result").textContent = req; return; }
    $("o-send").disabled = true;
    try {
      const res = await send(req, `${Web.name("OrderType", req.type)} ${req.volume} ${req.symbol}`);
      $("o-result").textContent = Web.retcode(res.retcode, res.comment);
      $("o-result").className = res.retcode === E().Retcode.DONE || res.retcode === E().Retcode.PLACED ? "pos" : "neg";
    } finally {
      $("o-send").disabled = false;
      scheduleCheck();
    }
  });
  const saved = sessionStorage.getItem("cfd.terminal");
  if (saved) {
    const s = JSON.parse(saved);
    await login(s.login, s.key);
  } else {
    showDemo();
  }
});
