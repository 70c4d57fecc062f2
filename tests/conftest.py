"""Shared test set-up: marks what is slow, so `pytest -m "not slow"` is the quick subset."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):  # nbval re-runs whole chapters
            item.add_marker(pytest.mark.slow)
