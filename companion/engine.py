"""Devices, seeding, loaders, the one training loop, and checkpoints.

Defined in chapter 02 (dense autoencoder). Every detector of the book trains with
:func:`train_epochs`: it owns the epochs, the batches, the progress bar, the per-epoch log and
the label-free choice of the epoch to keep; a detector brings only its ``step`` (one update on
one batch of normal images) and, optionally, its validation loss on held-out normal images.
"""

from __future__ import annotations

import copy
import pickle
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
from tqdm.auto import tqdm

from .errors import CheckpointError, ConfigError, DeviceError
from .files import atomic_path
from .settings import integer, positive_int


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; chapter 02.

    Asking for a device this machine lacks is an error, never a silent fallback.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"DEVICE={device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise DeviceError(f"DEVICE={device!r} but this machine has no CUDA GPU that PyTorch "
                              "can use; set DEVICE='auto' or 'cpu'")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"DEVICE={device!r} but Apple's MPS is not available here; "
                              "set DEVICE='auto' or 'cpu'")
        return torch.device("mps")
    raise ConfigError(f"DEVICE={device!r}; use 'auto', 'cpu', 'cuda' or 'mps'")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch, so a chapter re-runs to the same numbers; chapter 02."""
    integer(seed, "SEED")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def in_memory(dataset) -> TensorDataset:
    """The dataset's items as stored tensors, the transform run once; chapter 02.

    The datasets of this book fit in memory many times over, and on a CPU the per-item
    transform of a torchvision dataset would cost more than the training step itself. A
    :class:`~companion.data.ClassSubset` keeps its tensors, so a second call costs nothing.
    """
    if isinstance(dataset, TensorDataset):
        return dataset
    if hasattr(dataset, "tensors"):
        return TensorDataset(*dataset.tensors())
    columns = zip(*(dataset[i] for i in range(len(dataset))))
    return TensorDataset(*(torch.stack(column) if torch.is_tensor(column[0])
                           else torch.tensor(column) for column in columns))


def make_loader(dataset, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches from :func:`in_memory` tensors, shuffled by ``seed`` alone; chapter 02.

    Each batch is one indexing operation on the stored tensors rather than ``batch_size``
    separate item look-ups. The shuffling generator belongs to the loader, so two loaders
    made with the same seed give the same batch order whatever else has drawn random numbers.
    """
    positive_int(batch_size, "BATCH_SIZE", 16)
    data = in_memory(dataset)
    order = (RandomSampler(data, generator=torch.Generator().manual_seed(seed)) if shuffle
             else SequentialSampler(data))
    return DataLoader(data, sampler=BatchSampler(order, batch_size, drop_last=False),
                      batch_size=None)


@dataclass
class History:
    """What training logged: one list per logged name, one value per epoch; chapter 02.

    ``log["loss"]`` holds the training loss of each epoch, ``log["val_loss"]`` the loss on
    held-out normal images where there were some. ``chosen_epoch`` is the epoch whose weights
    the detector kept (the lowest ``val_loss``, the epoch a ``stop_below`` rule stopped at, or the
    last epoch without validation images). ``restarts`` counts the times training began again
    from new initial weights because the network had died (chapter 09).
    """

    log: dict[str, list] = field(default_factory=dict)
    chosen_epoch: int = 0
    seconds: float = 0.0
    restarts: int = 0

    def __getitem__(self, name: str) -> list:
        return self.log[name]

    def as_dict(self) -> dict:
        return {"log": self.log, "chosen_epoch": self.chosen_epoch, "seconds": self.seconds,
                "restarts": self.restarts}


