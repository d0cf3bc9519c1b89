"""Compact tick chunks: a symbol's ticks in about 5 bytes each instead of 32.

Prices on the symbol's grid (``k * point``, as the engine snaps accepted quotes) are stored
as steps: per tick, zigzag varints of the time step (ms), the bid's move and the spread (in
points) and the flags (:func:`cfd.kernels.tickstore.encode_chunks`), after a header
(magic ``CFTQ``, version, whether last/volume/volume_real follow as raw columns, the tick
count and the price step). Decoding gives back the very floats that were stored. A chunk
whose prices are not exactly on the grid is stored in the journal's tick encoding
(``TickBatch.split_bytes``); readers tell the two apart by the magic. Fewer bytes is less
for SQLite to copy, checksum and write twice (WAL, then checkpoint): the bulk of a flush's
cost.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from cfd.feed.ticks import TickBatch
from cfd.kernels.tickstore import decode_chunk, encode_chunks
from cfd.marketdata.bars import as_ticks
from cfd.money import PRICE_SCALE

MAGIC = b"CFTQ"
VERSION = 1
_HEAD = struct.Struct("<4sBBxxIq")  # magic, version, raw optional columns, count, step
_SCALE = float(PRICE_SCALE)


def encode(names: Sequence[str], ticks: TickBatch, points: np.ndarray
           ) -> dict[str, tuple[int, int, int, bytes]]:
    """Each symbol's ticks (columns grouped by ascending symbol index, each symbol's in
    time order) as (first time_msc, last time_msc, count, chunk bytes); ``points``: each
    symbol index's point (0 or less: steps of one price unit)."""
    s, t = ticks.symbol, ticks.time_msc
    if not len(s):
        return {}
    cut = [0, *(np.flatnonzero(s[1:] != s[:-1]) + 1).tolist(), len(s)]
    starts = np.array(cut, np.int64)
    sym = s[starts[:-1]].astype(np.int64)
    steps = np.rint(np.asarray(points, np.float64)[sym] * _SCALE).astype(np.int64)
    steps[steps < 1] = 1
    optional = any(np.any(c.view(np.uint8)) for c in (ticks.last, ticks.volume,
                                                       ticks.volume_real))
    body, ends, ok = encode_chunks(t, ticks.bid, ticks.ask, ticks.flags, starts, steps, _SCALE)
    plain = None if ok.all() else ticks.split_bytes(cut)
    view = memoryview(body)
    out = {}
    begin = 0
    for g, (a, b) in enumerate(zip(cut[:-1], cut[1:], strict=True)):
        end = int(ends[g])
        if ok[g]:
            parts = [_HEAD.pack(MAGIC, VERSION, optional, b - a, int(steps[g])),
                     view[begin:end]]
            if optional:
                parts += [ticks.last[a:b].tobytes(), ticks.volume[a:b].tobytes(),
                          ticks.volume_real[a:b].tobytes()]
            blob = b"".join(parts)
        else:
            blob = plain[g]  # type: ignore[index]
        begin = end
        out[names[int(sym[g])]] = (int(t[a]), int(t[b - 1]), b - a, blob)
    return out


def columns(blob: bytes) -> TickBatch:
    """A stored chunk (either encoding) as ``TickBatch`` columns (symbol index 0)."""
    if bytes(blob[:4]) != MAGIC:
        return TickBatch.from_bytes(blob)
    magic, version, optional, n, step = _HEAD.unpack_from(blob, 0)
    if version != VERSION:
        raise ValueError(f"tick chunk version {version}, this code reads {VERSION}")
    raw = np.frombuffer(blob, np.uint8, offset=_HEAD.size)
    t, bid, ask, flags, used = decode_chunk(raw, n, step, _SCALE)
    zeros = np.zeros(n)
    last, volume, volume_real = zeros, np.zeros(n, np.int64), zeros
    if optional:
        tail = raw[used:]
        last = tail[:8 * n].view(np.float64).copy()
        volume = tail[8 * n:16 * n].view(np.int64).copy()
        volume_real = tail[16 * n:24 * n].view(np.float64).copy()
    return TickBatch(np.zeros(n, np.int32), t, bid, ask, last, volume, volume_real, flags)


def ticks(blob: bytes) -> np.ndarray:
    """A stored chunk (either encoding) as MT5 ``TICK_DTYPE`` records."""
    return as_ticks(columns(blob))
