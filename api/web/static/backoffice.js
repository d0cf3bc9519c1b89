// The broker's back office: polls the admin reads while the page is visible; every action
// goes through a confirmation dialog that asks for the reason journaled with it.
"use strict";

const B = { detail: null };
const $ = (id) => document.getElementById(id);
const FINANCING = ["/admin/financing"];
const CORPORATE = ["/admin/corporate_actions"];

async function login(key) {
  $("login-error").textContent = "";
  Web.setAuth({ Authorization: `Bearer ${key.trim()}` });
  try {
    await Web.api("/admin/insurance");
  } catch (e) {
    Web.setAuth({});
    $("login-error").textContent = e.status === 401 ? "Wrong admin key" : e.message;
    return;
  }
  sessionStorage.setItem("cfd.backoffice", key.trim());
  $("login").hidden = true;
  $("app").hidden = false;
  start();
}

function logout() {
  sessionStorage.removeItem("cfd.backoffice");
  location.reload();
}

// Polled reads: every ``ms`` while the page is visible; a 401 logs out.
const every = (ms, fn) => Web.every(ms, fn, logout);

const money = (k, label) => ({ key: k, label, num: true, fmt: Web.fmtMoney });

function levelClass(r) {
  if (!r.margin) return "";
  if (r.margin_level <= r.stop_out_level) return "lvl-stopout";
  if (r.margin_level <= r.margin_call_level) return "lvl-call";
  if (r.margin_level <= r.margin_call_level * 1.5) return "lvl-near";
  return "";
}

let accounts, exposureT, auditT, marketsT, dPositions, dOrders, dDeals;