def train_epochs(step: Callable[..., dict], loader, num_epochs: int, modules: dict[str, nn.Module],
                 device, validate: Callable[[], float] | None = None,
                 after_epoch: Callable[[int], dict] | None = None, progress: bool = True,
                 desc: str = "epochs", stop_below: float | None = None) -> History:
    """The book's one training loop; chapter 02.

    ``step(*batch)`` makes one update on a batch (moved to ``device``) and returns named losses;
    their means over each epoch go into the log. ``modules`` are put in training mode for the
    steps and in evaluation mode after each epoch. With ``validate`` (the loss on held-out
    *normal* images, lower is better) the weights of the best epoch are kept: a stopping rule
    that needs no anomaly labels. With ``stop_below`` as well, training ends after the first
    epoch whose ``val_loss`` is below it, and that epoch is kept (ALOCC's rule, chapter 06).
    ``after_epoch(epoch)`` may log more figures (test metrics for a plot, say); it never chooses
    anything.
    """
    positive_int(num_epochs, "EPOCHS", 10)
    device = torch.device(device)
    for name, module in modules.items():
        for parameter in module.parameters():
            if parameter.device.type != device.type:
                raise DeviceError(f"{name} has weights on {parameter.device}, but the batches "
                                  f"go to {device}; move it with .to(device) first")
    history, best, best_state, stopped = History(), float("inf"), None, False
    start = time.perf_counter()
    for epoch in tqdm(range(1, num_epochs + 1), desc=desc, disable=not progress):
        for module in modules.values():
            module.train()
        sums: dict[str, float] = {}
        count = 0
        for batch in loader:
            batch = [tensor.to(device) for tensor in batch]
            for name, value in step(*batch).items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(batch[0])
            count += len(batch[0])
        for module in modules.values():
            module.eval()
        logged = {"epoch": epoch, **{name: total / count for name, total in sums.items()}}
        if validate is not None:
            logged["val_loss"] = validate()
            if logged["val_loss"] < best:
                best, history.chosen_epoch = logged["val_loss"], epoch
                best_state = {name: copy.deepcopy(module.state_dict())
                              for name, module in modules.items()}
        if after_epoch is not None:
            logged.update(after_epoch(epoch))
        for name, value in logged.items():
            history.log.setdefault(name, []).append(value)
        if stop_below is not None and validate is not None and logged["val_loss"] < stop_below:
            history.chosen_epoch, stopped = epoch, True  # the modules hold this epoch's weights
            break
    if not stopped and best_state is None:
        history.chosen_epoch = num_epochs
    elif not stopped:
        for name, module in modules.items():
            module.load_state_dict(best_state[name])
    history.seconds = time.perf_counter() - start
    return history


def kept_epoch(val_losses, stop_below: float | None = None) -> int:
    """The epoch :func:`train_epochs` keeps for these held-out losses (1-based); chapter 06.

    The first epoch under ``stop_below``, else the lowest. For reading a log that ran every
    epoch (``benchmarks/alocc_dynamics.py``) as if the rule had stopped it.
    """
    losses = list(val_losses)
    if not losses:
        raise ConfigError("no held-out losses: the rule needs validation images")
    under = [epoch for epoch, loss in enumerate(losses, 1) if stop_below is not None and loss < stop_below]
    return under[0] if under else int(np.argmin(losses)) + 1


def save_checkpoint(path, state: dict) -> None:
    """Save a detector's state (tensors, state dicts, plain values) atomically; chapter 02."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, device="cpu") -> dict:
    """Load what :func:`save_checkpoint` saved: tensors and plain values only (``weights_only``).

    A file that is missing, truncated, or holds objects whose unpickling would run code is
    refused with a :class:`~companion.errors.CheckpointError` naming the path; nothing in it runs.
    """
    if not Path(path).is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}; save one with detector.save(path)")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names the refused object on a line of its own ("unsupported GLOBAL posix.system")
        found = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line),
                     "an object weights-only loading does not accept")
        raise CheckpointError(f"{str(path)!r} is not a weights-only checkpoint: it holds objects "
                              f"that loading would have to run code for ({found}); it was not "
                              "loaded. Only load checkpoints this library saved") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint ({type(error).__name__}: "
                              f"{str(error)[:120]}); it may be truncated: save it again") from None
