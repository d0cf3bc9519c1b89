"""Snapshots of the engine's array state and the canonical arrays behind the state hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from cfd.accounts import group_rules
from cfd.instruments.spec import SymbolSpec
from cfd.trading.history import ClosedTickets, TicketIndex

if TYPE_CHECKING:
    from cfd.engine import Engine, EngineConfig

#: The layout of the engine's state arrays (2: positions no longer store a floating profit;
#: 4: accounts carry a client category and country; 5: deals, orders and postings hold the
#: recent window only, with the count, digest and ledger sums of the rows trimmed before).
SCHEMA_VERSION = 6


def _strings(values: list[str]) -> np.ndarray:
    """Strings (without NUL) joined by NUL, as bytes; all-empty lists in bulk."""
    if not any(values):
        return np.zeros(max(len(values) - 1, 0), dtype=np.uint8)
    return np.frombuffer("\x00".join(values).encode(), dtype=np.uint8).copy()


def _unstrings(arr: np.ndarray, n: int) -> list[str]:
    if n == 0:
        return []
    if len(arr) == n - 1 and not arr.any():  # n empty strings
        return [""] * n
    return arr.tobytes().decode().split("\x00")


def _load_columns(cols: Any, arrays: dict[str, np.ndarray], prefix: str) -> None:
    """``Columns.load`` in one pass: each column allocated once at its final capacity
    (doubling from the current one, as ``reserve`` would), the tail set to the fill."""
    n = len(arrays[f"{prefix}.{next(iter(cols._schema))}"])
    cap = cols.capacity
    while cap < max(n, 16):
        cap *= 2
    for k, dtype in cols._schema.items():
        col = np.empty(cap, dtype=dtype)
        col[:n] = arrays[f"{prefix}.{k}"]
        col[n:] = cols._fill.get(k, 0)
        setattr(cols, k, col)
    cols.capacity = cap
    cols.size = n


def _active_by_ticket(active: np.ndarray, tickets: np.ndarray) -> np.ndarray | slice:
    """Active slots in ticket order: a slice when the table is already in that order (no
    copies), else the sorting index."""
    n = len(tickets)
    if n and len(active) == n and (n == 1 or bool((tickets[1:] > tickets[:-1]).all())):
        return slice(0, n)
    at = tickets[active] if len(active) != n else tickets
    if len(at) < 2 or bool((at[1:] > at[:-1]).all()):
        return active
    return active[np.argsort(at, kind="stable")]


def commanded(eng: Engine) -> dict[str, Any]:
    """The configuration that commands have set, JSON-able: the currency conversion rates, the
    book-wide caps (SetExposureLimit) and the account groups created or changed by
    SetGroup."""
    return {"rates": {k: str(v) for k, v in eng.symbols.rates.items()},
            "exposure_limits": {k: str(v) for k, v in eng.config.exposure_limits.items()},
            "groups": {k: group_rules.to_dict(eng.config.groups[k])
                       for k in sorted(eng.groups_set)}}


def canonical_arrays(eng: Engine) -> Iterator[tuple[str, np.ndarray]]:
    """Booked state only, in a canonical order (positions sorted by ticket)."""
    ac = eng.accounts.cols
    n = len(eng.accounts)
    for k in ("login", "balance", "credit", "leverage", "margin_mode", "so_mode", "so_rule",
              "so_call", "so_so", "so_end", "trade_mode", "trade_allowed", "category",
              "country"):
        yield f"acc.{k}", getattr(ac, k)[:n]
    yield "ledger.balance", eng.ledger.balance[: eng.ledger.n_accounts]
    # the history (postings, deals, orders) as its row count and a digest of every row,
    # trimmed or held (cfd.soa.rows_digest): the same whatever window the engine keeps
    led = eng.ledger
    yield "posting.history", np.r_[np.array([led.total_postings], dtype=np.uint64),
                                   led.history_digest()]
    pc = eng.positions.cols
    active = np.flatnonzero(pc.active[: pc.size])
    order = _active_by_ticket(active, pc.ticket[: pc.size])
    for k in ("ticket", "identifier", "acc", "sym", "volume", "price_open", "sl", "tp",
              "time_msc", "time_update_msc", "magic", "reason", "swap"):
        yield f"pos.{k}", getattr(pc, k)[order]
    sc = eng.symbols.cols
    ns = len(eng.symbols)
    for k in ("bid", "ask", "has_quote", "market_open", "halted"):
        yield f"sym.{k}", getattr(sc, k)[:ns]
    specs = json.dumps([s.to_dict() for s in eng.symbols.specs], sort_keys=True)
    yield "sym.specs", np.frombuffer(specs.encode(), dtype=np.uint8)
    # each account's group, and the rules commands have set (groups, book-wide caps,
    # conversion rates): a standby that missed one of them differs from the writer
    yield "acc.groups", _strings(eng.accounts.groups[:n])
    yield "config.commanded", np.frombuffer(json.dumps(commanded(eng), sort_keys=True)
                                            .encode(), dtype=np.uint8)
    for log_name, log in (("deal", eng.deals), ("order", eng.orders)):
        yield f"{log_name}.history", np.r_[np.array([log.total], dtype=np.uint64),
                                           log.history_digest()]
    yield "counters", np.array([eng.next_order, eng.next_deal, eng.ledger.next_id],
                               dtype=np.int64)
    hyg = eng.hygiene.snapshot()
    for k in ("bid", "ask", "time", "has", "ref_mid", "confirmed", "pending_mid",
              "pending_count"):
        yield f"hygiene.{k}", hyg[k]
    yield from eng.pending.canonical_arrays()
    yield from eng.day.canonical_arrays()
    yield from eng.corporate.canonical_arrays()
    yield from eng.weekend.canonical_arrays()


def state_hash(eng: Engine) -> str:
    """``Engine.state_hash()``, byte for byte, hashing the canonical arrays in place (no
    ``tobytes`` copies)."""
    h = hashlib.sha256()
    for name, arr in canonical_arrays(eng):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    return h.hexdigest()


def _cols(cols: Any, prefix: str, copy: bool) -> dict[str, np.ndarray]:
    if copy:
        return cols.dump(prefix)
    return {f"{prefix}.{k}": getattr(cols, k)[: cols.size] for k in cols._schema}


def take(eng: Engine, copy: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The engine's state as arrays and a JSON-able meta dict (with its state hash).

    ``copy=False`` returns views of the engine's columns where it can (no 1+ GB of copies
    at 10M positions): only for a caller that stores them before the engine moves on."""
    arrays: dict[str, np.ndarray] = {}
    arrays.update(_cols(eng.accounts.cols, "acc", copy))
    bal = eng.ledger.balance[: eng.ledger.n_accounts]
    arrays["ledger.balance"] = bal.copy() if copy else bal
    arrays.update(_cols(eng.ledger.postings, "posting", copy))
    arrays.update(_cols(eng.positions.cols, "pos", copy))
    for name, idx in (("pos.by_acc", eng.positions.by_acc), ("pos.by_sym", eng.positions.by_sym)):
        if copy:
            arrays.update(idx.state(name))
        else:
            arrays.update({f"{name}.off": idx.off[: idx.n_groups],
                           f"{name}.cnt": idx.cnt[: idx.n_groups],
                           f"{name}.cap": idx.cap[: idx.n_groups],
                           f"{name}.pool": idx.pool[: idx.end]})
    arrays.update(_cols(eng.symbols.cols, "sym", copy))
    arrays.update(_cols(eng.deals.cols, "deal", copy))
    arrays.update(_cols(eng.orders.cols, "order", copy))
    arrays["pos.comments"] = _strings(eng.positions.comments[: eng.positions.cols.size])
    arrays["deal.comments"] = _strings(eng.deals.comments)
    arrays["order.comments"] = _strings(eng.orders.comments)
    arrays["posting.comments"] = _strings(eng.ledger.comments)
    arrays["closed_tickets"] = np.stack(eng.closed_tickets.arrays(), axis=1)
    # what was trimmed before the window: row counts, digests, the postings' ledger sums
    arrays["history.trimmed"] = np.array([eng.deals.base, eng.orders.base, eng.ledger.base,
                                          eng.closed_trimmed], dtype=np.int64)
    arrays["history.digests"] = np.stack([eng.deals.digest, eng.orders.digest,
                                          eng.ledger.digest])
    arrays["ledger.trimmed_balance"] = eng.ledger.trimmed_balance[: eng.ledger.n_accounts].copy()
    arrays["acc.names"] = _strings(eng.accounts.names)
    arrays["acc.groups"] = _strings(eng.accounts.groups)
    arrays["pos.free"] = np.array(eng.positions.free, dtype=np.int64)
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
        **commanded(eng),
        "state_hash": state_hash(eng),
    }
    for stage in (eng.pending, eng.day, eng.corporate, eng.weekend):
        stage_arrays, stage_meta = stage.snapshot()
        arrays.update(stage_arrays)
        meta.update(stage_meta)
    return arrays, meta


