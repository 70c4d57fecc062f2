"""Where things live, as the book promises its readers: networks in plain torch under ``models/``,
every figure in ``plots``, every detection metric in ``metrics``; and every chapter a lesson
that calls only public companion names."""

import ast
import re
import sys

import nbformat
import pytest

from conftest import CHAPTERS, ROOT

COMPANION = ROOT / "companion"
#: What a network module may import besides the standard library: torch, its own kind, the
#: error type, the setting checks and the torch score functions (SSIM) that a loss is built from.
MODEL_IMPORTS = {"torch", "companion.models", "companion.errors", "companion.settings",
                 "companion.scores"}
#: Prose words and code lines a lesson may hold (issue "Chapters that teach").
MAX_WORDS, MAX_CODE_LINES = 3100, 150


def imported_modules(path) -> set[str]:
    """Every module a file imports, relative imports resolved to ``companion.…``."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                modules.add(".".join(base + ([node.module] if node.module else [])))
            else:
                modules.add(node.module)
    return modules - {"__future__"}


def outside_models(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and not any(
        module == allowed or module.startswith(allowed + ".") for allowed in MODEL_IMPORTS)


@pytest.mark.parametrize("path", sorted((COMPANION / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_are_plain_torch(path):
    """No data loading, training loop, progress bar, plotting or file in a network's module."""
    assert not sorted(filter(outside_models, imported_modules(path)))


def test_the_import_check_resolves_relative_imports():
    assert imported_modules(COMPANION / "models" / "ano_unet.py") >= {
        "torch", "companion.models.fnet", "companion.settings"}
    assert outside_models("companion.data") and outside_models("tqdm.auto")
    assert not outside_models("torch.nn") and not outside_models("dataclasses")


def test_figures_are_drawn_in_plots_only():
    drawing = sorted(path.relative_to(COMPANION).as_posix() for path in COMPANION.rglob("*.py")
                     if any(m.startswith("matplotlib") for m in imported_modules(path)))
    # The widget only closes the figure plots drew before it draws the next one.
    assert drawing == ["plots.py", "widgets.py"]


def test_detection_metrics_are_computed_in_metrics_only():
    """AUROC, average precision, pixel AUROC and PRO: one implementation each, in metrics.py."""
    pattern = re.compile(r"\b(roc_auc_score|average_precision_score|ndimage)\b")
    computing = sorted(path.relative_to(COMPANION).as_posix() for path in COMPANION.rglob("*.py")
                       if pattern.search(path.read_text()))
    assert computing == ["metrics.py"]


def chapter_parts(path):
    notebook = nbformat.read(path, as_version=4)
    prose = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    # every line of every code cell, blank ones too: the book's own check counts them all
    code = [line for c in notebook.cells if c.cell_type == "code"
            for line in c.source.splitlines()]
    return notebook, prose, code


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_is_a_lesson(path):
    notebook, prose, code = chapter_parts(path)
    assert notebook.cells[0].source.startswith("# "), "a chapter opens with its title"
    assert len(prose.split()) <= MAX_WORDS, f"{len(prose.split())} words of prose"
    assert len(code) <= MAX_CODE_LINES, f"{len(code)} lines of code"
    assert re.search(r"^## Key points$", prose, re.M), "no Key points section"
    exercises = prose.split("## Exercises", 1)
    assert len(exercises) == 2, "no Exercises section"
    items = re.findall(r"^\d+\. ", exercises[1].split("\n## ", 1)[0], re.M)
    assert 2 <= len(items) <= 4, f"{len(items)} exercises"


def private_names(source: str) -> list[str]:
    """Names beginning with one underscore that code imports or reaches as an attribute."""
    # IPython's magics and shell lines (the Colab install cell) become a statement Python reads.
    code = re.sub(r"^(\s*)[%!].*$", r"\1pass", source, flags=re.M)
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [alias.name for alias in node.names
                      if alias.name.split(".")[-1].startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            found.append(node.attr)
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_call_only_public_companion_names(path):
    notebook = nbformat.read(path, as_version=4)
    assert not [name for cell in notebook.cells if cell.cell_type == "code"
                for name in private_names(cell.source)]


def test_the_private_name_check_finds_both_forms():
    assert private_names("%matplotlib inline\nfrom companion.x import (a,\n    _b)\n"
                         "show(det._fit)\nx.__len__()") == ["_b", "_fit"]
