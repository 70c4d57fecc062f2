"""Peak memory of a block of code, on the CPU or a GPU; chapter 07.

Chapter 07 compares Ano-Unet's one-at-a-time loop with its batched version by speed *and*
memory, in the same run. On a CUDA device PyTorch counts its own allocations exactly. On the
CPU it keeps no such count, so :class:`PeakMemory` uses the kernel's high-water mark of the
process's resident memory: on Linux it resets the mark before the block (``/proc/self/clear_refs``)
and reads it after (``VmHWM``); elsewhere it reads ``ru_maxrss``, which only moves when the
process needs more memory than ever before. Memory that the process freed earlier but kept is
reused without showing up either way, so a block is measured fairly in a fresh process:
:func:`in_fresh_process`.
"""

from __future__ import annotations

import multiprocessing
import sys

import torch

try:
    import resource
except ImportError:  # not on Windows
    resource = None

# ru_maxrss is in kibibytes on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux) in bytes, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_high_water_mark() -> bool:
    """Set the resident high-water mark to the current size (Linux 4.0+); False where refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes() -> int | None:
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


class PeakMemory:
    """``with PeakMemory(device) as peak: ...``, then ``peak.bytes``: growth of peak memory.

    Defined in chapter 07. On CUDA, the growth of ``torch.cuda.max_memory_allocated`` over what
    was allocated before the block: the block's own peak. On the CPU, the highest resident set
    size during the block minus the size before it; this counts everything the process
    allocates, not only tensors. ``bytes`` is None where the CPU figure cannot be read (Windows).
    """

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.bytes: int | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
        elif _reset_high_water_mark():
            self._peak = lambda: _status_bytes("VmHWM")
            self._before = _status_bytes("VmRSS")
        else:
            self._peak = _max_rss_bytes
            self._before = _max_rss_bytes()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = torch.cuda.max_memory_allocated(self.device) - self._before
        elif self._before is not None:
            self.bytes = max(0, self._peak() - self._before)


def _measure(function, args, kwargs, warm_up_args, num_threads):
    torch.set_num_threads(num_threads)
    if warm_up_args is not None:
        function(*warm_up_args, **kwargs)
    with PeakMemory(kwargs.get("device", "cpu")) as peak:
        result = function(*args, **kwargs)
    return result, peak.bytes


def in_fresh_process(function, *args, warm_up_args=None, **kwargs):
    """``function(*args, **kwargs)`` in a new Python process: ``(result, peak memory bytes)``.

    Defined in chapter 07. The process is spawned, so it shares no memory (and no CUDA state)
    with this one, and uses as many CPU threads as this one. ``function`` must be importable
    (a companion function, not one defined in a notebook); arguments and result travel by
    pickle. With ``warm_up_args`` the function first runs once on those (with the same
    ``kwargs``), so one-time set-up is outside the measurement. Peak memory is measured with
    :class:`PeakMemory` on ``kwargs["device"]`` (default CPU).
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measure, (function, args, kwargs, warm_up_args, torch.get_num_threads()))
