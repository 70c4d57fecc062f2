"""Peak memory of a block of code, on the CPU or a GPU; chapter 06.

Chapter 06 compares Ano-Unet's one-at-a-time loop with its batched version by speed *and*
memory, in the same run. On a CUDA device PyTorch counts its own allocations exactly. On the
CPU it keeps no such count, so :class:`PeakMemory` samples the process's resident set size
(Linux ``/proc/self/statm``) from a background thread: a sampled peak can miss a spike shorter
than the sampling interval, so it is a lower bound, and it includes everything the process
allocates, not only tensors.
"""

from __future__ import annotations

import os
import threading
import time

import torch

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int | None:
    """This process's resident set size in bytes, or None where /proc is missing (not Linux)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:
        return None


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``, then ``peak.bytes``: growth of peak memory.

    Defined in chapter 06. On CUDA, the growth of ``torch.cuda.max_memory_allocated`` over what
    was allocated before the block; on the CPU, the highest resident set size sampled every
    ``interval_s`` seconds minus the size before the block. ``bytes`` is None where the CPU
    figure cannot be read (no /proc).
    """

    def __init__(self, device="cpu", interval_s: float = 0.002):
        self.device = torch.device(device)
        self.interval_s = interval_s
        self.bytes: int | None = None
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        else:
            self._before = resident_bytes()
            self._peak = self._before
            if self._before is not None:
                self._sampler = threading.Thread(target=self._sample, daemon=True)
                self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, resident_bytes() or 0)
            time.sleep(self.interval_s)

    def __exit__(self, *exc_info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._before
        elif self._before is not None:
            self._stop.set()
            self._sampler.join()
            self._peak = max(self._peak, resident_bytes() or 0)
            self.bytes = self._peak - self._before
