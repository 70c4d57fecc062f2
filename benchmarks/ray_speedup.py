"""Wall time of one small benchmark grid, run sequentially and on a local Ray, side by side.

    python benchmarks/ray_speedup.py [--workers 2] [--classes 0 1 2 3] [--gpus-per-run 0.25]

The same grid (one model, a few classes, one seed) runs twice into two fresh CSV files in a
temporary folder: first in this process, one run after another, then as Ray tasks on a local
cluster of ``--workers`` CPUs. It prints both wall times, their ratio and the largest AUROC
difference between the two files (the rows must agree). Data loading is inside the timing
for both, as it is for a reader running the benchmark.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from companion.benchmark import run_benchmark, run_key


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="conv_ae")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--gpus-per-run", type=float, default=0.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default="chapters/data")
    args = parser.parse_args(argv)
    grid = dict(models=[args.model], datasets=[args.dataset], classes=args.classes, seeds=[0],
                overrides={"epochs": args.epochs}, data_dir=args.data_dir, device=args.device,
                progress=False)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        sequential = run_benchmark(Path(folder) / "sequential.csv", **grid)
        sequential_seconds = time.perf_counter() - start
        start = time.perf_counter()
        on_ray = run_benchmark(Path(folder) / "ray.csv", **grid, executor="ray",
                               workers=args.workers, gpus_per_run=args.gpus_per_run)
        ray_seconds = time.perf_counter() - start
    ray_auroc = {run_key(row): row["auroc"] for row in on_ray}
    difference = max(abs(row["auroc"] - ray_auroc[run_key(row)]) for row in sequential)
    print(f"grid: {args.model} on {args.dataset}, classes {args.classes}, 1 seed, "
          f"{args.epochs} epochs; {torch.get_num_threads()} torch threads in this process")
    print(f"sequential            {sequential_seconds:8.1f} s")
    print(f"Ray, {args.workers} workers"
          f"{f', {args.gpus_per_run} GPU each' if args.gpus_per_run else ''}"
          f"       {ray_seconds:8.1f} s")
    print(f"sequential / Ray      {sequential_seconds / ray_seconds:8.2f}x")
    print(f"largest AUROC difference between the two files: {difference:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
