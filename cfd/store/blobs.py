"""Snapshot blobs: the raw array layout and the files that hold big ones.

A blob is chunk 0 (:data:`RAW_MAGIC`, a length and a JSON header naming each array's dtype
and shape) followed by the arrays' raw bytes (:func:`blob_parts`); no pickles. On SQLite a
big blob lives in a file beside the database, written durably (:func:`write_file`) and
hashed on another thread while it is written or read (:class:`HashThread`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: A snapshot chunk that names a file beside the SQLite database holding the raw blob.
FILE_MAGIC = b"CFDFILE1\n"
#: First bytes of a raw snapshot blob (see :func:`blob_parts`); older blobs are ``.npz``.
RAW_MAGIC = b"CFDSNAP2\n"


def blob_parts(arrays: dict[str, np.ndarray], chunk_bytes: int) -> list[Any]:
    """A snapshot blob as a list of chunks, without copying the arrays' data.

    Chunk 0 is :data:`RAW_MAGIC`, a 4-byte little-endian length and a JSON header listing
    ``[name, dtype, shape]`` per array; then each array's raw bytes (C order) follow in
    chunks of at most ``chunk_bytes`` (memoryviews of the arrays: an array never shares a
    chunk with another). No compression, no pickles.
    """
    items = []
    parts: list[Any] = []
    for name, value in arrays.items():
        a = np.asarray(value)
        if not a.flags.c_contiguous:  # (ascontiguousarray would make 0-d arrays 1-d)
            a = a.copy(order="C")
        if a.dtype.hasobject:
            raise TypeError(f"snapshot array {name!r} holds Python objects")
        items.append([name, a.dtype.str, list(a.shape)])
        raw = memoryview(a.reshape(-1).view(np.uint8)) if a.size else memoryview(b"")
        for i in range(0, len(raw), chunk_bytes):
            parts.append(raw[i:i + chunk_bytes])
    header = json.dumps({"arrays": items, "chunk_bytes": chunk_bytes}).encode()
    return [RAW_MAGIC + len(header).to_bytes(4, "little") + header, *parts]


def raw_header(head: bytes) -> list[tuple[str, np.dtype, tuple[int, ...], int]]:
    """The arrays listed by chunk 0 of a raw blob (see :func:`blob_parts`), in blob order,
    as ``(name, dtype, shape, nbytes)``. Raises ValueError if ``head`` is not one."""
    if not head.startswith(RAW_MAGIC):
        raise ValueError("not a raw snapshot blob")
    off = len(RAW_MAGIC)
    n = int.from_bytes(head[off:off + 4], "little")
    header = json.loads(head[off + 4: off + 4 + n])
    out = []
    for name, dtype, shape in header["arrays"]:
        dt = np.dtype(dtype)
        dims = tuple(int(x) for x in shape)
        if dt.hasobject or any(x < 0 for x in dims):
            raise ValueError(f"bad snapshot array {name!r}: {dtype} {shape}")
        out.append((name, dt, dims, int(np.prod(dims, dtype=np.int64)) * dt.itemsize))
    return out


def arrays_from_parts(parts: Iterator[bytes]) -> dict[str, np.ndarray]:
    """The inverse of :func:`blob_parts` (one copy of each array's data, writable)."""
    it = iter(parts)
    out: dict[str, np.ndarray] = {}
    for name, dt, shape, nbytes in raw_header(bytes(next(it))):
        buf = np.empty(nbytes, dtype=np.uint8)
        pos = 0
        while pos < len(buf):
            chunk = next(it)
            buf[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            pos += len(chunk)
        out[name] = buf.view(dt).reshape(shape)
    if next(it, None) is not None:
        raise ValueError("raw snapshot blob has trailing chunks")
    return out


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Arrays -> uncompressed ``.npz`` bytes (no pickles). Legacy snapshot format; new
    snapshots use :func:`blob_parts`."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def decode_arrays(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashThread:
    """sha256 fed from another thread (hashlib and file I/O both release the GIL, so the
    hash overlaps the reads or writes). Buffers must not change until :meth:`hexdigest`."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="snapshot-sha256", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (buf := self._q.get()) is not None:
            self._h.update(buf)

    def update(self, buf: Any) -> None:
        self._q.put(buf)

    def hexdigest(self) -> str:
        self._q.put(None)
        self._t.join()
        return self._h.hexdigest()


def write_file(path: Path, parts: list[Any], digest: Any) -> None:
    """Write ``parts`` to ``path`` durably (temp file, fsync, rename, fsync the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb", buffering=0) as f:
            for part in parts:
                digest.update(part)
                view = memoryview(part)
                while len(view):
                    view = view[f.write(view):]
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_file(path: Path) -> tuple[dict[str, np.ndarray], int, str]:
    """A raw snapshot blob from a file: (arrays, size in bytes, sha256 hex)."""
    digest = HashThread()
    try:
        return _read_file_into(path, digest)
    finally:
        digest.hexdigest()


def _read_file_into(path: Path, digest: HashThread) -> tuple[dict[str, np.ndarray], int, str]:
    with open(path, "rb", buffering=0) as f:

        def take(n: int) -> np.ndarray:
            buf = np.empty(n, dtype=np.uint8)
            view = memoryview(buf)
            got = 0
            while got < n:
                k = f.readinto(view[got:])
                if not k:
                    raise EOFError(f"{path} ends early")
                got += k
            digest.update(view)
            return buf

        head = take(len(RAW_MAGIC) + 4).tobytes()
        if not head.startswith(RAW_MAGIC):
            raise ValueError("not a raw snapshot file")
        n = int.from_bytes(head[len(RAW_MAGIC):], "little")
        header = json.loads(take(n).tobytes())
        size = len(head) + n
        out: dict[str, np.ndarray] = {}
        for name, dtype, shape in header["arrays"]:
            dt = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            out[name] = take(nbytes).view(dt).reshape(shape)
            size += nbytes
        if f.read(1):
            raise ValueError(f"{path} has trailing bytes")
    return out, size, digest.hexdigest()


def chunk_targets(lengths: list[int], bufs: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Where the bytes of each data chunk (of ``lengths``, in blob order) go: views of the
    arrays' buffers ``bufs``, which together hold exactly ``sum(lengths)`` bytes."""
    out = []
    k = pos = 0
    for n in lengths:
        views = []
        while n:
            while len(bufs[k]) == pos:
                k, pos = k + 1, 0
            take = min(n, len(bufs[k]) - pos)
            views.append(bufs[k][pos:pos + take])
            pos += take
            n -= take
        out.append(views)
    return out


def prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
