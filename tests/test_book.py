"""The book as readers get it: configuration consistent, strict HTML build clean."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

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


@pytest.mark.slow
def test_strict_book_build(tmp_path):
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    build = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--all", "-W", "-n", "--keep-going",
         "--path-output", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    for chapter in CHAPTERS:
        page = (html / "chapters" / f"{chapter.stem}.html").read_text(encoding="utf-8")
        assert "<img" in page, f"{chapter.name} renders no figure"
