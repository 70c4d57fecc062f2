"""Atomic writes for checkpoints and results: a file is either the old one or the new one.

Defined in chapter 02.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; results are ordinary files
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_results(results_dir, chapter_stem: str, results: dict) -> Path:
    """Write ``results`` to ``results_dir/<chapter_stem>.json`` atomically; chapter 02."""
    path = Path(results_dir) / f"{chapter_stem}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def read_results(results_dir, chapter_stem: str) -> dict:
    """Read a chapter's results file written by :func:`write_results`."""
    return json.loads((Path(results_dir) / f"{chapter_stem}.json").read_text(encoding="utf-8"))
