"""How ALOCC's three scores evolve epoch by epoch on the benchmark's full splits (chapter 06).

A measurement, not a choice: the benchmark's ALOCC run (full training split of one normal class,
20 % of it held out, the detector's defaults) is trained for ``--epochs`` epochs, and after each
epoch it records R's squared error per pixel on the held-out normal images (what a stopping
rule may look at) and, beside it, the test AUROC of D(R(x)), D(x) and R's error (what no rule
may look at). Nothing is chosen from the test columns; they show why a run ends where it ends.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/alocc_dynamics.py --dataset mnist \
        --out benchmarks/results/alocc_dynamics_mnist.json

The record is rewritten atomically after each class, and a second call skips the classes it holds.
"""

import argparse
import json
from pathlib import Path

import torch

import companion
from companion import detectors
from companion.files import atomic_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", type=int, nargs="*", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    record = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    done = {(row["dataset"], row["normal_class"], row["seed"]) for row in record}
    info = companion.data.dataset_info(args.dataset)
    for normal in args.classes if args.classes is not None else range(info.num_classes):
        if (info.name, normal, args.seed) in done:
            continue
        split = companion.one_class_split(info.name, [normal], None, data_dir=args.data_dir,
                                          value_range="[0, 1]", val_fraction=0.2,
                                          seed=args.seed, verbose=False)
        # Every epoch runs: the rule's own stop is read off the held-out column afterwards.
        det = detectors.make("alocc", epochs=args.epochs, stop_below=None, seed=args.seed,
                             device="cpu", progress=False)

        def test_aurocs(epoch):
            aurocs = det.score(split.test).aurocs()
            return {f"test_auroc {name}": value for name, value in aurocs.items()}

        history = det.fit(split.train, val=split.val, after_epoch=test_aurocs)
        row = {"dataset": info.name, "normal_class": normal, "seed": args.seed,
               "train_size": len(split.train), "val_size": len(split.val),
               "seconds": history.seconds, **history.log}
        print({k: row[k] for k in ("dataset", "normal_class", "seconds")},
              [round(v, 4) for v in row["val_loss"]], flush=True)
        record.append(row)
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
