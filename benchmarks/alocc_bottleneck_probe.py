"""ALOCC with a bottleneck in R, on the benchmark's protocol: a probe read on the test split.

Chapter 06 measures why ALOCC fails on the full splits: its R (no bottleneck) reconstructs every
digit about as well as the normal one. This probe gives R the chapter-03 conv autoencoder's
32-number code (``r_latent_dim=32``), every other setting the benchmark's, and runs it through
the benchmark's own ``run_one``. Its AUROCs are test-split figures, so it chooses nothing: the
benchmark's ALOCC keeps the settings fixed before it ran, and the chapter says so.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/alocc_bottleneck_probe.py \
        --out benchmarks/results/alocc_bottleneck_probe.csv

Resumable: a second call runs only what the file does not hold.
"""

import argparse
import json

import torch

from companion.benchmark.results import append_row, read_rows, run_key
from companion.benchmark.runner import MODELS, run_one


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist"])
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", default="benchmarks/results/alocc_bottleneck_probe.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    done = {run_key(row) for row in read_rows(args.out)}
    for dataset in args.datasets:
        settings = json.dumps({**MODELS["alocc"].defaults(dataset), "r_latent_dim": 32},
                              sort_keys=True)
        for normal in args.classes:
            for seed in args.seeds:
                run = {"model": "alocc", "dataset": dataset, "normal_class": normal,
                       "seed": seed, "settings": settings}
                if run_key(run) in done:
                    continue
                row = run_one(run, args.data_dir, device="cpu")
                print(dataset, normal, seed, {k: round(v, 4) for k, v in row["auroc_by_score"].items()},
                      row["seconds"], "s", flush=True)
                append_row(args.out, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
