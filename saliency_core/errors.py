"""Errors with messages meant for the person using the tool, not for a stack trace."""

from __future__ import annotations


class SaliencyError(Exception):
    """Base class: every error the library raises on purpose, with a user-facing message."""


class InvalidImage(SaliencyError, ValueError):
    """The bytes or file could not be read as an image."""


class InvalidParameter(SaliencyError, ValueError):
    """A method parameter, layer or target that does not fit the model or method."""


class UnknownModel(SaliencyError, KeyError):
    """No model with that id is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownMethod(SaliencyError, KeyError):
    """No attribution method with that id exists."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WeightsUnavailable(SaliencyError, FileNotFoundError):
    """Pretrained weights are not on disk and could not be downloaded."""

    def __init__(self, message: str, *, file_name: str = "", folder: str = "") -> None:
        super().__init__(message)
        self.file_name = file_name
        self.folder = folder

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidWeights(SaliencyError, ValueError):
    """A weights file that cannot be read safely or does not match the architecture."""


class Cancelled(SaliencyError):
    """The computation was cancelled through its cancel callback."""


class TargetNotFound(InvalidParameter):
    """The target's object (a box, a person, a predicted region) is not in the model's output for this image."""


class ResourceLimit(InvalidParameter):
    """A request over one of the server's resource limits (`saliency_core.limits`), refused before work starts."""

    def __init__(self, message: str, *, limit: str = "") -> None:
        super().__init__(message)
        self.limit = limit
