"""Numba's on-disk caches, dropped when any kernel source changes.

Numba checks a cached function against its own file only: a kernel that inlines one from
another file (every caller of ``cfd.kernels.account.account_sums``) keeps its old machine
code after that other file changed (an upgrade in place, a checkout of another revision).
So the first import after any kernel source changed removes every cached kernel of the
project (``*.nbi`` / ``*.nbc`` in its ``__pycache__`` folders); they are compiled again on
first use. The sources' digest is kept beside them (``__pycache__/kernels.digest``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the folders whose modules hold ``@njit(cache=True)`` functions
FOLDERS = (ROOT / "cfd", ROOT / "risk")


def _sources() -> list[Path]:
    return sorted(p for folder in FOLDERS if folder.is_dir() for p in folder.rglob("*.py")
                  if "cache=True" in p.read_text(encoding="utf-8", errors="replace"))


def digest(sources: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sources:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def drop_stale() -> int:
    """Remove the cached kernels if the kernel sources changed since they were cached;
    returns how many files were removed (0 when nothing changed or nothing can be)."""
    try:
        sources = _sources()
        want = digest(sources)
        stamp = ROOT / "cfd" / "__pycache__" / "kernels.digest"
        if stamp.is_file() and stamp.read_text().strip() == want:
            return 0
        removed = 0
        for folder in FOLDERS:
            for f in folder.rglob("__pycache__/*.nb[ic]"):
                try:
                    f.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        stamp.parent.mkdir(exist_ok=True)
        tmp = stamp.with_suffix(f".{os.getpid()}")
        tmp.write_text(want)
        tmp.replace(stamp)
        return removed
    except OSError:  # a read-only install: numba keeps its caches elsewhere
        return 0
