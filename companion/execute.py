"""Re-execute chapters for the book: ``python -m companion.execute [-f params.yaml] NOTEBOOK...``.

Each chapter runs through papermill into a temporary file beside it; only a run that finished
without error replaces the committed notebook (papermill in place would clear the outputs first
and leave a broken notebook behind on failure). The cell papermill injects for the parameters
is dropped, so the committed notebook shows its own parameters cell.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
import papermill
import yaml

from .files import atomic_path

BOOK_PARAMETERS = {"PROGRESS": False}  # progress bars would be frozen into the rendered pages


def execute_chapter(path, parameters: dict | None = None) -> float:
    """Execute one chapter with papermill and replace it only on success; returns seconds."""
    path = Path(path)
    start = time.perf_counter()
    known = papermill.inspect_notebook(str(path))
    book_parameters = {name: value for name, value in BOOK_PARAMETERS.items() if name in known}
    with atomic_path(path) as tmp:
        papermill.execute_notebook(
            str(path), str(tmp), parameters={**book_parameters, **(parameters or {})},
            cwd=str(path.parent), progress_bar=False, kernel_name="python3",
        )
        notebook = nbformat.read(tmp, as_version=4)
        notebook.cells = [cell for cell in notebook.cells
                          if "injected-parameters" not in cell.metadata.get("tags", [])]
        for cell in notebook.cells:  # timings per cell would change on every run: keep diffs small
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        notebook.metadata.pop("papermill", None)
        # Widget state would make the page load the widget manager from a CDN; the chapters
        # draw a static figure beside each widget instead.
        notebook.metadata.pop("widgets", None)
        nbformat.write(notebook, tmp)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("-f", "--parameters-file", type=Path,
                        help="YAML file of chapter parameters (e.g. chapters/profiles/gpu.yaml)")
    args = parser.parse_args(argv)
    parameters = yaml.safe_load(args.parameters_file.read_text()) if args.parameters_file else {}
    for notebook in args.notebooks:
        print(f"executing {notebook} ...", flush=True)
        seconds = execute_chapter(notebook, parameters)
        print(f"  done in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
