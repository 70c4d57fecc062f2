"""Shared test set-up: marks what is slow, so `pytest -m "not slow"` is the quick subset, and
wraps hand-made images in the data type that detectors fit and score."""

import time
from pathlib import Path

import pytest
import torch

from companion import ClassSubset

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
# A chapter runs in about 2 minutes at its defaults: a cell still running after 10 is hung, and
# fails its test instead of holding the whole run until CI's time limit.
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def book_build(tmp_path_factory):
    """The strict build of the whole book, made once per test run: (returncode, log, html folder)."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--all", "-W", "-n", "--keep-going",
         "--path-output", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    return build.returncode, build.stdout[-4000:] + build.stderr[-4000:], out / "_build" / "html"


@pytest.fixture(scope="session")
def built_book(book_build):
    """The built HTML folder; fails at once if the strict build failed."""
    returncode, log, html = book_build
    assert returncode == 0, log
    return html


SESSION_START = time.monotonic()
CONFIG = []


def pytest_configure(config):
    CONFIG.append(config)


def pytest_runtest_logreport(report):
    """A slow test's seconds, printed as it ends: a log cut off by CI's time limit still shows
    where the time went (``--durations`` prints only at the end)."""
    reporter = CONFIG[0].pluginmanager.get_plugin("terminalreporter")
    if report.when == "call" and report.duration > 20 and reporter is not None:
        reporter.write_line(f"[{report.duration:.0f} s, {time.monotonic() - SESSION_START:.0f} s "
                            f"into the run] {report.nodeid}")


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):  # `pytest --nbval-lax chapters/` by hand
            item.add_marker(pytest.mark.slow)


class ImageSet(torch.utils.data.Dataset):
    """Given images and classes as a dataset with ``targets``, as torchvision's datasets are."""

    def __init__(self, images, classes):
        self.images, self.targets = images, torch.as_tensor(classes)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.targets[i])


def labelled_subset(images, classes, anomaly_classes=(), value_range="[0, 1]"):
    """Every image in a :class:`~companion.ClassSubset`, the data type detectors fit and score;
    classes in ``anomaly_classes`` get the anomaly label 1."""
    classes = torch.as_tensor(classes)
    normal = [int(c) for c in classes.unique() if int(c) not in anomaly_classes]
    return ClassSubset(ImageSet(images, classes), normal, anomaly_classes, value_range=value_range)


def bars(n, vertical, seed=0, edge=0.5, positions=(6, 20)):
    """Images in [0, 1] with one bar, vertical or horizontal, at a random position drawn from
    ``range(*positions)`` (``(12, 13)``: always at 12).

    As in MNIST's strokes, the bar's edges are grey (``edge``), between black and white.
    """
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    for image, position in zip(images, torch.randint(*positions, (n,), generator=generator)):
        bar, rim = slice(position, position + 3), slice(position - 1, position + 4)
        image[:, 4:24, rim], image[:, 4:24, bar] = edge, 1.0
    return images if vertical else images.transpose(2, 3).contiguous()
