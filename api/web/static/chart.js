// A candlestick chart on a canvas: bars from the server (copy_rates_*), the last bar
// moved by live bids; a tick past the last bar's end asks the server for the new bar
// (the server owns where bars start). At most MAX_BARS bars are kept.
"use strict";

class CandleChart {
  static MAX_BARS = 500;

  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.bars = [];
    this.digits = 2;
    this.span = 60;  // seconds per bar
    this.onStale = null;  // called when a tick falls past the last bar
    this.hover = -1;
    new ResizeObserver(() => this.draw()).observe(canvas);
    canvas.addEventListener("mousemove", (e) => this.pointer(e));
    canvas.addEventListener("mouseleave", () => { this.hover = -1; this.draw(); });
  }

  setBars(bars, digits, span) {
    this.bars = bars.slice(-CandleChart.MAX_BARS);
    this.digits = digits;
    this.span = span;
    this.draw();
  }

  // A live bid at time t (seconds): moves the last bar, or reports that a new one is due.
  tick(bid, t) {
    const last = this.bars[this.bars.length - 1];
    if (!last || t < last.time) return;
    if (t >= last.time + this.span) {
      if (this.onStale) this.onStale();
      return;
    }
    last.close = bid;
    if (bid > last.high) last.high = bid;
    if (bid < last.low) last.low = bid;
    last.tick_volume += 1;
    Web.schedule(this, () => this.draw());
  }

  pointer(e) {
    const r = this.canvas.getBoundingClientRect();
    const n = this.visible().length;
    const plotW = r.width - 64;
    const i = Math.floor((e.clientX - r.left) / (plotW / Math.max(n, 1)));
    this.hover = i >= 0 && i < n ? i : -1;
    Web.schedule(this, () => this.draw());
  }

  visible() {
    const w = this.canvas.clientWidth - 64;
    const fit = Math.max(10, Math.floor(w / 7));
    return this.bars.slice(-fit);
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth, H = c.clientHeight;
    if (!W || !H) return;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr);
      c.height = Math.round(H * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (!this.colors) {  // read once: getComputedStyle on every frame forces a style pass
      const css = getComputedStyle(c);
      this.colors = ["--chart-fg", "--chart-grid", "--chart-up", "--chart-down"]
        .map((k) => css.getPropertyValue(k).trim());
    }
    const [fg, grid, up, down] = this.colors;
    g.clearRect(0, 0, W, H);
    g.font = "11px system-ui, sans-serif";
    const bars = this.visible();
    if (!bars.length) {
      g.fillStyle = fg;
      g.fillText("No bars yet for this period: they form as ticks arrive.", 12, 24);
      this.caption.textContent = "";
      return;
    }
    const plotW = W - 64, plotH = H - 22;
    let lo = Infinity, hi = -Infinity;
    for (const b of bars) { lo = Math.min(lo, b.low); hi = Math.max(hi, b.high); }
    if (hi === lo) { hi += 1 / 10 ** this.digits; lo -= 1 / 10 ** this.digits; }
    const pad = (hi - lo) * 0.06;
    lo -= pad; hi += pad;
    const y = (p) => 6 + (hi - p) / (hi - lo) * (plotH - 12);
    const step = plotW / bars.length;
    const body = Math.max(1, Math.min(12, step * 0.7));
    // grid and price scale
    g.strokeStyle = grid; g.fillStyle = fg; g.lineWidth = 1;
    for (let k = 0; k <= 5; k++) {
      const p = lo + (hi - lo) * k / 5;
      const yy = Math.round(y(p)) + 0.5;
      g.beginPath(); g.moveTo(0, yy); g.lineTo(plotW, yy); g.stroke();
      g.fillText(p.toFixed(this.digits), plotW + 6, yy + 4);
    }
    // time scale: about every 120 px
    const every = Math.max(1, Math.round(120 / step));
    for (let i = 0; i < bars.length; i += every) {
      const x = i * step + step / 2;
      g.fillText(this.label(bars[i].time), Math.max(0, x - 28), H - 6);
    }
    // candles
    bars.forEach((b, i) => {
      const x = Math.round(i * step + step / 2) + 0.5;
      g.strokeStyle = g.fillStyle = b.close >= b.open ? up : down;
      g.beginPath(); g.moveTo(x, y(b.high)); g.lineTo(x, y(b.low)); g.stroke();
      const top = y(Math.max(b.open, b.close)), bot = y(Math.min(b.open, b.close));
      g.fillRect(x - body / 2, top, body, Math.max(1, bot - top));
    });
    // last price
    const last = bars[bars.length - 1];
    const ly = Math.round(y(last.close)) + 0.5;
    g.strokeStyle = fg; g.setLineDash([3, 3]);
    g.beginPath(); g.moveTo(0, ly); g.lineTo(plotW, ly); g.stroke(); g.setLineDash([]);
    g.fillStyle = last.close >= last.open ? up : down;
    g.fillRect(plotW + 2, ly - 8, 62, 16);
    g.fillStyle = "#fff";
    g.fillText(last.close.toFixed(this.digits), plotW + 6, ly + 4);
    const shown = this.hover >= 0 && this.hover < bars.length ? bars[this.hover] : last;
    const d = this.digits;
    this.caption.textContent = `${this.label(shown.time, true)}  O ${shown.open.toFixed(d)}  `
      + `H ${shown.high.toFixed(d)}  L ${shown.low.toFixed(d)}  C ${shown.close.toFixed(d)}  `
      + `ticks ${shown.tick_volume}`;
  }

  label(t, full) {
    const s = new Date(t * 1000).toISOString();
    if (full) return s.slice(0, 16).replace("T", " ");
    return this.span >= 86400 ? s.slice(0, 10) : s.slice(11, 16);
  }
}
