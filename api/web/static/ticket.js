// The order ticket (market and pending orders, checked with order_check before sending),
// sending with MT5's retcodes in words, and the position/order actions (close, S/L T/P,
// modify, remove). Loaded after terminal.js, whose state (T) and helpers it shares.
"use strict";

function ticket() {
  const f = $("order-form");
  const side = f.querySelector("input[name=side]:checked").value;
  return { side, kind: $("o-kind").value, s: T.symbols.get(T.selected) };
}

function ticketLayout() {
  const { side, kind } = ticket();
  const market = kind === "";
  $("o-price-l").hidden = market;
  $("o-stoplimit-l").hidden = kind !== "_STOP_LIMIT";
  $("o-deviation-l").hidden = !market;
  $("o-expiry-l").hidden = market;
  $("o-expires-l").hidden = market || !$("o-expiry").value.startsWith("SPECIFIED");
  const q = T.quotes.get(T.selected);
  if (!market && !$("o-price").value && q) {
    $("o-price").value = (side === "BUY" ? q.ask : q.bid).toFixed(T.symbols.get(T.selected).digits);
  }
  paintTicketPrices();
  scheduleCheck();
}

function paintTicketPrices() {
  const { side, kind, s } = ticket();
  const q = T.quotes.get(T.selected);
  const btn = $("o-send");
  const vol = $("o-volume").value;
  btn.className = `send ${side === "BUY" ? "buy" : "sell"}`;
  if (kind === "") {
    const px = q ? (side === "BUY" ? q.ask : q.bid) : 0;
    btn.textContent = `${Web.words(side)} ${vol} ${T.selected} at ${px ? Web.fmtPrice(px, s.digits) : "market"}`;
  } else {
    btn.textContent = `Place ${Web.words(side + kind)} ${vol} ${T.selected}`;
  }
}

function paintTicketState() {
  const m = T.market.get(T.selected);
  $("ticket-symbol").textContent = `${T.selected}${m && m.state !== "open" ? ` (${marketText(m)})` : ""}`;
}

function onGrid(v, s) {
  const k = v / s.volume_step;
  return Math.abs(k - Math.round(k)) < 1e-7 && v >= s.volume_min - 1e-12 && v <= s.volume_max + 1e-12;
}

function filling(s) {
  const F = E().FillingFlag, O = E().OrderFilling;
  if (s.filling_mode & F.FOK) return O.FOK;
  if (s.filling_mode & F.IOC) return O.IOC;
  return O.RETURN;
}

// The MT5 request of the ticket, or a string saying what is wrong with it.
function request() {
  const { side, kind, s } = ticket();
  const num = (id) => (($(id).value || "").trim() === "" ? 0 : Number($(id).value));
  const volume = num("o-volume");
  if (!onGrid(volume, s)) {
    return `Volume must be from ${s.volume_min} to ${s.volume_max} in steps of ${s.volume_step} lots`;
  }
  const A = E().TradeAction, OT = E().OrderType, TT = E().OrderTime;
  const req = { symbol: s.name, volume, type: OT[side + kind], sl: num("o-sl"), tp: num("o-tp"),
                comment: "web" };
  if (kind === "") {
    const q = T.quotes.get(s.name);
    if (!q) return "No quote yet";
    Object.assign(req, { action: A.DEAL, price: side === "BUY" ? q.ask : q.bid,
                         deviation: Math.max(0, Math.round(num("o-deviation"))), type_filling: filling(s) });
  } else {
    const tt = $("o-expiry").value || "GTC";
    Object.assign(req, { action: A.PENDING, price: num("o-price"), type_filling: E().OrderFilling.RETURN,
                         type_time: TT[tt] });
    if (kind === "_STOP_LIMIT") req.stoplimit = num("o-stoplimit");
    if (tt.startsWith("SPECIFIED")) {
      const at = $("o-expires").value;
      if (!at) return "Give the expiration time";
      req.expiration = Math.floor(Date.parse(`${at}:00Z`) / 1000);
    }
  }
  return req;
}

function scheduleCheck() {
  clearTimeout(T.checkTimer);
  T.checkSeq++;  // an answer to an older ticket is not shown
  for (const id of ["c-margin", "c-commission", "c-free", "c-level"]) $(id).textContent = "";
  $("c-result").textContent = "checking…";
  $("c-result").className = "muted";
  T.checkTimer = setTimeout(checkOrder, 250);
}

