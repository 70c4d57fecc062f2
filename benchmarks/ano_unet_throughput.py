"""Ano-Unet throughput: one U-Net at a time against many at once (chapter 06).

Trains a fresh U-Net on each of the same ``--num-images`` images, first one after another
(``optimise_one_by_one``, the seed's loop), then batched (``optimise_batched``) in chunks of each
``--batch-sizes``, and prints images per second, peak memory and the speed-up over the loop::

    .venv/bin/python benchmarks/ano_unet_throughput.py
    .venv/bin/python benchmarks/ano_unet_throughput.py --device cuda --num-images 1024 \\
        --batch-sizes 1 16 64 256 1024

Each setting runs in its own forked process, so that its peak memory is its own: on the CPU the
growth of the peak resident set (``ru_maxrss``, Linux) during the run, on a GPU the growth of
``max_memory_allocated``. The images are seeded noise and the f-Net is untrained: the cost of a
step depends on neither.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time

import torch

from companion.models.ano_unet import bytes_per_image, optimise_batched, optimise_one_by_one
from companion.models.fnet import FeatureNet
from companion.training import resolve_device


def measure(setting: str, args) -> dict:
    """Run one setting (``"one-by-one"`` or a chunk size) in this process; return its figures."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.rand(args.num_images, 1, 28, 28, generator=generator)
    torch.manual_seed(args.seed)
    fnet = FeatureNet()
    with torch.no_grad():
        centre = fnet.features(images).mean(dim=0)

    def run(x, steps):
        if setting == "one-by-one":
            return optimise_one_by_one(x, fnet, centre, num_steps=steps, device=device,
                                       progress=False)
        return optimise_batched(x, fnet, centre, num_steps=steps, batch_size=int(setting),
                                device=device, progress=False)

    run(images[:1], 1)  # warm-up: first-call set-up is not throughput
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        memory_before = torch.cuda.memory_allocated(device)
    else:
        memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    start = time.perf_counter()
    fit = run(images, args.steps)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - memory_before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - memory_before
    return {"setting": setting, "chunk": fit.chunk_size, "seconds": seconds,
            "images_per_s": args.num_images / seconds, "peak_bytes": peak,
            "estimate_bytes": fit.chunk_size * bytes_per_image(fnet, (1, 28, 28)),
            "device": str(device), "threads": torch.get_num_threads()}


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
    # Forked, not spawned: the children skip re-importing torch. This process runs no torch
    # operation and does not touch CUDA, so each child starts clean.
    context = multiprocessing.get_context("fork")
    rows = []
    for setting in ["one-by-one", *map(str, args.batch_sizes)]:
        with context.Pool(1) as pool:
            rows.append(pool.apply(measure, (setting, args)))
        print(f"measured {setting}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    base = rows[0]["images_per_s"]
    print(f"\n{args.num_images} images, {args.steps} steps each, device {rows[0]['device']}, "
          f"{rows[0]['threads']} torch threads\n")
    print("| setting | U-Nets at once | images/s | × one-by-one | peak memory (MiB) | estimate (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        name = "one-by-one" if row["setting"] == "one-by-one" else "batched"
        print(f"| {name} | {row['chunk']} | {row['images_per_s']:.2f} | "
              f"{row['images_per_s'] / base:.1f} | {row['peak_bytes'] / 2**20:.0f} | "
              f"{row['estimate_bytes'] / 2**20:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
