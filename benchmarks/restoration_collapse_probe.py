"""Does the restoration AE with 64 feature maps stop learning on MNIST "1"? (issue 28)

restoration_plus's first benchmark run on "1" (seed 0) scored far below restoration_ae's. This
probe trains both widths on 1,500 training "1"s for 8 epochs (seed 0, the held-out 10 % as
validation, as the benchmark holds out) and prints each epoch's training and validation loss,
the epoch kept, the test AUROC on 2,000 test images, and how much the restorations vary from
image to image (0 means one output for every input).

With the guard the detector gained afterwards (restart a dead network from new initial weights,
``RestorationAEDetector``), the log shown is the last training's, and ``restarts`` says how many
trainings died before it; ``--no-guard`` shows the first training alone, as the probe found it.

    OMP_NUM_THREADS=1 python benchmarks/restoration_collapse_probe.py   # about a minute
"""

import argparse

import torch

import companion
from companion import detectors
from companion.detectors import restoration
from companion.models.restoration import ERASURE_SETS, restoration_spread, restorations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-guard", action="store_true", help="never restart a dead network")
    if parser.parse_args().no_guard:
        restoration.RESTARTS = 0
    torch.set_num_threads(1)
    split = companion.one_class_split("mnist", [1], None, data_dir="chapters/data",
                                      verbose=False, val_fraction=0.1, seed=0)
    train, test = split.train.sample(1500, 0), split.test.sample(2000, 0)
    for base_channels in (32, 64):
        det = detectors.make("restoration_ae", device="cpu", seed=0, progress=False, epochs=8,
                             base_channels=base_channels, normalise=True)
        history = det.fit(train, val=split.val)
        scores = det.score(test)
        held_out = restoration_spread(restorations(det.net, split.val.tensors()[0][:512],
                                                   ERASURE_SETS["turns"]))
        print(f"{base_channels} feature maps, restarts {history.restarts}: loss "
              f"{[round(x, 4) for x in history['loss']]}, "
              f"val {[round(x, 4) for x in history['val_loss']]}, kept epoch "
              f"{history.chosen_epoch}, test AUROC {scores.auroc():.4f}, output spread "
              f"{scores.outputs.std(dim=0).mean().item():.4f} (held-out training images "
              f"{held_out:.4f})",
              flush=True)


if __name__ == "__main__":
    main()
