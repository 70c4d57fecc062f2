"""Measure the changes to ALOCC that might make its discriminator detect, and choose one.

The rule, written down before any run (results/alocc_fix_rule.md): every MNIST digit is normal
in turn (seed 0); 80 % of its training images train ALOCC, the other 20 % are held out (the
stopping rule reads them); each candidate is scored on a *selection set* made of training
images only (the held-out 20 % and 1,500 training images of the other digits) and on the full
test split. The candidate with the highest mean selection AUROC of D(R(x)) over the ten digits
is the fixed detector. The test AUROCs are the measurement the book reports; they choose nothing.

Candidates share their first phase where they can: each phase-one variant is trained once,
scored, then given OGNet's second phase and scored again.

    OMP_NUM_THREADS=1 python benchmarks/alocc_fix.py --classes 0 1 2 3 4 \\
        --out benchmarks/results/alocc_fix_mnist_a.json      # about 4 min a digit on one thread

The file is rewritten atomically after each (digit, phase-one variant); a second call skips what
it holds.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import companion
from companion import detectors
from companion.files import atomic_path
from companion.metrics import detection_metrics

OTHER_CLASS_IMAGES = 1500

#: Phase-one variants: today's benchmark ALOCC, R with a 32-number code, that R with a
#: spectrally normalised D, and that R with a D that judges (x, R(x)) pairs. Each is measured before and after OGNet's second phase.
PHASE_ONE = {
    "published": {},
    "bottleneck": {"r_latent_dim": 32},
    "bottleneck + spectral D": {"r_latent_dim": 32, "d_norm": "spectral"},
    # Added in the second round (results/alocc_fix_rule.md), before any full run of it.
    "bottleneck + pair D": {"r_latent_dim": 32, "d_input": "pair"},
}
SCORES = ("D(R(x))", "D(x)", "R error")


def measure(scores, labels=None) -> dict:
    labels = scores.labels if labels is None else labels
    out = {name: detection_metrics(labels, scores[name])["auroc"] for name in SCORES}
    # D's verdict on normal and anomalous images, for the chapter's before/after figure
    headline = np.asarray(scores["D(R(x))"])
    out["D(R(x)) quartiles"] = {
        kind: np.quantile(headline[labels == flag], [0.25, 0.5, 0.75]).round(4).tolist()
        for kind, flag in (("normal", 0), ("anomalous", 1))}
    return out


def run_digit(dataset, normal_class, variant, data_dir) -> list[dict]:
    split = companion.one_class_split(dataset, [normal_class], None, data_dir=data_dir,
                                      value_range="[0, 1]", verbose=False, val_fraction=0.2,
                                      seed=0)
    pool = split.training_anomalies(OTHER_CLASS_IMAGES, seed=0)
    selection_labels = np.r_[np.zeros(len(split.val)), np.ones(len(pool))]
    det = detectors.make("alocc", device="cpu", seed=0, progress=False, **PHASE_ONE[variant])
    rows = []

    def record(name, seconds):
        selection = [det.score(split.val), det.score(pool)]
        merged = {s: np.r_[selection[0][s], selection[1][s]] for s in SCORES}
        rows.append({"dataset": dataset, "class": normal_class, "candidate": name,
                     "train_size": len(split.train), "selection_size": len(selection_labels),
                     "seconds": round(seconds, 1), "chosen_epoch": det.history.chosen_epoch,
                     "selection": measure(merged, selection_labels),
                     "test": measure(det.score(split.test))})

    start = time.perf_counter()
    det.fit(split.train, val=split.val)
    record(variant, time.perf_counter() - start)
    det.phase_two(split.train, epochs=1)
    record(f"{variant} + phase two", time.perf_counter() - start)
    rows[-1]["phase_two_loss"] = det.phase_two_history["d_phase_two_loss"]
    return rows


def markdown_table(rows: list[dict]) -> str:
    """Per-digit test AUROC (%) of D(R(x)) for each candidate, with the means the rule reads."""
    classes = sorted({row["class"] for row in rows})
    lines = ["| candidate | " + " | ".join(f'"{c}"' for c in classes)
             + " | mean test | mean selection | mean test R error |",
             "| --- | " + " | ".join("---:" for _ in classes) + " | ---: | ---: | ---: |"]
    by_candidate: dict = {}
    for row in rows:
        by_candidate.setdefault(row["candidate"], {})[row["class"]] = row
    for name, per_class in by_candidate.items():
        cells = [f"{100 * per_class[c]['test']['D(R(x))']:.1f}" for c in classes]
        means = [100 * np.mean([r[part][score] for r in per_class.values()])
                 for part, score in (("test", "D(R(x))"), ("selection", "D(R(x))"),
                                     ("test", "R error"))]
        lines.append(f"| {name} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{m:.2f}" for m in means) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--variants", nargs="+", default=list(PHASE_ONE), choices=list(PHASE_ONE))
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", action="store_true",
                        help="print the per-digit table of the runs in --out and stop")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return
    torch.set_num_threads(1)
    rows = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else []
    done = {(r["class"], r["candidate"]) for r in rows}
    for normal_class in args.classes:
        for variant in args.variants:
            if (normal_class, variant) in done:
                continue
            new = run_digit(args.dataset, normal_class, variant, args.data_dir)
            rows += new
            for row in new:
                print(args.dataset, normal_class, f"{row['candidate']:34s}",
                      f"{row['seconds']:6.0f} s  selection {row['selection']['D(R(x))']:.4f}",
                      f" test {row['test']['D(R(x))']:.4f}  R error {row['test']['R error']:.4f}",
                      flush=True)
            with atomic_path(args.out) as tmp:
                tmp.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