def restore(cls: type[Engine], arrays: dict[str, np.ndarray], meta: dict[str, Any],
            config: EngineConfig | None) -> Engine:
    """The engine a snapshot describes, built in bulk (no per-position Python loops).

    Also reads snapshots that kept account names, groups and free slots in ``meta``."""

    from cfd.trading.segments import SegmentedIndex

    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"snapshot schema version {version} does not match this engine's "
                         f"{SCHEMA_VERSION}: replay the journal from the start instead")
    specs = [SymbolSpec.from_dict(d) for d in meta["symbols"]]
    eng = cls(specs, {k: Decimal(v) for k, v in meta["rates"].items()}, config)
    if "exposure_limits" in meta:
        eng.config = replace(eng.config, exposure_limits={
            k: Decimal(v) for k, v in meta["exposure_limits"].items()})
    if meta.get("groups"):
        groups = dict(eng.config.groups)
        for name, settings in meta["groups"].items():
            groups[name] = group_rules.changed_group(None, name, settings)
        eng.config = replace(eng.config, groups=groups)
        eng.groups_set = set(meta["groups"])
    ac = eng.accounts.cols
    _load_columns(ac, arrays, "acc")
    n_acc = ac.size
    if "acc.names" in arrays:
        eng.accounts.names = _unstrings(arrays["acc.names"], n_acc)
        eng.accounts.groups = _unstrings(arrays["acc.groups"], n_acc)
    else:
        eng.accounts.names = list(meta["account_names"])
        eng.accounts.groups = list(meta["account_groups"])
    eng.accounts.index = dict(zip(ac.login[:n_acc].tolist(), range(n_acc), strict=True))
    eng.ledger.ensure_clients(n_acc)
    bal = arrays["ledger.balance"]
    eng.ledger.balance[: len(bal)] = bal
    _load_columns(eng.ledger.postings, arrays, "posting")
    eng.ledger.comments = _unstrings(arrays["posting.comments"], eng.ledger.postings.size)
    eng.ledger.next_id = int(meta["next_posting"])
    trimmed = arrays["history.trimmed"]
    digests = arrays["history.digests"]
    tb = arrays["ledger.trimmed_balance"]
    eng.ledger.trimmed_balance[: len(tb)] = tb
    eng.ledger.base, eng.ledger.digest = int(trimmed[2]), digests[2].copy()
    pos = eng.positions
    pc = pos.cols
    _load_columns(pc, arrays, "pos")
    pos.by_acc = SegmentedIndex.from_state(arrays, "pos.by_acc")
    pos.by_sym = SegmentedIndex.from_state(arrays, "pos.by_sym")
    pos.by_acc.ensure_groups(n_acc)
    pos.by_sym.ensure_groups(len(eng.symbols))
    free = arrays["pos.free"] if "pos.free" in arrays else meta["free_slots"]
    pos.free = np.asarray(free, dtype=np.int64).tolist()
    comments = _unstrings(arrays["pos.comments"], pc.size)
    comments.extend([""] * (pc.capacity - len(comments)))
    pos.comments = comments
    pos.external_ids = [""] * pc.capacity
    active = np.flatnonzero(pc.active[: pc.size])
    slots = range(pc.size) if len(active) == pc.size else active.tolist()
    pos.by_ticket = dict(zip(pc.ticket[active].tolist(), slots, strict=True))
    _load_columns(eng.symbols.cols, arrays, "sym")
    for log_name, log in (("deal", eng.deals), ("order", eng.orders)):
        _load_columns(log.cols, arrays, log_name)
        n = log.cols.size
        log.comments = _unstrings(arrays[f"{log_name}.comments"], n)
        log.by_ticket = TicketIndex.of(log.cols.ticket[:n])
    eng.deals.base, eng.deals.digest = int(trimmed[0]), digests[0].copy()
    eng.orders.base, eng.orders.digest = int(trimmed[1]), digests[1].copy()
    closed = arrays["closed_tickets"].reshape(-1, 2)
    eng.closed_tickets = ClosedTickets(closed[:, 0], closed[:, 1])
    eng.closed_trimmed = int(trimmed[3])
    eng.next_order, eng.next_deal = int(meta["next_order"]), int(meta["next_deal"])
    eng.seq, eng.now_msc = int(meta["seq"]), int(meta["now_msc"])
    eng.rejected_ticks = int(meta.get("rejected_ticks", 0))
    eng.hygiene.restore({k[len("hygiene."):]: v for k, v in arrays.items()
                         if k.startswith("hygiene.")})
    for stage in (eng.pending, eng.day, eng.corporate, eng.weekend):
        stage.restore(arrays, meta)
    eng.recompute_all()
    return eng
