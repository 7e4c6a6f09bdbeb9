"""Finding and loading weights safely: torchvision's cache, bundled files, user files.

Weights are data, never code: files are read with safetensors or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InvalidWeights
from .checkpoints import check_fit, load_checked, read_checkpoint
from .download import CancelFn, ProgressFn, fetch

_PATCH_LOCK = threading.Lock()


def hub_checkpoints_dir() -> Path:
    """torchvision's weights cache: $TORCH_HOME/hub/checkpoints (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file_for(url: str) -> Path:
    """Where torchvision keeps (or would keep) the file for a weights URL."""
    return hub_checkpoints_dir() / os.path.basename(url.split("?")[0])


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a tensors-only torch file, without unpickling code.

    Bounded and unwrapped by `checkpoints.read_checkpoint` (size limit, empty files, training-checkpoint
    wrappers, programs refused); key prefixes are fitted to the architecture when loading.
    """
    return read_checkpoint(path)


def check_compatible(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise InvalidWeights naming missing, unexpected and mis-shaped entries."""
    check_fit(module.state_dict(), state, source)


# Load a checked state dict into a module (strict; wrapper prefixes stripped where they fit better).
load_into = load_checked


def ensure_cached(url: str, progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Path:
    """The cached file for a torchvision weights URL, downloading it when missing and allowed."""
    target = cached_file_for(url)
    if target.is_file():
        return target
    stem = target.name.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None  # torchvision names files <name>-<sha256[:n]>
    return fetch(url, target, hash_prefix=prefix, progress=progress, cancel=cancel)


@contextmanager
def _safe_weight_reads() -> Iterator[None]:
    """Make torchvision builders read their cached weights with weights_only=True.

    The builders keep architecture fix-ups tied to the weights (key renames, frozen batch norm,
    eps overrides); routing only the file read through here keeps those and refuses pickled code.
    """
    from torchvision.models import _api

    original = _api.WeightsEnum.get_state_dict

    def get_state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return read_state_dict(ensure_cached(self.url))

    with _PATCH_LOCK:
        _api.WeightsEnum.get_state_dict = get_state_dict  # type: ignore[method-assign]
        try:
            yield
        finally:
            _api.WeightsEnum.get_state_dict = original  # type: ignore[method-assign]


def build_with_torchvision_weights(builder: Any, weights: Any, **kwargs: Any) -> nn.Module:
    """Call a torchvision builder with a weights enum, reading the file through the safe path."""
    ensure_cached(weights.url)
    with _safe_weight_reads():
        try:
            return builder(weights=weights, **kwargs)
        except RuntimeError as exc:
            raise InvalidWeights(
                f"The cached file {cached_file_for(weights.url)} does not fit {weights}: {exc}"
            ) from exc
