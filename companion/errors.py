"""Errors for bad chapter parameters that read as one clear line.

Defined in chapter 01. A deep traceback tells a reader where the code broke, not what they
typed wrong; these errors name the bad value and the fix instead.
"""


class CompanionError(Exception):
    """Base class: in a notebook it prints one line instead of a traceback.

    IPython asks an exception for ``_render_traceback_`` before formatting it, so a bad
    parameter shows ``ConfigError: NORMAL_CLASSES contains 10 ...`` and nothing else, while the
    cell still fails (papermill and nbval see the error).
    """

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


class ConfigError(CompanionError, ValueError):
    """A chapter parameter has a value that cannot work (wrong class, unknown name, ...)."""


class DatasetNotFoundError(CompanionError, FileNotFoundError):
    """No source held the dataset: says where it looked and how to get it."""


class DataError(CompanionError, ValueError):
    """A data file or folder is damaged or laid out wrongly: names the path and the fix."""


class DeviceError(CompanionError, RuntimeError):
    """The requested device (``cuda``, ``mps``) is not available on this machine."""


class CheckpointError(CompanionError, ValueError):
    """A checkpoint file is missing, damaged, unsafe to load, or not this library's format."""
