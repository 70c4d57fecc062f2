"""``python -m companion.benchmark``: the one-class benchmark from the command line; chapter 10.

    python -m companion.benchmark --models conv_ae alocc --datasets mnist \\
        --classes 0 1 2 3 4 5 6 7 8 9 --seeds 0 1 2 --out benchmarks/results/one_class.csv

Each finished run appends one row to the CSV file, so an interrupted benchmark loses at most
the runs in progress, and a second call with the same arguments skips every run in the file.
``--executor ray`` spreads the runs over this machine's cores (a local Ray), or over a cluster
started with ``ray start --head`` (``--address HOST:6379``).
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CompanionError
from .results import mean_over_classes, summarise
from .runner import MODELS, run_benchmark


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion.benchmark",
                                     description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), metavar="MODEL",
                        help=f"any of {sorted(MODELS)} (default: all)")
    parser.add_argument("--datasets", nargs="+", default=["mnist"], metavar="DATASET")
    parser.add_argument("--classes", nargs="+", type=int, default=None,
                        help="normal classes to run (default: every class)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override every model's number of epochs")
    parser.add_argument("--max-train", type=int, help="train on at most this many images")
    parser.add_argument("--test-size", type=int, help="score a random part of the test split")
    parser.add_argument("--out", default="benchmarks/results/one_class.csv")
    parser.add_argument("--data-dir", default="chapters/data",
                        help="torchvision layout; shared with the chapters by default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--executor", choices=["sequential", "ray"], default="sequential",
                        help="sequential (default) or ray: one Ray task per run")
    parser.add_argument("--address", help="with --executor ray: join this Ray cluster "
                        "(default: start a local one on this machine's cores)")
    parser.add_argument("--workers", type=int, help="with a local Ray: CPUs to use (default all)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0,
                        help="with --executor ray: GPU share per run, e.g. 0.25")
    args = parser.parse_args(argv)
    try:
        rows = run_benchmark(args.out, args.models, args.datasets, args.classes, args.seeds,
                             {"epochs": args.epochs, "max_train": args.max_train,
                              "test_size": args.test_size},
                             args.data_dir, args.device, not args.no_progress, args.executor,
                             args.address, args.workers, args.gpus_per_run)
    except CompanionError as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 2
    for (model, dataset), per_class in summarise(rows).items():
        print(f"{model:>14} {dataset:<14} mean AUROC {mean_over_classes(per_class):.4f} over "
              f"{len(per_class)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
