"""Companion code of the book *Anomaly detection with autoencoders*.

Each function's docstring names the chapter that explains it.
"""

import inspect

from . import models, plots, scores
from .data import ClassSubset, OneClassSplit, dataset_info, image_transform, load_dataset, one_class_split
from .errors import CompanionError, ConfigError, DatasetNotFoundError, DeviceError
from .files import read_results, write_results
from .training import in_memory, load_checkpoint, make_loader, resolve_device, save_checkpoint, set_seed, train


def show_source(obj):
    """Show the source of a companion function or class in a notebook, highlighted."""
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")


__all__ = [
    "ClassSubset", "CompanionError", "in_memory", "ConfigError", "DatasetNotFoundError", "DeviceError",
    "OneClassSplit", "dataset_info", "image_transform", "load_checkpoint", "load_dataset",
    "make_loader", "one_class_split", "read_results", "resolve_device", "save_checkpoint",
    "set_seed", "show_source", "train", "write_results",
]
