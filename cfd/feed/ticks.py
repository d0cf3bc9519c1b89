"""Tick batches: the unit in which prices enter the engine.

A :class:`TickBatch` is a struct of equal-length numpy arrays, one row per tick, with the
fields of MT5's ``MqlTick`` (``time_msc``, ``bid``, ``ask``, ``last``, ``volume``,
``volume_real``, ``flags``) plus the symbol's int32 index in the instrument registry.
Shapes and dtypes are checked once, when a batch is made; the arrays are read-only afterwards.

:meth:`TickBatch.to_bytes` is the journal encoding: a 16-byte header, then each column's raw
little-endian bytes. Columns that are all zero bits (``last``, ``volume``, ``volume_real`` of a
quote-only feed) are left out, and ``time_msc`` is stored as ``uint32`` offsets from the batch's
first-minimum time when the batch spans less than 2**32 ms (49.7 days). Decoding gives back the
exact bits of every value (NaN payloads and ``-0.0`` included).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cfd.constants import TickFlag

__all__ = ["FLAG_QUOTE", "TickBatch"]

FLAG_QUOTE = int(TickFlag.BID | TickFlag.ASK)

_COLUMNS: tuple[tuple[str, np.dtype], ...] = (
    ("symbol", np.dtype("<i4")),
    ("time_msc", np.dtype("<i8")),
    ("bid", np.dtype("<f8")),
    ("ask", np.dtype("<f8")),
    ("last", np.dtype("<f8")),
    ("volume", np.dtype("<i8")),
    ("volume_real", np.dtype("<f8")),
    ("flags", np.dtype("<i4")),
)
_DTYPES = dict(_COLUMNS)
_OPTIONAL = ("last", "volume", "volume_real")  # left out of the encoding when all zero bits
_MAGIC = b"CFTB"
_VERSION = 1
_HEADER = struct.Struct("<4sBBBxQ")  # magic, version, optional-column mask, time mode, count
_TIME_ABSOLUTE, _TIME_OFFSET32 = 0, 1


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _coerce(name: str, value: object, n: int | None) -> np.ndarray:
    """One column as a contiguous 1-D array of its dtype; integer columns refuse fractions."""
    dtype = _DTYPES[name]
    a = np.asarray(value)
    if a.ndim != 1:
        raise ValueError(f"TickBatch.{name} must be 1-D, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"TickBatch.{name} has {a.shape[0]} rows, expected {n}")
    if (
        dtype.kind == "i"
        and a.size
        and a.dtype.kind not in "iub"
        and (a.dtype.kind != "f" or not np.all(np.isfinite(a)) or np.any(a != np.floor(a)))
    ):
        raise TypeError(f"TickBatch.{name} must hold integers, got dtype {a.dtype}")
    if dtype.kind == "i" and a.size and a.dtype.kind in "iuf":
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise OverflowError(f"TickBatch.{name} has values outside {dtype}")
    if dtype.kind == "f" and a.dtype.kind not in "iubf":
        raise TypeError(f"TickBatch.{name} must be numeric, got dtype {a.dtype}")
    return _readonly(np.array(a, dtype=dtype, copy=True, order="C"))


@dataclass(frozen=True, eq=False, slots=True)
class TickBatch:
    """Ticks as columns. Build with :meth:`from_arrays`; the plain constructor only checks.

    ``flags`` holds MT5 ``TICK_FLAG_*`` bits: BID=0x02, ASK=0x04, LAST=0x08, VOLUME=0x10.
    """

    symbol: np.ndarray
    time_msc: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    volume: np.ndarray
    volume_real: np.ndarray
    flags: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.symbol)
        for name, dtype in _COLUMNS:
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != (n,):
                raise TypeError(
                    f"TickBatch.{name} must be a 1-D {dtype} array of {n} rows; "
                    "use TickBatch.from_arrays to convert"
                )

    @classmethod
    def from_arrays(
        cls,
        symbol: Sequence[int] | np.ndarray,
        time_msc: Sequence[int] | np.ndarray,
        bid: Sequence[float] | np.ndarray,
        ask: Sequence[float] | np.ndarray,
        last: Sequence[float] | np.ndarray | None = None,
        volume: Sequence[int] | np.ndarray | None = None,
        volume_real: Sequence[float] | np.ndarray | None = None,
        flags: Sequence[int] | np.ndarray | None = None,
    ) -> TickBatch:
        """Validate and convert columns (copies, read-only).

        Missing ``last``/``volume``/``volume_real`` are zeros. Missing ``flags`` are
        ``BID|ASK``, plus ``LAST`` where ``last`` was given and is non-zero, plus ``VOLUME``
        where ``volume`` was given and is non-zero.
        """
        sym = _coerce("symbol", symbol, None)
        n = sym.shape[0]
        cols = {"symbol": sym}
        for name, value in (("time_msc", time_msc), ("bid", bid), ("ask", ask)):
            cols[name] = _coerce(name, value, n)
        for name, value in (("last", last), ("volume", volume), ("volume_real", volume_real)):
            cols[name] = _coerce(name, np.zeros(n) if value is None else value, n)
        if flags is None:
            f = np.full(n, FLAG_QUOTE, dtype=np.int32)
            if last is not None:
                f[cols["last"] != 0] |= int(TickFlag.LAST)
            if volume is not None:
                f[cols["volume"] != 0] |= int(TickFlag.VOLUME)
            cols["flags"] = _readonly(f)
        else:
            cols["flags"] = _coerce("flags", flags, n)
        return cls(**cols)

    @classmethod
    def empty(cls) -> TickBatch:
        return cls(**{name: _readonly(np.empty(0, dtype=dt)) for name, dt in _COLUMNS})

    def __len__(self) -> int:
        return self.symbol.shape[0]

    def __eq__(self, other: object) -> bool:
        """Bit-for-bit equality of every column (so NaN == NaN and 0.0 != -0.0)."""
        if not isinstance(other, TickBatch):
            return NotImplemented
        return all(
            getattr(self, name).tobytes() == getattr(other, name).tobytes()
            for name, _ in _COLUMNS
        )

    __hash__ = None  # type: ignore[assignment]

    def take(self, index: np.ndarray | slice) -> TickBatch:
        """Rows selected by a boolean mask, an index array or a slice."""
        return TickBatch(
            **{name: _readonly(np.ascontiguousarray(getattr(self, name)[index]))
               for name, _ in _COLUMNS}
        )

    def sorted_by_time(self) -> TickBatch:
        """Rows in ``time_msc`` order; ties keep their order (stable sort)."""
        return self.take(np.argsort(self.time_msc, kind="stable"))

    @staticmethod
    def concat(batches: Iterable[TickBatch]) -> TickBatch:
        """Rows of all batches, in order."""
        parts = list(batches)
        if not parts:
            return TickBatch.empty()
        if len(parts) == 1:
            return parts[0]
        return TickBatch(
            **{name: _readonly(np.concatenate([getattr(b, name) for b in parts]))
               for name, _ in _COLUMNS}
        )

    def to_bytes(self) -> bytes:
        """Compact lossless encoding (see the module docstring)."""
        n = len(self)
        mask = 0
        for bit, name in enumerate(_OPTIONAL):
            if np.any(getattr(self, name).view(np.uint8)):
                mask |= 1 << bit
        t = self.time_msc
        mode = _TIME_ABSOLUTE
        if n and int(t.max()) - int(t.min()) < 2**32:
            mode = _TIME_OFFSET32
        out = [_HEADER.pack(_MAGIC, _VERSION, mask, mode, n), self.symbol.tobytes()]
        if mode == _TIME_OFFSET32:
            base = int(t.min())
            out.append(struct.pack("<q", base))
            out.append((t - base).astype("<u4").tobytes())
        else:
            out.append(t.tobytes())
        out += [self.bid.tobytes(), self.ask.tobytes()]
        for bit, name in enumerate(_OPTIONAL):
            if mask & (1 << bit):
                out.append(getattr(self, name).tobytes())
        out.append(self.flags.tobytes())
        return b"".join(out)

    def split_bytes(self, cuts: Sequence[int]) -> list[bytes]:
        """The encoding of each row range ``cuts[i]:cuts[i + 1]`` (decoded by
        :meth:`from_bytes` into ``take(slice(...))``), sliced from the columns' bytes in one
        pass: an optional column is kept in every part when any row of the batch has it
        (otherwise as :meth:`to_bytes`). For storing a batch grouped by symbol without a
        batch per group."""
        mask = 0
        cols = [self.symbol, self.time_msc, self.bid, self.ask]
        for bit, name in enumerate(_OPTIONAL):
            if np.any(getattr(self, name).view(np.uint8)):
                mask |= 1 << bit
                cols.append(getattr(self, name))
        cols.append(self.flags)
        views = [(memoryview(np.ascontiguousarray(c)).cast("B"), c.itemsize) for c in cols]
        t = self.time_msc
        out = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            part = t[a:b]
            base = int(part.min()) if b > a else 0
            if b == a or int(part.max()) - base >= 2**32:
                head = [_HEADER.pack(_MAGIC, _VERSION, mask, _TIME_ABSOLUTE, b - a),
                        views[0][0][a * 4:b * 4], views[1][0][a * 8:b * 8]]
            else:  # times as 32-bit offsets, as to_bytes writes them
                head = [_HEADER.pack(_MAGIC, _VERSION, mask, _TIME_OFFSET32, b - a),
                        views[0][0][a * 4:b * 4], struct.pack("<q", base),
                        (part - base).astype("<u4").tobytes()]
            out.append(b"".join(head + [v[a * size:b * size] for v, size in views[2:]]))
        return out

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> TickBatch:
        """Inverse of :meth:`to_bytes`; raises ``ValueError`` on a malformed buffer."""
        buf = memoryview(data).cast("B")
        if len(buf) < _HEADER.size:
            raise ValueError("TickBatch buffer shorter than its header")
        magic, version, mask, mode, n = _HEADER.unpack_from(buf, 0)
        if magic != _MAGIC or version != _VERSION or mode not in (0, 1):
            raise ValueError(f"not a TickBatch v{_VERSION} buffer (magic {magic!r}, v{version})")
        pos = _HEADER.size
        cols: dict[str, np.ndarray] = {}

        def read(dtype: np.dtype | str) -> np.ndarray:
            nonlocal pos
            dt = np.dtype(dtype)
            end = pos + dt.itemsize * n
            if end > len(buf):
                raise ValueError("TickBatch buffer truncated")
            a = np.frombuffer(buf[pos:end], dtype=dt).copy()
            pos = end
            return a

        cols["symbol"] = read("<i4")
        if mode == _TIME_OFFSET32:
            if pos + 8 > len(buf):
                raise ValueError("TickBatch buffer truncated")
            (base,) = struct.unpack_from("<q", buf, pos)
            pos += 8
            cols["time_msc"] = read("<u4").astype(np.int64) + np.int64(base)
        else:
            cols["time_msc"] = read("<i8")
        cols["bid"] = read("<f8")
        cols["ask"] = read("<f8")
        for bit, name in enumerate(_OPTIONAL):
            if mask & (1 << bit):
                cols[name] = read(_DTYPES[name])
            else:
                cols[name] = np.zeros(n, dtype=_DTYPES[name])
        cols["flags"] = read("<i4")
        if pos != len(buf):
            raise ValueError(f"TickBatch buffer has {len(buf) - pos} trailing bytes")
        return cls(**{name: _readonly(a) for name, a in cols.items()})


def tick_rounds(sym: np.ndarray) -> list[np.ndarray]:
    """Split tick positions into rounds where each symbol occurs at most once, keeping the
    ticks' order: round k holds the k-th tick of every symbol that has one."""
    n = len(sym)
    if n == 0:
        return []
    order = np.argsort(sym, kind="stable")
    s_sorted = sym[order]
    starts = np.r_[0, np.nonzero(s_sorted[1:] != s_sorted[:-1])[0] + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - group_start
    if rank.max() == 0:
        return [np.arange(n)]
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(1, rank.max() + 1))
    return np.split(by_rank, bounds)


def last_per_symbol(sym: np.ndarray) -> np.ndarray:
    """Positions of each symbol's last tick, in the order of those ticks."""
    rev = sym[::-1]
    _, first = np.unique(rev, return_index=True)
    return np.sort(len(sym) - 1 - first)
