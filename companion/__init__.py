"""Companion code of the book *Anomaly detection with autoencoders*.

Each function's docstring names the chapter that explains it. Layout, lowest first: ``data``,
``engine``, ``metrics``, ``scores``, ``plots`` and ``widgets`` depend on nothing above them;
``models`` hold the networks and their losses; ``detectors`` train and score them through one
interface; ``benchmark`` runs detectors over a grid.
"""

import inspect

from . import detectors, metrics, models, plots, scores
from .data import ClassSubset, OneClassSplit, dataset_info, image_transform, load_dataset, one_class_split
from .engine import (History, in_memory, kept_epoch, load_checkpoint, make_loader, resolve_device,
                     save_checkpoint, set_seed, train_epochs)
from .errors import CheckpointError, CompanionError, ConfigError, DatasetNotFoundError, DeviceError
from .files import read_results, write_results
from .parameters import check_parameters


def show_source(obj):
    """Show the source of a companion function or class in a notebook, highlighted."""
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")


def glue(name: str, text: str):
    """Name a figure a cell computed, for the chapter's text (chapter 10).

    The book's build writes it where the Markdown says ``{glue:text}`name` ``, so the prose
    quotes the outputs and cannot drift from them. Without myst-nb (Colab, plain Jupyter) this
    does nothing: the cells print the same figures.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, text, display=False)


__all__ = [
    "CheckpointError", "ClassSubset", "CompanionError", "ConfigError", "DatasetNotFoundError", "DeviceError",
    "History", "OneClassSplit", "check_parameters", "dataset_info", "detectors", "glue", "image_transform", "in_memory",
    "kept_epoch", "load_checkpoint", "load_dataset", "make_loader", "metrics", "models", "one_class_split",
    "plots", "read_results", "resolve_device", "save_checkpoint", "scores", "set_seed",
    "show_source", "train_epochs", "write_results",
]
