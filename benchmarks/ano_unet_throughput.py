"""Ano-Unet throughput: one U-Net at a time against many at once (chapter 07).

Trains a fresh U-Net on each of the same ``--num-images`` images, first one after another
(``optimise_one_by_one``, the Ano-Unet article's loop), then batched (``optimise_batched``) in chunks of each
``--batch-sizes``, and prints images per second, peak memory and the speed-up over the loop::

    .venv/bin/python benchmarks/ano_unet_throughput.py
    .venv/bin/python benchmarks/ano_unet_throughput.py --device cuda --num-images 1024 \\
        --batch-sizes 1 16 64 256 1024

Each setting runs in its own spawned process (``timed_in_fresh_process`` of
``companion.detectors.ano_unet``), so that its peak memory is its own: on the CPU the highest
resident set size during the run minus the size before it, on a GPU the growth of
``max_memory_allocated``. A warm-up on one image runs first in that process. The images are
seeded noise and the f-Net is untrained: the cost of a step depends on neither.
"""

from __future__ import annotations

import argparse
import sys

import torch

from companion.engine import resolve_device
from companion.detectors.ano_unet import (bytes_per_image, optimise_batched,
                                          optimise_one_by_one, timed_in_fresh_process)
from companion.models.fnet import FeatureNet


def measure(setting: str, images, fnet, centre, args) -> dict:
    """Run one setting (``"one-by-one"`` or a chunk size) in a fresh process; its figures."""
    device = resolve_device(args.device)
    settings = {"num_steps": args.steps, "device": device, "progress": False}
    if setting == "one-by-one":
        optimise = optimise_one_by_one
    else:
        optimise, settings["batch_size"] = optimise_batched, int(setting)
    timing = timed_in_fresh_process(optimise, images, fnet, centre, **settings)
    return {"setting": setting, "chunk": timing["U-Nets at once"], "seconds": timing["seconds"],
            "images_per_s": timing["images/s"], "peak_mib": timing["peak MiB"],
            "estimate_mib": timing["U-Nets at once"] * bytes_per_image(fnet, (1, 28, 28)) / 2**20,
            "device": str(device)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 32, 64],
                        help="U-Nets trained at once, one measurement each")
    parser.add_argument("--num-images", type=int, default=64, help="the same images for all")
    parser.add_argument("--steps", type=int, default=20, help="Adam steps per image")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads; 0 keeps PyTorch's default")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # the fresh processes use as many
    images = torch.rand(args.num_images, 1, 28, 28,
                        generator=torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    fnet = FeatureNet()
    with torch.no_grad():
        centre = fnet.features(images).mean(dim=0)
    rows = []
    for setting in ["one-by-one", *map(str, args.batch_sizes)]:
        rows.append(measure(setting, images, fnet, centre, args))
        print(f"measured {setting}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    base = rows[0]["images_per_s"]
    print(f"\n{args.num_images} images, {args.steps} steps each, device {rows[0]['device']}, "
          f"{torch.get_num_threads()} torch threads\n")
    print("| setting | U-Nets at once | images/s | × one-by-one | peak memory (MiB) | estimate (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        name = "one-by-one" if row["setting"] == "one-by-one" else "batched"
        print(f"| {name} | {row['chunk']} | {row['images_per_s']:.2f} | "
              f"{row['images_per_s'] / base:.1f} | "
              f"{'n/a' if row['peak_mib'] is None else format(row['peak_mib'], '.0f')} | "
              f"{row['estimate_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