function start() {
  accounts = new Web.Table($("accounts"), [
    { key: "login", label: "Login", num: true }, { key: "name", label: "Name", wide: false },
    { key: "group", label: "Group", wide: false }, { key: "category", label: "Category", wide: false },
    { key: "country", label: "Country", wide: false }, { key: "positions", label: "Positions", num: true, wide: false },
    { ...money("balance", "Balance"), wide: false }, { ...money("credit", "Credit"), wide: false }, money("equity", "Equity"),
    money("margin", "Margin"), { ...money("margin_free", "Free margin"), wide: false },
    { key: "margin_level", label: "Margin level", num: true, cls: levelClass,
      fmt: (v, r) => (r.margin ? Web.fmtPct(v) : "—"),
      sortValue: (r) => (r.margin ? r.margin_level : Infinity) },
    { key: "margin_call_level", label: "Call", num: true, wide: false },
    { key: "stop_out_level", label: "Stop-out", num: true, wide: false },
    { key: "to_stop_out_pct", label: "Move to stop-out", num: true, wide: false,
      fmt: (v) => (v === null ? "" : `${v.toFixed(2)}%`), sortValue: (r) => (r.to_stop_out_pct === null ? -Infinity : r.to_stop_out_pct) },
  ], { key: (r) => r.login, onRow: (r) => openAccount(r.login), sortKey: "margin_level", empty: "No accounts match" });
  exposureT = new Web.Table($("exposure"), [
    { key: "symbol", label: "Symbol" }, { key: "price", label: "Price", num: true, wide: false },
    { key: "long_lots", label: "Long lots", num: true, wide: false }, { key: "short_lots", label: "Short lots", num: true, wide: false },
    { key: "net_lots", label: "Net lots", num: true },
    { ...money("long_notional", "Long"), wide: false }, { ...money("short_notional", "Short"), wide: false }, money("net_notional", "Net"),
    money("gross_notional", "Gross"), { ...money("broker_notional", "Broker"), wide: false },
    { key: "accounts", label: "Accounts", num: true, wide: false },
    { key: "margin_tiers", label: "Margin tiers", wide: false, sortable: false,
      fmt: (v, r) => [v ? `${v} (${r.margin_tiers_by})` : "",
                      (r.tier_groups || []).length ? `own in ${r.tier_groups.join(", ")}` : ""].filter(Boolean).join("; ") },
  ], { key: (r) => r.symbol, sortKey: "gross_notional", sortDir: -1, empty: "No open positions" });
  marketsT = new Web.Table($("markets"), [
    { key: "symbol", label: "Symbol" },
    { key: "state", label: "State", cls: (r) => `st-${r.state}` },
    { key: "next_open_msc", label: "Next open (UTC)", fmt: (v) => (v ? Web.fmtTime(v / 1000) : "") },
  ], { key: (r) => r.symbol, sortKey: "symbol", empty: "Every market is open" });
  auditT = new Web.Table($("audit"), [
    { key: "time_msc", label: "Time (UTC)", fmt: (v) => (v ? Web.fmtTime(v / 1000) : "") },
    { key: "actor", label: "Actor" }, { key: "action", label: "Action" },
    { key: "target", label: "Target" }, { key: "reason", label: "Reason" },
    { key: "params", label: "Details", sortable: false,
      fmt: (v) => Object.entries(v || {}).filter(([k]) => !["symbol"].includes(k)).map(([k, x]) => `${k}=${x}`).join(" ") },
  ], { key: (r) => `${r.seq}-${r.time_msc}-${r.action}`, sortKey: "time_msc", sortDir: -1, empty: "No admin actions yet" });
  const px = (k, label) => ({ key: k, label, num: true, fmt: (v) => (v ? String(v) : "") });
  dPositions = new Web.Table($("d-positions"), [
    { key: "ticket", label: "Ticket", num: true }, { key: "symbol", label: "Symbol" },
    { key: "type", label: "Type", fmt: (v) => Web.name("PositionType", v) },
    { key: "volume", label: "Volume", num: true, fmt: Web.fmtVol }, px("price_open", "Open"), px("price_current", "Price"),
    px("sl", "S/L"), px("tp", "T/P"), money("swap", "Swap"),
    { key: "profit", label: "Profit", num: true, fmt: Web.fmtMoney, cls: (r) => Web.signClass(r.profit) },
  ], { sortKey: "ticket", empty: "No open positions" });
  dOrders = new Web.Table($("d-orders"), [
    { key: "ticket", label: "Ticket", num: true }, { key: "symbol", label: "Symbol" },
    { key: "type", label: "Type", fmt: (v) => Web.name("OrderType", v) },
    { key: "volume_current", label: "Volume", num: true, fmt: Web.fmtVol }, px("price_open", "Price"),
    px("sl", "S/L"), px("tp", "T/P"),
  ], { sortKey: "ticket", empty: "No pending orders" });
  dDeals = new Web.Table($("d-deals"), [
    { key: "time", label: "Time", fmt: Web.fmtTime }, { key: "ticket", label: "Deal", num: true },
    { key: "symbol", label: "Symbol" }, { key: "type", label: "Type", fmt: (v) => Web.name("DealType", v) },
    { key: "entry", label: "Entry", fmt: (v) => Web.name("DealEntry", v) },
    { key: "volume", label: "Volume", num: true, fmt: Web.fmtVol }, px("price", "Price"),
    money("commission", "Commission"), money("swap", "Swap"),
    { key: "profit", label: "Profit", num: true, fmt: Web.fmtMoney, cls: (r) => Web.signClass(r.profit) },
    { key: "reason", label: "Reason", fmt: (v) => Web.name("DealReason", v) }, { key: "comment", label: "Comment" },
  ], { sortKey: "time", sortDir: -1, empty: "No deals" });
  for (const id of ["f-group", "f-category", "f-country", "f-below", "f-search", "f-flat"]) {
    $(id).addEventListener("input", refreshAccounts);
  }
  every(2000, refreshAccounts);
  every(2000, refreshDetail);
  every(5000, refreshExposure);
  every(5000, refreshFund);
  every(5000, refreshMarkets);
  every(5000, refreshAudit);
  every(60000, () => Promise.all([optional(FINANCING, $("financing"), renderFinancing),
                                  optional(CORPORATE, $("corporate"), renderCorporate)]));
}

async function refreshAccounts() {
  const q = new URLSearchParams({ include_flat: $("f-flat").checked });
  for (const k of ["group", "category", "country"]) if ($(`f-${k}`).value) q.set(k, $(`f-${k}`).value);
  if ($("f-below").value) q.set("below", $("f-below").value);
  if ($("f-search").value.trim()) q.set("search", $("f-search").value.trim());
  const res = await Web.api(`/web/admin/accounts?${q}`);
  accounts.set(res.rows);
  $("n-accounts").textContent = String(res.total);
  $("n-call").textContent = String(res.rows.filter((r) => r.margin && r.margin_level <= r.margin_call_level).length);
  for (const [id, values] of [["f-group", res.groups], ["f-category", res.categories], ["f-country", res.countries]]) {
    const sel = $(id);
    const have = new Set([...sel.options].map((o) => o.value));
    for (const g of values) if (!have.has(g)) sel.append(Web.el("option", { value: g }, g));
  }
}

