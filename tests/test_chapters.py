"""Every chapter, run headlessly through papermill with tiny settings, writes its results file."""

import json

import nbformat
import papermill
import pytest
import yaml

from conftest import CHAPTERS, ROOT

SMOKE = yaml.safe_load((ROOT / "chapters" / "profiles" / "smoke.yaml").read_text())


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


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_chapter_runs_with_smoke_parameters(chapter, tmp_path):
    known = parameters_of(chapter)
    parameters = {name: value for name, value in SMOKE.items() if name in known}
    # DEVICE as CI passes it (the smoke profile sets none): the results must say the chapter
    # ran where it was told to, not wherever "auto" would have put it.
    parameters.update(DATA_DIR=str(ROOT / "chapters" / "data"),
                      RESULTS_DIR=str(tmp_path / "results"), DEVICE="cpu")
    if "CHECKPOINT_DIR" in known:
        parameters["CHECKPOINT_DIR"] = str(tmp_path / "checkpoints")
    papermill.execute_notebook(str(chapter), str(tmp_path / chapter.name), parameters=parameters,
                               cwd=str(chapter.parent), progress_bar=False, kernel_name="python3")
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
                                   kernel_name="python3")
    error = failure.value
    assert error.ename == "ConfigError"
    assert "NORMAL_CLASSES contains 10" in error.evalue
    assert error.traceback == [f"ConfigError: {error.evalue}"]  # one line, no deep traceback
