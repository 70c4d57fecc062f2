"""Where the benchmark's runs execute: one after another here, or as Ray tasks; chapter 10.

Both executors take the runs still to do and the function that executes one (the runner's
``run_one``: passed in, so this module needs nothing from the runner), and hand each finished
row to ``record`` in the driver, the one process that writes the CSV file; rows arrive in whatever order runs finish.
A run that fails (any exception) is handed to ``fail`` with its error and reported with its key
once every other run has finished; the others go on.

Ray (``pip install -e .[scale]``) starts a local cluster on this machine's cores by default
(``ray.init()``), or joins one that ``ray start --head`` started elsewhere (``address``). Each
run is a task that asks for one CPU, or a share of a GPU (``gpus_per_run``); inside it PyTorch
uses as many threads as the task has CPUs, so tasks on the same cores do not fight.
"""

from __future__ import annotations

import time
from typing import Callable

from tqdm.auto import tqdm

from ..errors import CompanionError, ConfigError

EXECUTORS = ("sequential", "ray")


class BenchmarkRunError(CompanionError, RuntimeError):
    """One or more runs failed; the message names each run's key and its error."""


def _key(run: dict) -> str:
    return f"{run['model']}/{run['dataset']}/class {run['normal_class']}/seed {run['seed']}"


def _raise_failures(failures: list[str], finished: int) -> None:
    if failures:
        raise BenchmarkRunError(f"{len(failures)} run(s) failed ({finished} finished and kept): "
                                + "; ".join(failures))


def _ignore(run: dict, error: str) -> None:
    pass


def run_sequentially(todo: list[dict], execute: Callable[..., dict],
                     record: Callable[[dict], None], data_dir, device, progress: bool = True,
                     fail: Callable[[dict, str], None] = _ignore) -> None:
    """Every run in this process, one after another (the default executor)."""
    failures = []
    for run in tqdm(todo, desc="benchmark runs", disable=not progress):
        try:
            row = execute(run, data_dir, device)
        except Exception as error:  # noqa: BLE001 - a crashed run is recorded, the rest go on
            message = f"{type(error).__name__}: {error}"
            fail(run, message)
            failures.append(f"{_key(run)}: {message}")
            continue
        record(row)
    _raise_failures(failures, len(todo) - len(failures))


def _run_in_task(execute: Callable[..., dict], run: dict, data_dir, device, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return execute(run, data_dir, device)


def run_on_ray(todo: list[dict], execute: Callable[..., dict], record: Callable[[dict], None],
               data_dir, device, progress: bool = True, address: str | None = None,
               workers: int | None = None,
               cpus_per_run: int = 1, gpus_per_run: float = 0.0,
               fail: Callable[[dict, str], None] = _ignore) -> None:
    """Every run as a Ray task; the driver records rows as the tasks finish."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install -e '.[scale]' (or pip install "
                          "ray)") from None
    if gpus_per_run and not 0 < gpus_per_run <= 1:
        raise ConfigError(f"--gpus-per-run {gpus_per_run!r}; use a share such as 0.25 (or 1)")
    started_here = not ray.is_initialized()
    if started_here:
        # A local cluster on `workers` CPUs (all cores by default), or the cluster at `address`.
        ray.init(address=address, num_cpus=None if address else workers,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=1)(_run_in_task)
    # Without a GPU share a task stays on the CPU, whatever "auto" would pick on its node.
    task_device = "cpu" if not gpus_per_run and str(device) == "auto" else str(device)
    pending = {task.remote(execute, run, str(data_dir), task_device, cpus_per_run): run
               for run in todo}
    failures, start = [], time.perf_counter()
    try:
        with tqdm(total=len(todo), desc="benchmark runs (Ray)", disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(done[0])
                try:
                    record(ray.get(done[0]))
                except ray.exceptions.RayError as error:
                    cause = getattr(error, "cause", None) or error
                    fail(run, f"{type(cause).__name__}: {cause}")
                    failures.append(f"{_key(run)}: {type(cause).__name__}: {cause}")
                bar.update(1)
    except KeyboardInterrupt:
        for ref in pending:  # finished rows are in the file; only the runs in flight are lost
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()
    if progress:
        print(f"{len(todo)} runs on Ray in {time.perf_counter() - start:.1f} s", flush=True)
    _raise_failures(failures, len(todo) - len(failures))
