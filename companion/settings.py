"""Checks for settings and parameters: one line that names the bad value and an example.

Defined in chapter 02. Every detector setting and chapter parameter goes through these, so a
reader who types ``EPOCHS=0`` or ``lr="fast"`` reads what is wrong and what would work, never a
traceback from deep inside PyTorch.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable

from .errors import ConfigError


def positive_int(value, name: str, example: int = 10) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r}; use a positive integer such as {example}")
    return value


def optional_positive_int(value, name: str, example: int = 10) -> int | None:
    return None if value is None else positive_int(value, name, example)


def integer(value, name: str, example: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={value!r}; use an integer such as {example}")
    return value


def non_negative_int(value, name: str, example: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name}={value!r}; use an integer >= 0 such as {example}")
    return value


def positive_number(value, name: str, example: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigError(f"{name}={value!r}; use a positive number such as {example:g}")
    return float(value)


def optional_positive_number(value, name: str, example: float = 1.0) -> float | None:
    return None if value is None else positive_number(value, name, example)


def non_negative_number(value, name: str, example: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ConfigError(f"{name}={value!r}; use a number >= 0 such as {example:g}")
    return float(value)


def fraction(value, name: str, example: float = 0.2) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{name}={value!r}; use a number between 0 and 1 such as {example:g}")
    return float(value)


def flag(value, name: str, example: bool = True) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}; use True or False")
    return value


def one_of(choices) -> Callable:
    """A check that accepts only the values in ``choices``."""
    def check(value, name: str, example=None):
        if value not in choices:
            raise ConfigError(f"{name}={value!r}; use one of {list(choices)}")
        return value
    return check


@dataclass(frozen=True)
class Setting:
    """One keyword setting of a detector: its default, its check, and an example value."""

    default: Any
    check: Callable
    example: Any = None

    def validate(self, value, name: str):
        return self.check(value, name, self.example if self.example is not None else self.default)


def validate(settings: dict, spec: dict[str, Setting], owner: str) -> dict:
    """Defaults filled in, every value checked, unknown names refused with the closest known one."""
    unknown = [name for name in settings if name not in spec]
    if unknown:
        close = difflib.get_close_matches(unknown[0], spec, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{owner} has no setting {unknown[0]!r}; its settings are "
                          f"{sorted(spec)}.{hint}")
    return {name: setting.validate(settings.get(name, setting.default), name)
            for name, setting in spec.items()}
