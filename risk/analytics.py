"""Read-only views of the book: accounts by margin level with their distance to stop-out,
and exposure per symbol (clients, the broker's opposite book, concentration, and the price
levels where stop-outs cluster)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cfd.kernels.formulas import RULE_ESMA, RULE_MT5_MONEY
from cfd.money import PRICE_SCALE, VOLUME_SCALE
from risk.book import Book


def distance_to_stop_out(book: Book) -> np.ndarray:
    """Per account: the uniform relative price move ``x`` (all symbols, bid and ask alike)
    that brings the account to its stop-out level; ``-0.12`` = a 12% fall. NaN when no
    uniform move can (no margin, fully hedged, or the move would take prices below zero),
    0 when already at or below the level.

    ``equity(x) = E + x * D`` (``D`` the signed notional at close prices), ``margin(x) = M +
    x * Mv`` (``Mv`` the EXCH_STOCKS margin, which follows the price). Solve
    ``equity(x) = L/100 * margin(x)`` (percent rule), ``equity(x) = L`` (money rule) or
    ``equity(x) = 0.5 * margin(x)`` (ESMA).
    """
    f = book.figures()
    E, D, M, Mv = f["equity"], f["delta"], f["margin"], f["margin_var"]
    rule = book.so_rule
    L = book.so_so
    a = np.where(rule == RULE_MT5_MONEY, 0.0, np.where(rule == RULE_ESMA, 0.5, L / 100.0))
    target = np.where(rule == RULE_MT5_MONEY, L, 0.0)
    # E + x D = a (M + x Mv) + target  ->  x = (a M + target - E) / (D - a Mv)
    num = a * M + target - E
    den = D - a * Mv
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(den != 0, num / den, np.nan)
    x = np.where(num >= 0, 0.0, x)  # already at or below the level
    x = np.where((M <= 0) | (x <= -1.0), np.nan, x)
    return x


def accounts_table(book: Book, below: float | None = None, symbol: str | None = None,
                   min_margin: float | None = None, min_equity: float | None = None,
                   limit: int = 50, include_flat: bool = False) -> list[dict[str, Any]]:
    """Accounts sorted by margin level (lowest first), filtered."""
    f = book.figures()
    keep = np.ones(book.n_accounts, dtype=np.bool_)
    if not include_flat:
        keep &= f["margin"] > 0
    if below is not None:
        keep &= f["level"] < below
    if symbol is not None:
        s = book.symbols.index(symbol)
        holders = np.unique(book.pos_acc[book.pos_sym == s])
        mask = np.zeros(book.n_accounts, dtype=np.bool_)
        mask[holders] = True
        keep &= mask
    if min_margin is not None:
        keep &= f["margin"] >= min_margin
    if min_equity is not None:
        keep &= f["equity"] >= min_equity
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(f["level"][idx], kind="stable")][:limit]
    dist = distance_to_stop_out(book)
    rows = []
    for a in idx:
        d = dist[a]
        rows.append({
            "login": int(book.login[a]), "group": book.groups[a],
            "positions": int(f["n_pos"][a]),
            "balance": int(book.balance[a]) / 100, "equity": round(float(f["equity"][a]), 2),
            "margin": round(float(f["margin"][a]), 2),
            "margin_free": round(float(f["free"][a]), 2),
            "margin_level": round(float(f["level"][a]), 2),
            "stop_out_level": float(book.so_so[a]),
            "notional": round(float(f["delta"][a]), 2),
            "to_stop_out_pct": None if np.isnan(d) else round(float(d) * 100, 2),
        })
    return rows


def level_counts(book: Book) -> dict[str, int]:
    f = book.figures()
    lv = f["level"][f["margin"] > 0]
    edges = [0, 50, 100, 150, 200, 300, 500, 1000, np.inf]
    out = {"negative equity": int((lv < 0).sum())}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        out[f"{lo}-{hi}%" if np.isfinite(hi) else f">{lo}%"] = int(((lv >= lo) & (lv < hi))
                                                                    .sum())
    return out


def exposure(book: Book, top: int = 3, bins: int = 40, span: float = 0.5
             ) -> list[dict[str, Any]]:
    """Per symbol held: clients' long, short and net lots and notional (USDT, at close
    prices), the broker's book (the opposite of the net), the largest accounts' share of the
    gross notional, and where stop-outs cluster.

    Stop-out price of an account in a symbol: the price of that symbol alone (others fixed)
    at which the account reaches its stop-out level, from ``equity + (P' - P)/P * delta_s =
    L/100 * margin`` (margin at open price; EXCH_STOCKS margins taken as fixed here). The
    cluster is the ``bins``-wide price bucket within ``span`` of the price holding the most
    volume to be liquidated.
    """
    s = book.symbols
    ns = len(s)
    limits = book.info.get("exposure_limits", {})
    f = book.figures()
    notional = book.notional()
    vol = book.pos_vol
    long_ = vol > 0
    lots_long = np.bincount(book.pos_sym[long_], weights=vol[long_], minlength=ns)
    lots_short = np.bincount(book.pos_sym[~long_], weights=-vol[~long_], minlength=ns)
    n_long = np.bincount(book.pos_sym[long_], weights=notional[long_], minlength=ns)
    n_short = np.bincount(book.pos_sym[~long_], weights=-notional[~long_], minlength=ns)
    # per (account, symbol)
    key = book.pos_acc.astype(np.int64) * ns + book.pos_sym
    uniq, inv = np.unique(key, return_inverse=True)
    pd = np.bincount(inv, weights=notional, minlength=len(uniq))
    pv = np.bincount(inv, weights=vol.astype(np.float64), minlength=len(uniq))
    pacc = uniq // ns
    psym = (uniq % ns).astype(np.int64)
    level = np.where(book.so_rule == RULE_ESMA, 50.0, book.so_so)[pacc] / 100.0
    need = np.where(book.so_rule[pacc] == RULE_MT5_MONEY, book.so_so[pacc],
                    level * f["margin"][pacc])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = (need - f["equity"][pacc]) / pd  # relative move of the symbol to stop-out
    mid = s.mid()
    rows = []
    for i in range(ns):
        sel = psym == i
        if not sel.any():
            continue
        gross = np.abs(pd[sel])
        order = np.argsort(-gross)[:top]
        largest = [{"login": int(book.login[pacc[sel][j]]),
                    "share_pct": round(float(gross[j] / gross.sum() * 100), 1)} for j in order]
        r = rel[sel]
        ok = np.isfinite(r) & (r > -span) & (r < span) & (r != 0)
        cluster = None
        if ok.any():
            hist, edges = np.histogram(r[ok], bins=bins, range=(-span, span),
                                       weights=np.abs(pv[sel][ok]))
            k = int(np.argmax(hist))
            c = (edges[k] + edges[k + 1]) / 2
            cluster = {"move_pct": round(float(c) * 100, 1),
                       "price": round(float(mid[i] * (1 + c)), 2),
                       "lots": round(float(hist[k]) / VOLUME_SCALE, 2),
                       "accounts": int(((r[ok] >= edges[k]) & (r[ok] < edges[k + 1])).sum())}
        net = lots_long[i] - lots_short[i]
        limit = limits.get(s.names[i])
        rows.append({
            "symbol": s.names[i], "price": round(float(mid[i]), 2),
            "long_lots": float(lots_long[i]) / VOLUME_SCALE,
            "short_lots": float(lots_short[i]) / VOLUME_SCALE,
            "net_lots": float(net) / VOLUME_SCALE,
            # the book's net exposure cap and what clients may still add in the net's
            # direction (EngineConfig.exposure_limits; None: no cap)
            "limit_lots": None if limit is None else float(limit),
            "headroom_lots": None if limit is None else float(limit) - abs(float(net))
            / VOLUME_SCALE,
            "long_notional": round(float(n_long[i]), 2),
            "short_notional": round(float(n_short[i]), 2),
            "net_notional": round(float(n_long[i] - n_short[i]), 2),
            "broker_notional": round(float(n_short[i] - n_long[i]), 2),
            "accounts": int(sel.sum()), "largest": largest,
            "top_share_pct": round(sum(x["share_pct"] for x in largest), 1),
            "stop_out_cluster": cluster,
        })
    rows.sort(key=lambda r: -abs(r["net_notional"]))
    return rows


def insurance_history(postings: dict[str, np.ndarray]) -> list[tuple[int, float]]:
    """``(time_msc, fund balance)`` after each posting touching the insurance fund (those a
    snapshot holds: the recent window, on top of the sums of the postings trimmed before)."""
    from cfd.engine import INSURANCE_FUND

    src, dst, amt, t = (postings[k] for k in ("posting.src", "posting.dst", "posting.amount",
                                             "posting.time_msc"))
    trimmed = postings.get("ledger.trimmed_balance")
    opening = int(trimmed[INSURANCE_FUND]) if trimmed is not None and len(trimmed) else 0
    touch = (src == INSURANCE_FUND) | (dst == INSURANCE_FUND)
    sign = np.where(dst == INSURANCE_FUND, 1, -1)[touch]
    bal = (opening + np.cumsum(sign * amt[touch])) / 100
    return [(int(a), float(b)) for a, b in zip(t[touch], bal, strict=True)]


__all__ = ["accounts_table", "distance_to_stop_out", "exposure", "insurance_history",
           "level_counts", "PRICE_SCALE"]
