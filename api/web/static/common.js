// Shared by the terminal and the back office: API calls, MT5's names for numbers,
// number formats, DOM building (text only, never HTML), sortable tables, announcements,
// and repaint coalescing (one requestAnimationFrame per job, whatever the update rate).
"use strict";

const Web = (() => {
  let K = null;  // /web/constants.json: enums, retcodes, timeframes
  let auth = {};  // headers of the logged-in session

  async function loadConstants() {
    if (!K) K = await (await fetch("/web/constants.json")).json();
    return K;
  }

  function setAuth(headers) { auth = headers || {}; }

  class HttpError extends Error {
    constructor(status, detail) { super(detail); this.status = status; }
  }

  // JSON over the API with the session's headers. 409 carries an admin result (retcode):
  // it is returned, not thrown. Other 4xx/5xx throw HttpError with the server's words.
  async function api(path, opts = {}) {
    const init = { method: opts.method || "GET", headers: { ...auth, ...(opts.headers || {}) } };
    if (opts.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.ok || r.status === 409) return data;
    let why = r.statusText;
    if (data && data.detail) {
      why = Array.isArray(data.detail)
        ? data.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ")
        : String(data.detail);
    }
    throw new HttpError(r.status, why);
  }

  // "BUY_STOP_LIMIT" -> "Buy Stop Limit"
  function words(name) {
    return String(name).toLowerCase().split("_")
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(" ");
  }
  function name(enumName, value) {
    const e = K.enums[enumName] || {};
    for (const [k, v] of Object.entries(e)) if (v === value) return words(k);
    return String(value);
  }
  function retcode(code, comment) {
    const w = K.retcodes[String(code)] || "Unknown";
    return comment && comment !== w && !comment.startsWith(w)
      ? `${code} ${w}: ${comment}` : `${code} ${comment || w}`;
  }

  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2,
                                                 maximumFractionDigits: 2 });
  function fmtMoney(x) { return x === null || x === undefined ? "" : money.format(x); }
  function fmtPrice(x, digits) {
    return !x ? "" : Number(x).toFixed(digits === undefined ? 2 : digits);
  }
  function fmtVol(x) { return Number(x).toFixed(2); }
  function fmtTime(sec) {
    if (!sec) return "";
    const d = new Date(sec * 1000);
    return d.toISOString().slice(0, 19).replace("T", " ");
  }
  function fmtPct(x) { return x === null || x === undefined ? "" : `${x.toFixed(2)}%`; }

  // el("td", {class: "num"}, "text", child, ...): attributes and text, no HTML parsing.
  function el(tag, attrs, ...kids) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else if (k === "class") n.className = v;
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids) {
      if (c === null || c === undefined || c === false) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  // One repaint per animation frame per key, however often schedule() is called.
  const pending = new Map();
  function schedule(key, fn) {
    if (pending.has(key)) { pending.set(key, fn); return; }
    pending.set(key, fn);
    requestAnimationFrame(() => {
      const f = pending.get(key);
      pending.delete(key);
      f();
    });
  }

  // A table sortable by any column (header buttons: keyboard and mouse), rebuilt on set().
  class Table {
    constructor(host, columns, opts = {}) {
      this.columns = columns;
      this.rows = [];
      this.sortKey = opts.sortKey || null;
      this.sortDir = opts.sortDir || 1;
      this.key = opts.key || ((r) => r.ticket);
      this.onRow = opts.onRow || null;
      this.empty = opts.empty || "Nothing to show";
      this.table = el("table", { class: "grid" });
      this.head = el("tr");
      for (const c of columns) {
        const b = el("button", { type: "button", class: "sort", title: `Sort by ${c.label}`,
                                 onclick: () => this.sortBy(c.key) }, c.label);
        // wide: false hides the column on a phone-width screen
        c.th = el("th", { scope: "col", class: [c.num ? "num" : "", c.wide === false ? "wide-only" : ""].join(" ").trim() || null },
          c.sortable === false ? c.label : b);
        this.head.append(c.th);
      }
      this.body = el("tbody");
      this.table.append(el("thead", {}, this.head), this.body);
      host.replaceChildren(this.table);
    }
    sortBy(key) {
      this.sortDir = this.sortKey === key ? -this.sortDir : 1;
      this.sortKey = key;
      this.render();
    }
    set(rows) {
      const sig = JSON.stringify(rows);
      if (sig === this.sig) return;  // nothing changed: keep the DOM (and the focus)
      this.sig = sig;
      this.rows = rows;
      schedule(this, () => this.render());
    }
    render() {
      // keep the keyboard focus on the same row's same button across the rebuild
      const a = document.activeElement;
      let fk = null, fa = null;
      if (a && this.body.contains(a)) {
        const tr = a.closest("tr");
        fk = tr ? tr.dataset.key : null;
        fa = a.dataset.act || null;
      }
      for (const c of this.columns) {
        c.th.setAttribute("aria-sort", c.key !== this.sortKey ? "none"
          : this.sortDir > 0 ? "ascending" : "descending");
      }
      const rows = this.rows.slice();
      if (this.sortKey) {
        const col = this.columns.find((c) => c.key === this.sortKey);
        const get = col.sortValue || ((r) => r[col.key]);
        rows.sort((a, b) => {
          const x = get(a), y = get(b);
          return (x < y ? -1 : x > y ? 1 : 0) * this.sortDir;
        });
      }
      const out = rows.map((r) => {
        const tr = el("tr", { "data-key": this.key(r) });
        if (this.onRow) {
          tr.tabIndex = 0;
          tr.classList.add("pick");
          tr.addEventListener("click", () => this.onRow(r));
          tr.addEventListener("keydown", (e) => { if (e.key === "Enter") this.onRow(r); });
        }
        for (const c of this.columns) {
          const v = c.render ? c.render(r) : c.fmt ? c.fmt(r[c.key], r) : r[c.key];
          const td = el("td", { class: [c.num ? "num" : "", c.wide === false ? "wide-only" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null });
          if (v instanceof Node) td.append(v); else td.textContent = v === undefined || v === null ? "" : String(v);
          tr.append(td);
        }
        return tr;
      });
      if (!out.length) {
        out.push(el("tr", {}, el("td", { colspan: this.columns.length, class: "empty" }, this.empty)));
      }
      this.body.replaceChildren(...out);
      if (fk !== null) {
        const tr = this.body.querySelector(`tr[data-key="${CSS.escape(fk)}"]`);
        const target = tr && ((fa && tr.querySelector(`[data-act="${fa}"]`)) || tr);
        if (target) target.focus();
      }
    }
  }

  // Announcements: a bounded list on screen, read by screen readers (aria-live).
  function announce(text, level = "info", host = document.getElementById("messages")) {
    if (!host) return;
    const item = el("li", { class: level }, `${new Date().toISOString().slice(11, 19)} ${text}`);
    host.prepend(item);
    while (host.children.length > 50) host.lastChild.remove();
  }

  function signClass(x) { return x > 0 ? "pos" : x < 0 ? "neg" : ""; }

  // Run ``fn`` now and every ``ms`` while the page is visible; ``onUnauthorized`` on a 401.
  function every(ms, fn, onUnauthorized) {
    const run = async () => {
      if (!document.hidden) {
        try { await fn(); } catch (e) { if (e.status === 401) onUnauthorized(); }
      }
      setTimeout(run, ms);
    };
    run();
  }

  return { loadConstants, setAuth, api, HttpError, name, words, retcode, fmtMoney, fmtPrice,
           fmtVol, fmtTime, fmtPct, el, schedule, every, Table, announce, signClass,
           get K() { return K; } };
})();