async function checkOrder() {
  if (!T.selected) return;
  const req = request();
  const seq = ++T.checkSeq;
  for (const id of ["c-margin", "c-commission", "c-free", "c-level"]) $(id).textContent = "";
  if (typeof req === "string") { $("c-result").textContent = req; $("c-result").className = "neg"; return; }
  const [acc, res] = await Promise.all([Web.api("/v1/account_info"), Web.api("/v1/order_check", { method: "POST", body: req })]);
  if (seq !== T.checkSeq) return;
  const ok = res.retcode === 0;
  $("c-result").textContent = Web.retcode(res.retcode, res.comment);
  $("c-result").className = ok ? "pos" : "neg";
  if (!ok) return;
  $("c-margin").textContent = Web.fmtMoney(res.margin - acc.margin);
  $("c-commission").textContent = Web.fmtMoney(res.commission + res.fee);
  $("c-free").textContent = Web.fmtMoney(res.margin_free);
  $("c-level").textContent = res.margin ? Web.fmtPct(res.margin_level) : "";
}

async function send(req, what) {
  // a random request id: a retry of this request can never trade twice
  const rid = Math.floor(Math.random() * 2 ** 52) + 1;
  let res;
  try {
    res = await Web.api("/v1/order_send", { method: "POST", body: req, headers: { "X-Request-Id": String(rid) } });
  } catch (e) {
    res = { retcode: E().Retcode.ERROR, comment: e.message };
  }
  const text = `${what}: ${Web.retcode(res.retcode, res.comment)}`;
  const done = res.retcode === E().Retcode.DONE || res.retcode === E().Retcode.PLACED;
  Web.announce(text, done ? "info" : "warn");
  toast(text, done ? "info" : "warn");
  await Promise.all([refreshAccount(), refreshOrders(), watchDeals()]);
  return res;
}

function toast(text, level) {
  const t = $("toast");
  t.textContent = text;
  t.className = `toast ${level}`;
  t.hidden = false;
  clearTimeout(T.toastTimer);
  T.toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}

async function closePosition(p) {
  const s = T.symbols.get(p.symbol);
  const q = T.quotes.get(p.symbol);
  const OT = E().OrderType;
  const buy = p.type === E().PositionType.BUY;
  await send({ action: E().TradeAction.DEAL, symbol: p.symbol, volume: p.volume, position: p.ticket,
               type: buy ? OT.SELL : OT.BUY, price: q ? (buy ? q.bid : q.ask) : p.price_current,
               deviation: 20, type_filling: filling(s), comment: "web close" },
             `Close #${p.ticket}`);
}

async function removeOrder(o) {
  await send({ action: E().TradeAction.REMOVE, order: o.ticket }, `Remove order #${o.ticket}`);
}

function modify(row, isPosition) {
  const d = $("modify");
  const digits = digitsOf(row.symbol);
  $("modify-title").textContent = isPosition ? `Position #${row.ticket} ${row.symbol}: stop loss and take profit`
    : `Order #${row.ticket} ${Web.name("OrderType", row.type)} ${row.symbol}`;
  $("m-price-l").hidden = isPosition;
  $("m-price").value = isPosition ? "" : row.price_open.toFixed(digits);
  $("m-sl").value = row.sl ? row.sl.toFixed(digits) : "";
  $("m-tp").value = row.tp ? row.tp.toFixed(digits) : "";
  $("m-result").textContent = "";
  $("m-ok").onclick = async (e) => {
    e.preventDefault();
    const A = E().TradeAction;
    const num = (id) => Number($(id).value || 0);
    const req = isPosition
      ? { action: A.SLTP, position: row.ticket, symbol: row.symbol, sl: num("m-sl"), tp: num("m-tp") }
      : { action: A.MODIFY, order: row.ticket, price: num("m-price"), sl: num("m-sl"), tp: num("m-tp"),
          type_time: row.type_time, expiration: row.time_expiration };
    const res = await send(req, `Modify #${row.ticket}`);
    $("m-result").textContent = Web.retcode(res.retcode, res.comment);
    if (res.retcode === E().Retcode.DONE || res.retcode === E().Retcode.PLACED) d.close();
  };
  $("m-cancel").onclick = () => d.close();
  d.showModal();
}
