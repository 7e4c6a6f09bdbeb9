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

from ..errors import InvalidWeights, WeightsUnavailable

OFFLINE_ENV = "SALIENCY_OFFLINE"
_PATCH_LOCK = threading.Lock()


def hub_checkpoints_dir() -> Path:
    """torchvision's weights cache: $TORCH_HOME/hub/checkpoints (read at call time)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_file_for(url: str) -> Path:
    """Where torchvision keeps (or would keep) the file for a weights URL."""
    return hub_checkpoints_dir() / os.path.basename(url.split("?")[0])


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a tensors-only torch file, without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise InvalidWeights(f"No weights file at {path}.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any parse failure is the same user-facing problem
        raise InvalidWeights(
            f"Could not read {path.name} as weights: it must be a .safetensors file or a PyTorch state dict "
            f"saved with torch.save (loaded with weights_only=True, so pickled code is refused). ({exc})"
        ) from exc
    return _unwrap_state_dict(state, path.name)


def _unwrap_state_dict(state: Any, name: str) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model_state_dict", "model", "params"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidWeights(
            f"{name} does not hold a state dict (a mapping from parameter names to tensors)."
        )
    out = dict(state)
    if out and all(k.startswith("module.") for k in out):  # saved from DataParallel
        out = {k[len("module.") :]: v for k, v in out.items()}
    return out


def check_compatible(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise InvalidWeights naming missing, unexpected and mis-shaped entries."""
    expected = module.state_dict()
    # Batch-norm step counters are bookkeeping, absent from frozen-BN checkpoints; not worth refusing for.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = [f"{source} does not fit this architecture."]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if items:
            more = f" and {len(items) - 5} more" if len(items) > 5 else ""
            parts.append(f"{len(items)} {title}: {', '.join(items[:5])}{more}.")
    raise InvalidWeights(" ".join(parts))


def load_into(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Load a checked state dict into a module (strict)."""
    check_compatible(module, state, source)
    module.load_state_dict(state, strict=False)
    return module


def ensure_cached(url: str) -> Path:
    """The cached file for a torchvision weights URL, downloading it when missing and allowed."""
    target = cached_file_for(url)
    if target.is_file():
        return target
    hint = (
        f"Pretrained weights are not available: the file '{target.name}' is not in {target.parent} and could not "
        f"be downloaded. Download {url} on a machine with internet access and put it in that folder "
        f"(or set TORCH_HOME to a folder whose hub/checkpoints holds it)."
    )
    if os.environ.get(OFFLINE_ENV):
        raise WeightsUnavailable(hint, file_name=target.name, folder=str(target.parent))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stem = target.name.rsplit(".", 1)[0]
        prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
        torch.hub.download_url_to_file(url, str(target), hash_prefix=prefix, progress=False)
    except Exception as exc:  # no network, proxy, disk: the user needs the same advice
        raise WeightsUnavailable(
            f"{hint} ({type(exc).__name__}: {exc})", file_name=target.name, folder=str(target.parent)
        ) from exc
    return target


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
