"""Choose ALOCC's reconstruction term on held-out normal training images only (chapter 06).

The rule, fixed before the run: the paper's per-image sum ‖x − R(x̃)‖² replaces the Chainer article's
per-pixel mean as ALOCC's default if, on held-out normal training images only, R's
reconstruction error (mean squared error per pixel, at the kept epoch) is lower with it for each
of seeds 0, 1, 2 on digit 1 in chapter 06's setting (500 training "1"s drawn at random, 100 of
them held out, 10 epochs, D without normalisation). Also recorded, label-free: the share of the
held-out normal images whose D(R(x)) is below 0.5, which the paper's rule keeps as normal. No test
image is read.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/choose_alocc_loss.py --out benchmarks/results/alocc_loss.json

Its record: both reductions, every seed; benchmarks/README.md has the figures and the choice.
"""

import argparse
import json

import torch

import companion
from companion import detectors
from companion.files import atomic_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", default="benchmarks/results/alocc_loss.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    record = []
    for seed in (0, 1, 2):
        split = companion.one_class_split("mnist", [1], [0], data_dir=args.data_dir,
                                          value_range="[0, 1]", val_fraction=0.2, train_size=500,
                                          seed=seed, verbose=False)
        held_out = split.val.tensors()[0]
        for reduction in ("mean", "sum"):
            det = detectors.make("alocc", l2_reduction=reduction, d_norm="none", seed=seed,
                                 device="cpu", progress=False)
            history = det.fit(split.train, val=split.val)
            with torch.no_grad():
                error = float(((det.r(held_out) - held_out) ** 2).mean())
            d_of_r = det.score(split.val)["D(R(x))"]
            row = {"seed": seed, "l2_reduction": reduction, "kept_epoch": history.chosen_epoch,
                   "val_mse_per_pixel": error,
                   "val_kept_as_normal_at_0.5": float((d_of_r < 0.5).mean()),
                   "seconds": history.seconds}
            print(row, flush=True)
            record.append(row)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
