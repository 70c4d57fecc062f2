"""Choose the restoration autoencoder's benchmark settings on training-split images only.

The rule, fixed before any run: the even classes 0, 2, 4, 6, 8 of a dataset are normal in
turn; 80 % of the class's training images train the model (seed 0), the other 20 % are held out;
every ``--every`` epochs the held-out normal images and 1,500 training images of the other
classes are scored, and the AUROC of the headline score ("restoration mse") and the held-out
restoration loss are recorded. The setting with the higher mean AUROC over the five classes
wins. No test image is read.

    python benchmarks/choose_restoration_settings.py fashion-mnist --epochs 80 --every 10 \\
        --base-channels 32 --out benchmarks/results/restoration_epochs_fashion.json

It made ``restoration_settings_{mnist,fashion}.json`` (16 against 32 feature maps, 40 epochs)
and ``restoration_epochs_fashion.json`` (40 against 80 epochs); benchmarks/README.md has the
figures and the choices.
"""

import argparse
import json
import time

import numpy as np
import torch

import companion
from companion import detectors
from companion.files import atomic_path
from companion.metrics import detection_metrics

OTHER_CLASS_IMAGES = 1500


def training_split_curve(dataset, normal_class, base_channels, epochs, every, data_dir):
    split = companion.one_class_split(dataset, [normal_class], None, data_dir=data_dir,
                                      verbose=False, val_fraction=0.2, seed=0)
    pool = split.training_anomalies(OTHER_CLASS_IMAGES, seed=0)
    det = detectors.make("restoration_ae", base_channels=base_channels, latent_dim=32,
                         epochs=epochs, batch_size=64, lr=1e-3, device="cpu", seed=0,
                         progress=False)
    curve = []

    def after_epoch(epoch):
        if epoch % every == 0:
            normal, anomalous = det.score(split.val), det.score(pool)
            labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
            point = {"epoch": epoch,
                     "val_restoration_loss": float(normal["restoration mse"].mean())}
            for score in ("restoration mse", "mse"):
                values = np.r_[normal[score], anomalous[score]]
                point[score] = detection_metrics(labels, values)["auroc"]
            curve.append(point)
        return {}

    start = time.perf_counter()
    history = det.fit(split.train, after_epoch=after_epoch)
    return {"dataset": dataset, "class": normal_class, "config": f"bc{base_channels}_z32",
            "train_size": len(split.train), "val_size": len(split.val),
            "seconds": time.perf_counter() - start, "loss": history["loss"], "curve": curve}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--base-channels", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--data-dir", default="chapters/data")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for normal_class in (0, 2, 4, 6, 8):
        for base_channels in args.base_channels:
            row = training_split_curve(args.dataset, normal_class, base_channels, args.epochs,
                                       args.every, args.data_dir)
            rows.append(row)
            print(args.dataset, normal_class, row["config"], f"{row['seconds']:.0f} s",
                  [(p["epoch"], round(p["restoration mse"], 4)) for p in row["curve"]],
                  flush=True)
            with atomic_path(args.out) as tmp:
                tmp.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
