"""Devices, seeding, the one training loop, and checkpoints.

Defined in chapter 02 (dense autoencoder); every later model trains with :func:`train`.
"""

from __future__ import annotations

import random
import re
import time

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset
from tqdm.auto import tqdm

from .errors import ConfigError, DeviceError
from .files import atomic_path


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; chapter 02.

    Asking for a device this machine lacks is an error, never a silent fallback.
    """
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
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"SEED={seed!r}; use an integer such as 0")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def in_memory(dataset) -> TensorDataset:
    """Run the transform once over ``dataset`` and keep the tensors; chapter 02.

    The datasets of this book fit in memory many times over, and on a CPU the per-item
    transform of a torchvision dataset would cost more than the training step itself.
    """
    if isinstance(dataset, TensorDataset):
        return dataset
    columns = zip(*(dataset[i] for i in range(len(dataset))))
    return TensorDataset(*(torch.stack(column) if torch.is_tensor(column[0])
                           else torch.tensor(column) for column in columns))


def make_loader(dataset, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """Batches from :func:`in_memory` tensors, shuffled by ``seed`` alone; chapter 02.

    Each batch is one indexing operation on the stored tensors rather than ``batch_size``
    separate item look-ups.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"BATCH_SIZE={batch_size!r}; use a positive integer such as 16")
    data = in_memory(dataset)
    order = (RandomSampler(data, generator=torch.Generator().manual_seed(seed)) if shuffle
             else SequentialSampler(data))
    return DataLoader(data, sampler=BatchSampler(order, batch_size, drop_last=False),
                      batch_size=None)


def train(net, loader, num_epochs: int, lr: float = 1e-3, device="cpu",
          progress: bool = True) -> dict:
    """Train an autoencoder ``net`` on the images of ``loader`` with ``net.loss``; chapter 02.

    Adam, one optimiser step per batch. Returns ``{"loss": [mean loss per epoch], "seconds": s}``.
    """
    if isinstance(num_epochs, bool) or not isinstance(num_epochs, int) or num_epochs < 1:
        raise ConfigError(f"EPOCHS={num_epochs!r}; use a positive integer such as 10")
    device = torch.device(device)
    net.to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    history = []
    start = time.perf_counter()
    for _ in tqdm(range(num_epochs), desc="epochs", disable=not progress):
        total, count = 0.0, 0
        for images, *_ in loader:
            images = images.to(device)
            loss = net.loss(images, net(images))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
            count += len(images)
        history.append(total / count)
    net.eval()
    return {"loss": history, "seconds": time.perf_counter() - start}


def save_checkpoint(path, net, **extra) -> None:
    """Save ``net``'s weights and plain ``extra`` values atomically; chapter 02."""
    with atomic_path(path) as tmp:
        torch.save({"model": net.state_dict(), **extra}, tmp)


def load_checkpoint(path, net, device="cpu") -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``net`` (tensors and plain values only).

    Returns the whole checkpoint dictionary, so the ``extra`` values come back too.
    """
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    net.load_state_dict(checkpoint["model"])
    return checkpoint
