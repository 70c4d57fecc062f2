"""Reliability: bad parameters, damaged data, foreign checkpoints and a benchmark under faults.

Every case asserts the message a reader gets (what is wrong, the value, the fix) and that nothing
was lost or overwritten, not only that something raised. The chapter cases are parametrised over
every parameter of every chapter's parameters cell; the cheap way (the chapter's own cell and the
one check every chapter calls first) for all of them, and a real papermill execution per chapter
(all chapters at once, in threads) for one wrong value each.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import papermill
import pytest
import torch

import companion
from companion import detectors
from companion.benchmark import read_rows
from companion.benchmark.executors import BenchmarkRunError
from companion.benchmark.results import read_failures, run_key
from companion.benchmark.runner import run_benchmark
from companion.errors import (CheckpointError, CompanionError, ConfigError, DataError,
                              DatasetNotFoundError, DeviceError)
from companion.parameters import CLASS_LISTS, PARAMETERS, check_parameters
from conftest import CELL_TIMEOUT_S, CHAPTERS, ROOT

SHIPPED_MNIST = ROOT / "companion" / "offline_data" / "mnist"


def parameter_cell(chapter: Path) -> str:
    notebook = nbformat.read(chapter, as_version=4)
    return next(cell.source for cell in notebook.cells
                if "parameters" in cell.metadata.get("tags", []))


def chapter_parameters(chapter: Path) -> dict:
    namespace: dict = {}
    exec(parameter_cell(chapter), namespace)  # the chapter's own defaults, nothing else
    return {name: value for name, value in namespace.items() if name.isupper()}


CASES = [(chapter, name) for chapter in CHAPTERS for name in chapter_parameters(chapter)]


def wrong_value(name: str):
    """A value no rule accepts: -1 fails every count, size, rate, path, list, name and flag;
    SEED takes any integer, so it gets a string."""
    return "zero" if name == "SEED" else -1


# -- every chapter's parameters --------------------------------------------------------------------
def test_every_chapter_parameter_has_a_rule():
    unruled = [(chapter.stem, name) for chapter, name in CASES
               if name not in PARAMETERS and name not in CLASS_LISTS]
    assert unruled == []


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapter_checks_its_parameters_before_any_work(chapter):
    """The first cell after the Colab install: imports, then check_parameters(globals())."""
    notebook = nbformat.read(chapter, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    statements = ast.parse(code[2]).body
    first_work = next(s for s in statements if not isinstance(s, (ast.Import, ast.ImportFrom)))
    assert ast.unparse(first_work) == "companion.check_parameters(globals())", chapter.name


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_every_chapters_defaults_pass_the_check(chapter, monkeypatch):
    monkeypatch.chdir(chapter.parent)  # paths are relative to the chapter, as papermill runs it
    check_parameters(chapter_parameters(chapter))


@pytest.mark.parametrize("chapter, name", CASES, ids=[f"{c.stem[:2]}-{n}" for c, n in CASES])
def test_one_wrong_parameter_is_named_with_its_value(chapter, name, monkeypatch):
    monkeypatch.chdir(chapter.parent)
    parameters = {**chapter_parameters(chapter), name: wrong_value(name)}
    with pytest.raises(CompanionError) as failure:
        check_parameters(parameters)
    message = str(failure.value)
    assert name in message and repr(wrong_value(name)) in message, message
    assert any(fix in message for fix in ("use", "write", "point it", "give")), message  # the fix


@pytest.mark.parametrize("parameters, message", [
    ({"DATASET": "mnist", "NORMAL_CLASSES": [10]},
     "NORMAL_CLASSES contains 10, but mnist has classes 0..9"),
    ({"DATASET": "mnist", "NORMAL_CLASSES": "[1]"}, "papermill: -y \"NORMAL_CLASSES: [1]\""),
    ({"DATASET": "mnist", "NORMAL_CLASSES": [1], "ANOMALY_CLASSES": [1, 2]},
     "class(es) [1] are in both NORMAL_CLASSES and ANOMALY_CLASSES"),
    ({"DATASET": "fashoin-mnist"}, "did you mean"),
    ({"DATASET": "svhn"}, "unknown DATASET='svhn'"),
    ({"FASHION_NORMAL_CLASSES": [12]}, "FASHION_NORMAL_CLASSES contains 12, but fashion-mnist"),
    ({"EPOCHS": 0}, "EPOCHS=0; use a positive integer"),
    ({"BATCH_SIZE": -16}, "BATCH_SIZE=-16; use a positive integer"),
    ({"LR": -0.001}, "LR=-0.001; use a positive number"),
    ({"EPOCHS": 2.5}, "EPOCHS=2.5; use a positive integer"),
    ({"VAL_FRACTION": 1.0}, "VAL_FRACTION=1.0; use a number between 0 and 1"),
    ({"TRAIN_SIZE": 0}, "TRAIN_SIZE=0; use a positive integer"),
    ({"DEVICE": "tpu"}, "DEVICE='tpu'; use 'auto', 'cpu', 'cuda' or 'mps'"),
    ({"DOWNLOAD": "yes"}, "DOWNLOAD='yes'; use True, False or 'auto'"),
    ({"PROGRESS": "no"}, "PROGRESS='no'; use True or False"),
    ({"GRID_BETAS": "10"}, "GRID_BETAS='10'; use a non-empty list"),
    ({"SEEDS": [0, "1"]}, "SEEDS item='1'; use an integer"),
    ({"DATASET": "textures", "CATEGORY": "marble"}, "CATEGORY='marble' is not one of the offline"),
    ({"DATASET": "folder", "FOLDER": None}, "DATASET='folder' needs FOLDER"),
    ({"DATASET": "folder", "FOLDER": "/nonexistent/images"}, "FOLDER='/nonexistent/images' is not"),
    ({"DEMO_MODEL": "resnet"}, "DEMO_MODEL='resnet'; use one of"),
    ({"SECOND_PAIR": ["mnist", [1], [11]]}, "SECOND_PAIR anomaly classes contains 11"),
    ({"BENCHMARK_RESULTS": "results"}, "BENCHMARK_RESULTS='results'; point it at"),
])
def test_semantic_mistakes_say_what_would_work(parameters, message):
    with pytest.raises(CompanionError) as failure:
        check_parameters(parameters)
    assert message.lower() in str(failure.value).lower()


def test_cuda_without_a_gpu_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="DEVICE='cuda' but this machine has no CUDA GPU"):
        check_parameters({"DEVICE": "cuda"})


def _wrong_run(chapter: Path, tmp_path: Path):
    """Execute ``chapter`` with EPOCHS=0 (SEED='zero' where it has no EPOCHS)."""
    known = chapter_parameters(chapter)
    name, value = ("EPOCHS", 0) if "EPOCHS" in known else ("SEED", "zero")
    results = tmp_path / chapter.stem / "results"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(chapter), str(tmp_path / chapter.name), cwd=str(chapter.parent),
            parameters={name: value, "RESULTS_DIR": str(results),
                        "DATA_DIR": str(tmp_path / chapter.stem / "data")},
            progress_bar=False, kernel_name="python3", execution_timeout=CELL_TIMEOUT_S)
    except papermill.PapermillExecutionError as error:
        return name, value, error, time.perf_counter() - start, results
    return name, value, None, time.perf_counter() - start, results


@pytest.mark.slow
def test_every_chapter_stops_at_a_wrong_value_before_any_work(tmp_path):
    """All chapters executed at once with one wrong value: each fails in its check cell, with
    one line naming the value, having read no data and written nothing."""
    with ThreadPoolExecutor(max_workers=len(CHAPTERS)) as pool:
        outcomes = list(pool.map(lambda chapter: _wrong_run(chapter, tmp_path), CHAPTERS))
    for chapter, (name, value, error, seconds, results) in zip(CHAPTERS, outcomes):
        assert error is not None, f"{chapter.name} ran with {name}={value!r}"
        assert error.ename == "ConfigError", (chapter.name, error.ename, error.evalue)
        assert error.evalue.startswith(f"{name}={value!r}; use"), (chapter.name, error.evalue)
        assert error.traceback == [f"ConfigError: {error.evalue}"]  # one line, no traceback
        assert not results.exists() and not (tmp_path / chapter.stem / "data").exists(), \
            f"{chapter.name} wrote files before stopping"
        executed = nbformat.read(tmp_path / chapter.name, as_version=4)
        failed = [cell for cell in executed.cells if cell.cell_type == "code"
                  and any(o.get("output_type") == "error" for o in cell.outputs)]
        assert "check_parameters(globals())" in failed[0].source, chapter.name


# -- damaged data ----------------------------------------------------------------------------------
def _truncated_copy(source_dir: Path, raw_dir: Path, damaged: str) -> Path:
    """torchvision's layout under ``raw_dir`` with one file cut to half its length."""
    raw_dir.mkdir(parents=True)
    for source in source_dir.glob("*-ubyte.gz"):
        data = gzip.decompress(source.read_bytes())
        if source.name.startswith(damaged):
            data = data[: len(data) // 2]
        (raw_dir / source.name[:-3]).write_bytes(data)
    return raw_dir / f"{damaged}-idx3-ubyte"


@pytest.mark.parametrize("dataset, folder, source", [
    ("mnist", "MNIST", SHIPPED_MNIST),
    ("fashion-mnist", "FashionMNIST", Path("/usr/share/datasets/fashion-mnist")),
])
def test_a_truncated_file_in_data_dir_names_its_folder_and_the_fix(dataset, folder, source,
                                                                    tmp_path):
    if not (source / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{source} is not installed")
    damaged = _truncated_copy(source, tmp_path / folder / "raw", "train-images")
    before = hashlib.sha256(damaged.read_bytes()).hexdigest()
    with pytest.raises(DatasetNotFoundError) as failure:
        companion.load_dataset(dataset, train=True, data_dir=tmp_path, verbose=False)
    message = str(failure.value)
    assert str(tmp_path / folder / "raw") in message
    assert "present but unreadable" in message and "delete or re-download them" in message
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() == before, "the file was changed"


def test_a_damaged_tile_of_the_texture_set_names_its_path(tmp_path):
    root = companion.surfaces.make_texture_set(tmp_path, categories=("brick",), tile_size=32,
                                               train_tiles=4, test_good=2, test_per_kind=1,
                                               verbose=False)
    tile = root / "brick" / "train" / "good" / "001.png"
    tile.write_bytes(tile.read_bytes()[:40])  # a cut-off download or a disk error
    with pytest.raises(DataError) as failure:
        companion.surfaces.load_folder(root, "brick", 32, verbose=False)
    assert f"{tile} is unreadable as an image" in str(failure.value)
    assert "replace or delete the file" in str(failure.value)


def test_a_users_folder_is_only_read_even_when_it_is_damaged(tmp_path):
    from test_surfaces import mvtec_folder, snapshot

    base = mvtec_folder(tmp_path / "mine")
    (base / "test" / "good" / "002.png").write_bytes(b"\x89PNG broken")
    before = snapshot(tmp_path / "mine")
    with pytest.raises(DataError, match=r"test/good/002\.png is unreadable as an image"):
        companion.surfaces.load_folder(tmp_path / "mine", "widget", 32, verbose=False)
    assert snapshot(tmp_path / "mine") == before, "nothing in the user's folder is written"


# -- checkpoints -----------------------------------------------------------------------------------
class RunsCode:
    """Unpickling it would call ``os.system``: what weights-only loading must refuse."""

    def __reduce__(self):
        return os.system, ("touch " + str(Path(os.environ.get("TMPDIR", "/tmp")) / "ran"),)


@pytest.fixture(scope="module")
def saved_detector(tmp_path_factory):
    from conftest import labelled_subset

    images = torch.zeros(40, 1, 28, 28)
    images[:, :, 4:24, 12:15] = 1.0
    det = detectors.make("dense_ae", latent_dim=2, epochs=1, device="cpu", progress=False)
    det.fit(labelled_subset(images * 2 - 1, [1] * 40, value_range="[-1, 1]"))
    path = tmp_path_factory.mktemp("checkpoint") / "dense.pt"
    det.save(path)
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda state: {**state, "payload": RunsCode()}, "is not a weights-only checkpoint"),
    (lambda state: {key: value for key, value in state.items() if key != "format"},
     "not a detector checkpoint of this library (expected format 'companion-detector/1'; "
     "found format None"),
    (lambda state: {**state, "format": "companion-detector/0"}, "found format 'companion-detector/0'"),
    (lambda state: {**state, "detector": "resnet"}, "detector 'resnet'; known detectors:"),
    (lambda state: state["state"], "not a detector checkpoint of this library"),
    (lambda state: {**state, "settings": {**state["settings"], "latent_dim": 7}},
     "its weights do not fit a dense_ae detector with these settings"),
])
def test_load_accepts_only_this_librarys_checkpoints(saved_detector, tmp_path, damage, message,
                                                     monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    state = torch.load(saved_detector, weights_only=True)
    path = tmp_path / "other.pt"
    torch.save(damage(state), path)
    with pytest.raises(CheckpointError) as failure:
        detectors.load(path, device="cpu", progress=False)
    assert message in str(failure.value) and str(path) in str(failure.value)
    assert not (tmp_path / "ran").exists(), "loading ran code from the file"


def test_a_truncated_or_missing_checkpoint_is_named(saved_detector, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(saved_detector.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="is not a readable checkpoint .* save it again"):
        detectors.load(cut, device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint at .*nowhere.pt"):
        detectors.load(tmp_path / "nowhere.pt", device="cpu", progress=False)
    assert detectors.load(saved_detector, device="cpu", progress=False).name == "dense_ae"


# -- the benchmark under faults --------------------------------------------------------------------
TINY = ["--models", "dense_ae", "--datasets", "mnist", "--classes", "0", "1", "--seeds", "0", "1",
        "--epochs", "1", "--max-train", "64", "--test-size", "300", "--no-progress"]


def _benchmark(out: Path, data_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "companion.benchmark", *TINY, "--out", str(out),
                             "--data-dir", str(data_dir), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_killed_benchmark_resumes_without_lost_or_duplicated_rows(tmp_path):
    out = tmp_path / "runs.csv"
    first = _benchmark(out, tmp_path / "data")
    deadline = time.time() + 120
    while not out.exists() and time.time() < deadline:  # kill it as soon as one run has landed
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    landed = read_rows(out)
    assert 1 <= len(landed) < 4, "the kill came after the first run and before the last"
    second = _benchmark(out, tmp_path / "data")
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    rows = read_rows(out)
    assert len(rows) == 4 and len({run_key(row) for row in rows}) == 4
    assert rows[:len(landed)] == landed, "the rows from before the kill are kept as they were"


APPEND_MANY = """
from companion.benchmark.results import append_row

def append_many(out, writer, count):
    row = {"model": f"writer{writer}", "dataset": "mnist", "seed": 0, "auroc": 0.5,
           "score": "s", "auroc_by_score": {"s": 0.5}, "f1_by_outlier_share": {},
           "seconds": 1.0, "train_size": 1, "test_size": 2, "train_source": "test",
           "device": "cpu", "settings": "{}"}
    for i in range(count):
        append_row(out, {**row, "normal_class": i})
"""
exec(APPEND_MANY)  # defines append_many here too, for the in-process case


def test_two_writers_on_one_file_lose_nothing(tmp_path):
    out = tmp_path / "shared.csv"
    script = APPEND_MANY + f"\nimport sys\nappend_many({str(out)!r}, int(sys.argv[1]), 40)\n"
    writers = [subprocess.Popen([sys.executable, "-c", script, str(w)], cwd=ROOT) for w in (1, 2)]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    rows = read_rows(out)
    assert len(rows) == 80
    assert {(row["model"], row["normal_class"]) for row in rows} == \
        {(f"writer{w}", i) for w in (1, 2) for i in range(40)}


def test_a_row_finished_twice_is_written_once(tmp_path):
    out = tmp_path / "twice.csv"
    append_many(str(out), 1, 3)  # noqa: F821 - defined by exec(APPEND_MANY)
    append_many(str(out), 1, 3)  # noqa: F821
    assert len(read_rows(out)) == 3


def test_a_crashed_run_is_recorded_as_failed_and_run_again(tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    data_dir = tmp_path / "data"
    overrides = {"epochs": 1, "max_train": 32, "test_size": 200}
    real_fit = detectors.DenseAEDetector.fit

    def crash_on_class_1(self, train, *args, **kwargs):
        if int(train.targets[0]) == 1:
            raise MemoryError("out of memory on class 1")
        return real_fit(self, train, *args, **kwargs)

    monkeypatch.setattr(detectors.DenseAEDetector, "fit", crash_on_class_1)
    with pytest.raises(BenchmarkRunError) as failure:
        run_benchmark(out, ["dense_ae"], ["mnist"], [0, 1], [0], overrides, data_dir,
                      device="cpu", progress=False)
    assert "1 run(s) failed (1 finished and kept)" in str(failure.value)
    assert "dense_ae/mnist/class 1/seed 0: MemoryError: out of memory on class 1" in str(failure.value)
    assert [row["normal_class"] for row in read_rows(out)] == [0]
    failed = read_failures(out)
    assert [(f["model"], f["normal_class"], f["error"]) for f in failed] == \
        [("dense_ae", 1, "MemoryError: out of memory on class 1")]
    monkeypatch.setattr(detectors.DenseAEDetector, "fit", real_fit)  # the fault is gone
    rows = run_benchmark(out, ["dense_ae"], ["mnist"], [0, 1], [0], overrides, data_dir,
                         device="cpu", progress=False)
    assert sorted(row["normal_class"] for row in rows) == [0, 1]  # retried, not skipped


@pytest.mark.parametrize("arguments, message", [
    (["--classes", "10"], "--classes contains 10, but mnist has classes 0..9"),
    (["--models", "resnet"], "unknown model(s) ['resnet']"),
    (["--datasets", "svhn"], "unknown DATASET='svhn'"),
    (["--epochs", "0"], "epochs=0; use a positive integer"),
    (["--device", "tpu"], "DEVICE='tpu'; use 'auto', 'cpu', 'cuda' or 'mps'"),
    (["--out", "results"], "--out 'results'; name a .csv file"),
    (["--executor", "ray", "--workers", "0"], "--workers=0; use a positive integer"),
])
def test_the_benchmark_cli_refuses_a_wrong_option_before_any_run(arguments, message, tmp_path,
                                                                  capsys):
    from companion.benchmark.__main__ import main

    out = tmp_path / "runs.csv"
    args = ["--models", "dense_ae", "--datasets", "mnist", "--out", str(out), *arguments]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