async function openAccount(login) {
  B.detail = login;
  $("detail").hidden = false;
  await refreshDetail();
  $("detail").scrollIntoView({ block: "nearest" });
}

async function refreshDetail() {
  if (!B.detail) return;
  const d = await Web.api(`/web/admin/accounts/${B.detail}`);
  const a = d.account;
  $("detail-title").textContent = `Account ${a.login} ${a.name} (${d.group})`;
  const kv = [["Balance", Web.fmtMoney(a.balance)], ["Credit", Web.fmtMoney(a.credit)],
    ["Equity", Web.fmtMoney(a.equity)], ["Margin", Web.fmtMoney(a.margin)],
    ["Free margin", Web.fmtMoney(a.margin_free)], ["Margin level", a.margin ? Web.fmtPct(a.margin_level) : "—"],
    ["Margin call / stop-out", `${a.margin_so_call} / ${a.margin_so_so}${a.margin_so_mode === 1 ? ` ${a.currency}` : "%"}`],
    ["Leverage", `1:${a.leverage}`]];
  $("detail-kv").replaceChildren(...kv.flatMap(([k, v]) => [Web.el("dt", {}, k), Web.el("dd", {}, v)]));
  dPositions.set(d.positions);
  dOrders.set(d.orders);
  dDeals.set(d.deals);
}

async function refreshExposure() { exposureT.set(await Web.api("/web/admin/exposure")); }

async function refreshFund() {
  const f = await Web.api("/admin/insurance");
  $("fund").textContent = `${Web.fmtMoney(Number(f.balance))} USDT`;
  $("fund-top").textContent = Web.fmtMoney(Number(f.balance));
}

async function refreshMarkets() {
  const rows = await Web.api("/web/admin/market");
  marketsT.set(rows.filter((r) => r.state !== "open"));
  const list = $("symbols");
  if (!list.children.length) list.replaceChildren(...rows.map((r) => Web.el("option", { value: r.symbol })));
}

async function refreshAudit() { auditT.set(await Web.api("/web/admin/audit")); }

// A panel whose endpoint may not exist on this server: shown when it answers 200.
async function optional(paths, host, draw = render) {
  for (const p of paths) {
    let data;
    try { data = await Web.api(p); } catch (e) { continue; }
    host.replaceChildren(...[].concat(draw(data)));
    return;
  }
  host.replaceChildren(Web.el("p", { class: "na" }, "not available on this server"));
}

function render(data) {
  const rows = Array.isArray(data) ? data : Array.isArray(data && data.rows) ? data.rows : null;
  const cell = (v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : v);
  if (rows) {
    if (!rows.length) return Web.el("p", { class: "muted" }, "none");
    const host = Web.el("div");
    new Web.Table(host, Object.keys(rows[0]).map((k) => ({ key: k, label: Web.words(k), fmt: cell })), { key: (r) => JSON.stringify(r) }).set(rows);
    return host;
  }
  return Web.el("dl", { class: "kv" }, ...Object.entries(data || {}).flatMap(([k, v]) => [Web.el("dt", {}, Web.words(k)), Web.el("dd", {}, cell(v))]));
}

// Money in the engine's reports is in minor units (cents of USDT).
const usdt = (v) => (typeof v === "number" ? (v / 100).toFixed(2) : v);

function moneyTable(rows, cols) {
  if (!rows.length) return Web.el("p", { class: "muted" }, "none");
  const host = Web.el("div");
  new Web.Table(host, cols.map(([key, money]) => ({ key, label: Web.words(key), fmt: money ? usdt : (v) => v })),
                { key: (r) => JSON.stringify(r) }).set(rows);
  return host;
}

// The last and next rollover's financing by symbol and group (charged to clients, paid to them).
function renderFinancing(f) {
  const cols = [["date"], ["symbol"], ["group"], ["nights"], ["positions"], ["charged", 1], ["paid", 1]];
  const last = f.last.length ? f.last[f.last.length - 1] : null;
  const rows = (r) => (r ? r.by.map((x) => ({ date: r.date, ...x })) : []);
  const bench = Object.entries(f.benchmarks).map(([k, v]) => `${k} ${v[v.length - 1].rate}% from ${v[v.length - 1].date}`);
  return [
    Web.el("p", {}, `Rolled through ${f.rolled_through || "-"}; financing account ${usdt(f.financing_account)} USDT; ${bench.join(", ") || "no benchmark"}`),
    Web.el("h4", {}, `Last rollover ${last ? last.date : "-"}: charged ${usdt(last ? last.charged : 0)}, paid ${usdt(last ? last.paid : 0)}`),
    moneyTable(rows(last), cols),
    Web.el("h4", {}, `Next rollover ${f.next.date} (projected): charged ${usdt(f.next.charged)}, paid ${usdt(f.next.paid)}`),
    moneyTable(rows(f.next), cols),
  ];
}

