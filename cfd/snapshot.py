"""Snapshots of the engine's array state and the canonical arrays behind the state hash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd.instruments.spec import SymbolSpec

if TYPE_CHECKING:
    from cfd.engine import Engine, EngineConfig

SCHEMA_VERSION = 1


def _strings(values: list[str]) -> np.ndarray:
    return np.frombuffer("\x00".join(values).encode(), dtype=np.uint8).copy()


def _unstrings(arr: np.ndarray, n: int) -> list[str]:
    if n == 0:
        return []
    return arr.tobytes().decode().split("\x00")


def canonical_arrays(eng: Engine) -> Iterator[tuple[str, np.ndarray]]:
    """Booked state only, in a canonical order (positions sorted by ticket)."""
    ac = eng.accounts.cols
    n = len(eng.accounts)
    for k in ("login", "balance", "credit", "leverage", "margin_mode", "so_mode", "so_rule",
              "so_call", "so_so", "so_end", "trade_mode", "trade_allowed"):
        yield f"acc.{k}", getattr(ac, k)[:n]
    yield "ledger.balance", eng.ledger.balance[: eng.ledger.n_accounts]
    lp = eng.ledger.postings
    for k in ("id", "src", "dst", "amount", "kind", "deal"):
        yield f"posting.{k}", getattr(lp, k)[: lp.size]
    pc = eng.positions.cols
    active = np.nonzero(pc.active[: pc.size])[0]
    order = active[np.argsort(pc.ticket[active], kind="stable")]
    for k in ("ticket", "identifier", "acc", "sym", "volume", "price_open", "sl", "tp",
              "time_msc", "time_update_msc", "magic", "reason", "swap"):
        yield f"pos.{k}", getattr(pc, k)[order]
    sc = eng.symbols.cols
    ns = len(eng.symbols)
    for k in ("bid", "ask", "has_quote", "market_open", "halted"):
        yield f"sym.{k}", getattr(sc, k)[:ns]
    specs = json.dumps([s.to_dict() for s in eng.symbols.specs], sort_keys=True)
    yield "sym.specs", np.frombuffer(specs.encode(), dtype=np.uint8)
    for log_name, log in (("deal", eng.deals), ("order", eng.orders)):
        for k in log.cols._schema:
            yield f"{log_name}.{k}", getattr(log.cols, k)[: log.cols.size]
    yield "counters", np.array([eng.next_order, eng.next_deal, eng.ledger.next_id],
                               dtype=np.int64)
    hyg = eng.hygiene.snapshot()
    for k in ("bid", "ask", "time", "has", "ref_mid", "confirmed", "pending_mid",
              "pending_count"):
        yield f"hygiene.{k}", hyg[k]
    for ext in eng.extensions:
        yield from ext.canonical_arrays()


def take(eng: Engine) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {}
    arrays.update(eng.accounts.cols.dump("acc"))
    arrays["ledger.balance"] = eng.ledger.balance[: eng.ledger.n_accounts].copy()
    arrays.update(eng.ledger.postings.dump("posting"))
    arrays.update(eng.positions.cols.dump("pos"))
    arrays.update(eng.positions.by_acc.state("pos.by_acc"))
    arrays.update(eng.positions.by_sym.state("pos.by_sym"))
    arrays.update(eng.symbols.cols.dump("sym"))
    arrays.update(eng.deals.cols.dump("deal"))
    arrays.update(eng.orders.cols.dump("order"))
    arrays["pos.comments"] = _strings(eng.positions.comments[: eng.positions.cols.size])
    arrays["deal.comments"] = _strings(eng.deals.comments)
    arrays["order.comments"] = _strings(eng.orders.comments)
    arrays["posting.comments"] = _strings(eng.ledger.comments)
    arrays["closed_tickets"] = np.array(list(eng.closed_tickets.items()),
                                        dtype=np.int64).reshape(-1, 2)
    arrays.update({f"hygiene.{k}": v for k, v in eng.hygiene.snapshot().items()})
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "seq": eng.seq,
        "now_msc": eng.now_msc,
        "next_order": eng.next_order,
        "next_deal": eng.next_deal,
        "next_posting": eng.ledger.next_id,
        "rejected_ticks": eng.rejected_ticks,
        "symbols": [s.to_dict() for s in eng.symbols.specs],
        "rates": {k: str(v) for k, v in eng.symbols.rates.items()},
        "account_names": eng.accounts.names,
        "account_groups": eng.accounts.groups,
        "free_slots": eng.positions.free,
        "state_hash": eng.state_hash(),
    }
    for ext in eng.extensions:
        ext_arrays, ext_meta = ext.snapshot()
        arrays.update(ext_arrays)
        meta.update(ext_meta)
    return arrays, meta


def restore(cls: type[Engine], arrays: dict[str, np.ndarray], meta: dict[str, Any],
            config: EngineConfig | None) -> Engine:
    from decimal import Decimal

    from cfd.trading.segments import SegmentedIndex

    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"snapshot schema version {version} does not match this engine's "
                         f"{SCHEMA_VERSION}: replay the journal from the start instead")
    specs = [SymbolSpec.from_dict(d) for d in meta["symbols"]]
    eng = cls(specs, {k: Decimal(v) for k, v in meta["rates"].items()}, config)
    eng.accounts.cols.load(arrays, "acc")
    eng.accounts.names = list(meta["account_names"])
    eng.accounts.groups = list(meta["account_groups"])
    eng.accounts.index = {int(x): i for i, x in enumerate(eng.accounts.cols.login[
        : eng.accounts.cols.size])}
    eng.ledger.ensure_clients(len(eng.accounts))
    bal = arrays["ledger.balance"]
    eng.ledger.balance[: len(bal)] = bal
    eng.ledger.postings.load(arrays, "posting")
    eng.ledger.comments = _unstrings(arrays["posting.comments"], eng.ledger.postings.size)
    eng.ledger.next_id = int(meta["next_posting"])
    pos = eng.positions
    pos.cols.load(arrays, "pos")
    pos.by_acc = SegmentedIndex.from_state(arrays, "pos.by_acc")
    pos.by_sym = SegmentedIndex.from_state(arrays, "pos.by_sym")
    pos.by_acc.ensure_groups(len(eng.accounts))
    pos.by_sym.ensure_groups(len(eng.symbols))
    pos.free = [int(x) for x in meta["free_slots"]]
    comments = _unstrings(arrays["pos.comments"], pos.cols.size)
    pos.comments = comments + [""] * (pos.cols.capacity - len(comments))
    pos.external_ids = [""] * pos.cols.capacity
    active = np.nonzero(pos.cols.active[: pos.cols.size])[0]
    pos.by_ticket = {int(pos.cols.ticket[p]): int(p) for p in active}
    eng.symbols.cols.load(arrays, "sym")
    for log_name, log in (("deal", eng.deals), ("order", eng.orders)):
        log.cols.load(arrays, log_name)
        log.comments = _unstrings(arrays[f"{log_name}.comments"], log.cols.size)
        log.by_ticket = {int(t): i for i, t in enumerate(log.cols.ticket[: log.cols.size])}
    eng.closed_tickets = {int(t): int(a) for t, a in arrays["closed_tickets"]}
    eng.next_order, eng.next_deal = int(meta["next_order"]), int(meta["next_deal"])
    eng.seq, eng.now_msc = int(meta["seq"]), int(meta["now_msc"])
    eng.rejected_ticks = int(meta.get("rejected_ticks", 0))
    eng.hygiene.restore({k[len("hygiene."):]: v for k, v in arrays.items()
                         if k.startswith("hygiene.")})
    for ext in eng.extensions:
        ext.restore(arrays, meta)
    eng.recompute_all()
    return eng
