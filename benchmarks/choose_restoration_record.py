"""Measure four changes to the restoration autoencoder and choose its record attempt (issue 28).

The rule, written down before any run (results/restoration_record_rule.md): the even classes of
a dataset normal in turn (seed 0); 20 % of a class's training images and 1,500 training images
of the other classes are the *selection set*; of the rest, one eighth is the detector's own
validation set (epoch kept, per-erasure normalisation means), the others train. Each candidate
(the baseline and four single changes) is scored on the selection set, with and without the
normalisation, and on the full test split (the ablation the book reports; it chooses nothing).
After all five, the rule's adopted changes are combined and run the same way; if the baseline
is still the choice, round two's candidates (more feature maps, a 3-seed ensemble) are.

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
from companion import detectors
from companion.benchmark import MODELS
from companion.benchmark.results import (RESTORATION_CANDIDATES as CANDIDATES,
                                        RESTORATION_ROUND_THREE as ROUND_THREE,
                                        RESTORATION_ROUND_TWO as ROUND_TWO,
                                        choose_restoration_record, restoration_ablation,
                                        restoration_round_three)
from companion.files import atomic_path
from companion.metrics import detection_metrics, format_table

OTHER_CLASS_IMAGES = 1500
CLASSES = (0, 2, 4, 6, 8)
BASELINE = {"latent_dim": 32, "base_channels": 32, "epochs": 20, "batch_size": 64, "lr": 1e-3}




def run(dataset, normal_class, changes, data_dir) -> dict:
    split = companion.one_class_split(dataset, [normal_class], None, data_dir=data_dir,
                                      verbose=False, val_fraction=0.2, seed=0)
    train, own_val = split.train.partition(0.125, seed=0)
    pool = split.training_anomalies(OTHER_CLASS_IMAGES, seed=0)
    labels = np.r_[np.zeros(len(split.val)), np.ones(len(pool))]
    changes = dict(changes)
    seeds = changes.pop("seeds", [0])
    partner = changes.pop("partner", None)
    parts = {"selection": [], "test": []}
    start = time.perf_counter()

    def add_part(scored, names):
        # each network's headline divided by its mean on its own held-out normal images, so
        # that an ensemble averages like with like (a no-op for the normalised headline)
        scale = {kind: float(scored["own_val"][n].mean()) for kind, n in names.items()}
        parts["selection"].append({kind: np.r_[scored["normal"][n], scored["anomalous"][n]]
                                   / scale[kind] for kind, n in names.items()})
        parts["test"].append({kind: scored["test"][n] / scale[kind] for kind, n in names.items()})

    def score_all(det):
        return {"own_val": det.score(own_val), "normal": det.score(split.val),
                "anomalous": det.score(pool), "test": det.score(split.test)}

    for seed in seeds:
        det = detectors.make("restoration_ae", device="cpu", seed=seed, progress=False,
                             normalise=True, **{**BASELINE, **changes})
        det.fit(train, val=own_val)
        error = det.settings["loss"]
        names = {"plain": f"restoration {error}", "normalised": f"normalised restoration {error}"}
        scored = score_all(det)
        add_part(scored, names)
    restorer_parts = list(parts["selection"]), list(parts["test"])
    if partner is not None:  # a second network of another kind, averaged in like a seed
        settings = {k: v for k, v in MODELS[partner].defaults(dataset).items() if k != "score"}
        other = detectors.make(MODELS[partner].detector, **{**settings, "device": "cpu",
                                                            "seed": seeds[0], "progress": False})
        other.fit(train, val=own_val)
        headline = other.headline
        add_part(score_all(other), {"plain": headline, "normalised": headline})
    seconds = time.perf_counter() - start
    test_labels = scored["test"].labels

    def auroc(part, truth, chosen=None):
        chosen = parts[part] if chosen is None else chosen
        return {kind: detection_metrics(truth, np.mean([p[kind] for p in chosen], axis=0))[
            "auroc"] for kind in ("plain", "normalised")}
    row = {"dataset": dataset, "class": normal_class,
           "changes": {**changes, "seeds": seeds, **({"partner": partner} if partner else {})},
           "train_size": len(train), "own_val_size": len(own_val),
           "selection_size": len(labels), "seconds": round(seconds, 1),
           "chosen_epoch": det.history.chosen_epoch,
           "selection": auroc("selection", labels), "test": auroc("test", test_labels),
           "test_by_erasure": {n: a for n, a in scored["test"].aurocs().items()
                               if n not in names.values()}}
    if partner is not None:  # the restorer alone, to compare with the round that chose it
        row["restorer_alone"] = {"selection": auroc("selection", labels, restorer_parts[0]),
                                 "test": auroc("test", test_labels, restorer_parts[1])}
    return row


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
        print(format_table(table, [*CLASSES, "test", "sel. set"], "candidate",
                           width=10, number_format=".2f"))
        print(json.dumps(choose_restoration_record(rows, CANDIDATES), indent=1))
        print(json.dumps(restoration_round_three(rows), indent=1))
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
    decision = choose_restoration_record(rows, CANDIDATES)
    print(json.dumps(decision, indent=1))
    if decision["chosen"] == "baseline":  # round two, on top of round one's choice
        for name, changes in ROUND_TWO.items():
            measure(name, changes)
        print(json.dumps(choose_restoration_record(rows, CANDIDATES), indent=1))
    if choose_restoration_record(rows, CANDIDATES)["chosen"] == "64 feature maps":
        for name, changes in ROUND_THREE.items():  # round three, on top of round two's choice
            measure(name, changes)
        print(json.dumps(restoration_round_three(rows), indent=1))


if __name__ == "__main__":
    main()