// Upcoming corporate actions with their cash effect on the book, and what was applied.
function renderCorporate(c) {
  const detail = (a) => a.amount || a.ratio || a.new_symbol || a.last_price || "";
  const up = c.upcoming.map((a) => ({ ...a, detail: detail(a) }));
  return [
    Web.el("h4", {}, "Upcoming"),
    moneyTable(up, [["id"], ["kind"], ["symbol"], ["ex_date"], ["status"], ["detail"], ["positions"],
                    ["due_to_longs", 1], ["due_from_shorts", 1], ["withholding", 1], ["broker_net", 1]]),
    Web.el("h4", {}, "Applied at the last rollovers"),
    moneyTable(c.last_applied.map((a) => ({ id: a.id, date: a.date, kind: a.kind, symbol: a.symbol, positions: a.positions })),
               [["id"], ["date"], ["kind"], ["symbol"], ["positions"]]),
  ];
}

// ------------------------------------------------------------------ actions
const WHAT = {
  halt: (b) => `Halt trading in ${b.symbol}: no orders are accepted, nothing triggers, stop-outs wait`,
  resume: (b) => `Resume trading in ${b.symbol}`,
  close_only: (b) => `Make ${b.symbol} close-only: clients may only close positions`,
  full_trading: (b) => `Allow full trading in ${b.symbol}`,
  set_levels: (b) => `Set ${[b.margin_call !== undefined ? `margin call ${b.margin_call}%` : "", b.stop_out !== undefined ? `stop-out ${b.stop_out}%` : ""].filter(Boolean).join(" and ")} for ${b.login ? `account ${b.login}` : `group ${b.group}`}`,
  insurance_topup: (b) => `Move ${b.amount} USDT from the broker's P/L into the insurance fund`,
};

function review(form, action) {
  const body = { action };
  for (const input of form.querySelectorAll("input")) {
    const v = input.value.trim();
    if (v === "") continue;
    body[input.name] = input.type === "number" ? Number(v) : v;
  }
  $("confirm-what").textContent = WHAT[action](body);
  $("confirm-reason").value = "";
  $("confirm-error").textContent = "";
  const dlg = $("confirm");
  $("confirm-ok").onclick = async (e) => {
    e.preventDefault();
    const reason = $("confirm-reason").value.trim();
    if (reason.length < 3) { $("confirm-error").textContent = "Give a reason (3 characters or more)"; return; }
    let res;
    try {
      res = await Web.api("/web/admin/actions", { method: "POST", body: { ...body, reason } });
    } catch (err) {
      $("confirm-error").textContent = err.message;
      return;
    }
    dlg.close();
    const done = res.retcode === Web.K.enums.Retcode.DONE;
    $("act-result").textContent = `${WHAT[action](body)}: ${Web.retcode(res.retcode, res.comment)}`;
    $("act-result").className = done ? "pos" : "neg";
    await Promise.all([refreshMarkets(), refreshAudit(), refreshFund(), refreshAccounts()]);
  };
  $("confirm-cancel").onclick = () => dlg.close();
  dlg.showModal();
  $("confirm-reason").focus();
}

document.addEventListener("DOMContentLoaded", async () => {
  await Web.loadConstants();
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("admin-key").value); });
  $("logout").addEventListener("click", logout);
  for (const form of document.querySelectorAll(".actions form")) {
    form.addEventListener("submit", (e) => { e.preventDefault(); review(form, e.submitter.value); });
  }
  const saved = sessionStorage.getItem("cfd.backoffice");
  if (saved) { login(saved); return; }
  try {
    const r = await fetch("/demo/credentials");
    if (r.ok) {
      const demo = await r.json();
      $("demo").hidden = false;
      $("demo-key").addEventListener("click", () => login(demo.admin_key));
    }
  } catch (e) { /* not a demo server */ }
});
