"""Measure four changes to the restoration autoencoder and choose its record attempt (issue 28).

The rule, written down before any run (results/restoration_record_rule.md): the even classes of
a dataset normal in turn (seed 0); 20 % of a class's training images and 1,500 training images
of the other classes are the *selection set*; of the rest, one eighth is the detector's own
validation set (epoch kept, per-erasure normalisation means), the others train. Each candidate
(the baseline and four single changes) is scored on the selection set, with and without the
normalisation, and on the full test split (the ablation the book reports; it chooses nothing).
After all five, the rule's adopted changes are combined and run the same way.

    OMP_NUM_THREADS=1 python benchmarks/choose_restoration_record.py mnist \\
        --out benchmarks/results/restoration_record_mnist.json   # ~1 min a run on one thread
    python benchmarks/choose_restoration_record.py mnist --out ... --table

The file is rewritten atomically after each run; a second call skips what it holds.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import companion
from companion import ClassSubset, detectors
from companion.benchmark.results import (RESTORATION_CANDIDATES as CANDIDATES,
                                        choose_restoration_record, restoration_ablation)
from companion.files import atomic_path
from companion.metrics import detection_metrics, format_table

OTHER_CLASS_IMAGES = 1500
CLASSES = (0, 2, 4, 6, 8)
BASELINE = {"latent_dim": 32, "base_channels": 32, "epochs": 20, "batch_size": 64, "lr": 1e-3}


def run(dataset, normal_class, changes, data_dir) -> dict:
    split = companion.one_class_split(dataset, [normal_class], None, data_dir=data_dir,
                                      verbose=False, val_fraction=0.2, seed=0)
    train, own_val = split.train.partition(0.125, seed=0)
    others = [c for c in range(split.info.num_classes) if c != normal_class]
    pool = ClassSubset(split.train.dataset, [], others,
                       value_range=split.value_range).sample(OTHER_CLASS_IMAGES, 0)
    labels = np.r_[np.zeros(len(split.val)), np.ones(len(pool))]
    det = detectors.make("restoration_ae", device="cpu", seed=0, progress=False, normalise=True,
                         **BASELINE, **changes)
    start = time.perf_counter()
    det.fit(train, val=own_val)
    seconds = time.perf_counter() - start
    error = det.settings["loss"]
    names = {"plain": f"restoration {error}", "normalised": f"normalised restoration {error}"}
    normal, anomalous, test = det.score(split.val), det.score(pool), det.score(split.test)
    return {"dataset": dataset, "class": normal_class, "changes": changes,
            "train_size": len(train), "own_val_size": len(own_val),
            "selection_size": len(labels), "seconds": round(seconds, 1),
            "chosen_epoch": det.history.chosen_epoch,
            "selection": {kind: detection_metrics(labels, np.r_[normal[n], anomalous[n]])["auroc"]
                          for kind, n in names.items()},
            "test": {kind: test.auroc(n) for kind, n in names.items()},
            "test_by_erasure": {n: a for n, a in test.aurocs().items() if n not in names.values()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    args = parser.parse_args()
    path = Path(args.out)
    rows = json.loads(path.read_text()) if path.exists() else []
    if args.table:
        table = restoration_ablation(rows)
        print(format_table(table, [*CLASSES, "test", "selection"], "candidate",
                           width=10, number_format=".2f"))
        print(json.dumps(choose_restoration_record(rows, CANDIDATES), indent=1))
        return
    torch.set_num_threads(1)

    def measure(name, changes):
        for normal_class in CLASSES:
            if any(r["candidate"] == name and r["class"] == normal_class for r in rows):
                continue
            row = {"candidate": name, **run(args.dataset, normal_class, changes, args.data_dir)}
            rows.append(row)
            print(args.dataset, normal_class, f"{name:16s} {row['seconds']:5.0f} s  selection",
                  {k: round(v, 4) for k, v in row["selection"].items()}, "test",
                  {k: round(v, 4) for k, v in row["test"].items()}, flush=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(rows, indent=1))

    for name, changes in CANDIDATES.items():
        measure(name, changes)
    decision = choose_restoration_record(rows, CANDIDATES)
    if decision["combination"]:
        measure("combination", decision["combination"])
    print(json.dumps(choose_restoration_record(rows, CANDIDATES), indent=1))


if __name__ == "__main__":
    main()
