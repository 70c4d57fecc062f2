"""Every chapter, run once headlessly through papermill at its committed defaults (DEVICE set
explicitly), writes its results file and prints what its committed checked cells show.

One execution per chapter and test run: the check of the ``# NBVAL_CHECK_OUTPUT`` cells (nbval's
lax mode, which would run each chapter a second time) is made on this same run, with nbval's
own stream handling. ``chapters/profiles/smoke.yaml`` stays for a quick run by hand.
"""

import copy
import json

import nbformat
import papermill
import pytest
from nbval.plugin import coalesce_streams, transform_streams_for_comparison

from conftest import CELL_TIMEOUT_S, CHAPTERS, ROOT

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def parameters_of(chapter):
    return papermill.inspect_notebook(str(chapter))


def test_every_chapter_starts_with_a_parameters_cell_and_is_committed_clean():
    assert CHAPTERS, "no chapters found"
    for chapter in CHAPTERS:
        notebook = nbformat.read(chapter, as_version=4)
        first = notebook.cells[0]
        assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), \
            f"{chapter.name}: the page must open with its title, above the parameters"
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), chapter.name
        for cell in code:
            assert "injected-parameters" not in cell.metadata.get("tags", []), chapter.name
            assert not any(o.output_type == "error" for o in cell.outputs), chapter.name
            if "NBVAL_CHECK_OUTPUT" in cell.source:
                assert cell.outputs, f"{chapter.name}: a checked cell without stored output"
        assert any(cell.outputs for cell in code), f"{chapter.name} committed without outputs"
        for name in ("DEVICE", "SEED", "DATA_DIR"):
            assert name in parameters_of(chapter), f"{chapter.name} lacks parameter {name}"


def checked_outputs(cell) -> list:
    """What a checked cell showed, as nbval compares it: streams merged by name (``\r`` and
    ``\b`` applied), then each stream keyed by its name; results by their plain text."""
    shown = []
    # nbval's two steps mutate and return plain dicts: work on a copy, index the results.
    for output in transform_streams_for_comparison(coalesce_streams(copy.deepcopy(cell.outputs))):
        if output["output_type"] == "stream":
            shown.append(sorted((key, text) for key, text in output.items() if key != "output_type"))
        elif "text/plain" in output.get("data", {}):
            shown.append((output["output_type"], output["data"]["text/plain"]))
    return shown


def checked_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"
            and CHECK_MARK in cell.source
            and "injected-parameters" not in cell.metadata.get("tags", [])]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_runs_at_its_defaults_and_shows_its_committed_checked_outputs(chapter, tmp_path):
    known = parameters_of(chapter)
    # DEVICE as CI passes it: the results must say the chapter ran where it was told to, not
    # wherever "auto" would have put it. Everything else stays at the committed defaults.
    parameters = {"DATA_DIR": str(ROOT / "chapters" / "data"), "DEVICE": "cpu",
                  "RESULTS_DIR": str(tmp_path / "results")}
    if "PROGRESS" in known:
        parameters["PROGRESS"] = False
    if "CHECKPOINT_DIR" in known:
        parameters["CHECKPOINT_DIR"] = str(tmp_path / "checkpoints")
    executed = papermill.execute_notebook(str(chapter), str(tmp_path / chapter.name),
                                          parameters=parameters, cwd=str(chapter.parent),
                                          progress_bar=False, kernel_name="python3",
                                          execution_timeout=CELL_TIMEOUT_S)
    committed = checked_cells(nbformat.read(chapter, as_version=4))
    ran = checked_cells(nbformat.from_dict(executed))
    assert len(ran) == len(committed)
    for number, (stored, now) in enumerate(zip(committed, ran)):
        assert checked_outputs(now) == checked_outputs(stored), \
            f"{chapter.name}: checked cell {number} ({stored.source.splitlines()[1][:60]!r})"
    results = json.loads((tmp_path / "results" / f"{chapter.stem}.json").read_text())
    if "DATASET" not in known:  # the benchmark chapter: every dataset, from the committed runs
        assert results["runs"] > 0 and results["seconds"] > 0
        assert all(0.0 <= auroc <= 1.0 for per_dataset in results["mean_auroc"].values()
                   for auroc in per_dataset.values())
        assert 0.0 <= results["demo_run"]["auroc"] <= 1.0
        assert results["demo_run"]["device"] == "cpu"
        return
    assert results["dataset"] == known["DATASET"]["default"].strip("\"'")
    assert results["train_size"] > 0 and results["test_size"] > 0
    if "auroc" in results:  # a chapter that evaluates a detector
        assert 0.0 <= results["auroc"] <= 1.0
        assert results["device"] == "cpu"
        assert results["seconds"] > 0


@pytest.mark.slow
def test_bad_parameter_fails_at_first_use_with_one_line(tmp_path):
    chapter = ROOT / "chapters" / "02_dense_autoencoder.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as failure:
        papermill.execute_notebook(str(chapter), str(tmp_path / "out.ipynb"),
                                   parameters={"NORMAL_CLASSES": [10], "PROGRESS": False},
                                   cwd=str(chapter.parent), progress_bar=False,
                                   kernel_name="python3", execution_timeout=CELL_TIMEOUT_S)
    error = failure.value
    assert error.ename == "ConfigError"
    assert "NORMAL_CLASSES contains 10" in error.evalue
    assert error.traceback == [f"ConfigError: {error.evalue}"]  # one line, no deep traceback


def test_checked_outputs_compare_streams_merged_and_results_by_text():
    def cell(*outputs):
        return nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT", outputs=list(outputs))
    stream = nbformat.v4.new_output
    split = cell(stream("stream", name="stdout", text="a\n"), stream("stream", name="stdout", text="b\n"))
    whole = cell(stream("stream", name="stdout", text="a\nb\n"))
    assert checked_outputs(split) == checked_outputs(whole) == [[("stdout", "a\nb\n")]]
    assert checked_outputs(cell(stream("stream", name="stdout", text="a\nc\n"))) != checked_outputs(whole)
    assert checked_outputs(cell(stream("stream", name="stderr", text="a\nb\n"))) != checked_outputs(whole)
    result = cell(stream("execute_result", data={"text/plain": "42"}, execution_count=1))
    assert checked_outputs(result) == [("execute_result", "42")]
    assert split.outputs[1].text == "b\n", "the committed cell is left as it was"
