"""The book as readers get it: configuration consistent, shown companion code current, strict
HTML build clean."""


import re

import nbformat
import pytest
import yaml

import companion
from conftest import CHAPTERS, ROOT

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def toc_files():
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def test_every_chapter_is_in_the_table_of_contents():
    listed = set(toc_files())
    for chapter in CHAPTERS:
        assert f"chapters/{chapter.stem}" in listed, chapter.name
    for entry in listed:
        assert any((ROOT / f"{entry}{suffix}").exists() for suffix in (".md", ".ipynb")), entry


def test_colab_install_cells_name_the_configured_repository():
    url = CONFIG["repository"]["url"]
    for chapter in CHAPTERS:
        sources = [cell.source for cell in nbformat.read(chapter, as_version=4).cells]
        install = [s for s in sources if "google.colab" in s]
        assert install, f"{chapter.name} has no Colab install cell"
        assert f"git+{url}@{CONFIG['repository']['branch']}" in install[0], chapter.name
        pip_lines = [line for line in install[0].splitlines() if "pip install" in line]
        assert pip_lines and not any("torch" in line for line in pip_lines), \
            f"{chapter.name}: the Colab cell must not reinstall torch"


#: How the output of companion.show_source starts (a Markdown code block of Python).
SHOWN_SOURCE = "```python\n"


def shown_sources(chapter):
    """(cell number, code) of every companion.show_source output stored in ``chapter``."""
    for number, cell in enumerate(nbformat.read(chapter, as_version=4).cells):
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown", "")
            if text.startswith(SHOWN_SOURCE):
                yield number, text[len(SHOWN_SOURCE):].removesuffix("```")


def companion_sources() -> dict:
    """Every companion file's text, a newline in front, so that a match starts a line."""
    return {path: "\n" + path.read_text(encoding="utf-8")
            for path in sorted((ROOT / "companion").rglob("*.py"))}


def is_current(code: str, sources: dict) -> bool:
    """Whether ``code`` (whole lines) appears verbatim in one of the companion's files."""
    return bool(code.strip()) and any("\n" + code in text for text in sources.values())


def test_freshness_check_knows_current_from_stale_code():
    sources = companion_sources()
    shown = companion.show_source(companion.one_class_split).data
    assert shown.startswith(SHOWN_SOURCE) and shown.endswith("```")
    code = shown[len(SHOWN_SOURCE):].removesuffix("```")
    assert is_current(code, sources)
    method = companion.show_source(companion.detectors.Detector.fit).data[len(SHOWN_SOURCE):-3]
    assert method.startswith("    def fit(") and is_current(method, sources)
    assert not is_current(code.replace("normal_classes", "normal", 1), sources)
    assert not is_current(code[1:], sources), "a match must start at the start of a line"
    assert not is_current("", sources)


def test_shown_companion_source_is_the_current_source():
    """Every block a committed chapter shows with companion.show_source is, verbatim, code the
    companion has now: a chapter that shows an old version must be re-executed."""
    sources = companion_sources()
    stale, unshown = [], []
    for chapter in CHAPTERS:
        notebook = nbformat.read(chapter, as_version=4)
        shown = dict(shown_sources(chapter))
        for number, cell in enumerate(notebook.cells):
            if cell.cell_type == "code" and "show_source(" in cell.source and number not in shown:
                unshown.append(f"{chapter.name} cell {number}")
        stale += [f"{chapter.name} cell {number} ({code.splitlines()[0].strip()[:60]})"
                  for number, code in shown.items() if not is_current(code, sources)]
    assert not (unshown or stale), (
        "re-execute these chapters. Shown source that differs from the companion's current "
        f"code: {'; '.join(stale) or 'none'}. show_source calls without stored output: "
        f"{'; '.join(unshown) or 'none'}")


#: A decimal figure in running text; math ($...$), code spans and links are left out: they
#: hold formulas and constants, not measurements.
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")
NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|`[^`\n]*`|\]\([^)]*\)|<[^>]+>", re.S)


def printed_values(notebook) -> set:
    """Every number a chapter's code cells contain or print, also as a percentage/fraction."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        texts.append(cell.source)
        for output in cell.outputs:
            texts.append(output.get("text", ""))
            texts += [value for kind, value in output.get("data", {}).items()
                      if kind.startswith("text/") and isinstance(value, str)]
    values = {float(x) for x in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", "\n".join(texts))}
    return values | {v * 100 for v in values if v <= 1} | {v / 100 for v in values}


def unprinted_decimals(notebook) -> list[str]:
    """Decimals in the prose that no cell prints, at the precision the prose states them."""
    prose = NOT_PROSE.sub(" ", "\n".join(cell.source for cell in notebook.cells
                                         if cell.cell_type == "markdown"))
    values = printed_values(notebook)
    return sorted({text for text in DECIMAL.findall(prose)
                   if not any(abs(round(v, len(text.split(".")[1])) - float(text)) < 1e-9
                              for v in values)})


def test_prose_check_finds_a_figure_no_cell_prints():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("AUROC 0.9731 here, 97.3 % there, $p=0.5$, 0.25 typed."),
        nbformat.v4.new_code_cell("print(auroc)", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="auroc 0.97312\n")])])
    assert unprinted_decimals(notebook) == ["0.25"]


def test_every_decimal_in_a_chapters_prose_is_printed_beside_it():
    """The text quotes the outputs (or glues them in): a hand-typed figure could drift."""
    unprinted = {chapter.name: unprinted_decimals(nbformat.read(chapter, as_version=4))
                 for chapter in CHAPTERS}
    unprinted = {name: figures for name, figures in unprinted.items() if figures}
    assert not unprinted, f"figures in the prose that no cell prints: {unprinted}"


@pytest.mark.slow
def test_strict_book_build(book_build):
    returncode, log, html = book_build
    assert returncode == 0, log
    for chapter in CHAPTERS:
        page = (html / "chapters" / f"{chapter.stem}.html").read_text(encoding="utf-8")
        assert "<img" in page, f"{chapter.name} renders no figure"
