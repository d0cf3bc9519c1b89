"""Numba's cached kernels are dropped when any kernel source changed (numba itself checks a
function against its own file only, not the files of the kernels it inlines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cfd import kernel_cache


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for pkg in ("cfd", "risk"):
        (tmp_path / pkg / "__pycache__").mkdir(parents=True)
    (tmp_path / "cfd" / "kern.py").write_text("@njit(cache=True)\ndef f(): return 1\n")
    (tmp_path / "cfd" / "plain.py").write_text("x = 1\n")
    monkeypatch.setattr(kernel_cache, "ROOT", tmp_path)
    monkeypatch.setattr(kernel_cache, "FOLDERS", (tmp_path / "cfd", tmp_path / "risk"))
    return tmp_path


def _cached(tree: Path) -> list[Path]:
    files = [tree / "cfd" / "__pycache__" / "kern.f-2.py311.nbi",
             tree / "cfd" / "__pycache__" / "kern.f-2.py311.1.nbc",
             tree / "risk" / "__pycache__" / "k.g-3.py311.nbi"]
    for f in files:
        f.write_bytes(b"x")
    return files


def test_caches_go_when_a_kernel_source_changes(tree: Path) -> None:
    kernel_cache.drop_stale()  # the first look: the digest is written
    files = _cached(tree)
    assert kernel_cache.drop_stale() == 0 and all(f.exists() for f in files)
    (tree / "cfd" / "plain.py").write_text("x = 2\n")  # not a kernel source: kept
    assert kernel_cache.drop_stale() == 0 and all(f.exists() for f in files)
    (tree / "cfd" / "kern.py").write_text("@njit(cache=True)\ndef f(): return 2\n")
    assert kernel_cache.drop_stale() == 3 and not any(f.exists() for f in files)
    files = _cached(tree)  # compiled again from the new sources: kept from now on
    assert kernel_cache.drop_stale() == 0 and all(f.exists() for f in files)


def test_the_project_digest_covers_the_inlined_kernels() -> None:
    names = {p.name for p in kernel_cache._sources()}
    assert {"account.py", "margin.py", "sweep.py", "hygiene.py", "kernels.py"} <= names
