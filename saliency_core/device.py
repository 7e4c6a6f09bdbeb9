"""Which device to compute on: CUDA, else MPS, else CPU; overridable."""

from __future__ import annotations

import os

import torch

from .errors import InvalidParameter

ENV_VAR = "SALIENCY_DEVICE"


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to use: the argument, else $SALIENCY_DEVICE, else the best available one."""
    choice = requested if requested is not None else os.environ.get(ENV_VAR) or None
    if choice is not None and str(choice) != "auto":
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidParameter(f"Device {device} was requested but CUDA is not available here.")
        if device.type == "mps" and not _mps_available():
            raise InvalidParameter("Device mps was requested but Apple MPS is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """Every device this process can compute on, by name: "cpu", then "cuda:0", "cuda:1"…, then "mps"."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        found.append("mps")
    return found


def device_name(device: torch.device) -> str:
    """The name `available_devices` lists for a device ("cuda" is the current CUDA device, "cuda:0")."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index}"
    return device.type


def check_device(name: str | torch.device) -> torch.device:
    """The device named, or InvalidParameter saying which ones this machine has."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidParameter(
            f"'{name}' is not a device name; this machine has {', '.join(available_devices())}."
        ) from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    have = available_devices()
    if str(device) not in have:
        raise InvalidParameter(f"Device {device} is not available here; this machine has {', '.join(have)}.")
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def describe(device: torch.device) -> str:
    """A human-readable name of the device, e.g. 'cuda:0 (NVIDIA H100)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


CACHE_ENV_VAR = "SALIENCY_CACHE_MB"


def default_cache_bytes(device: torch.device) -> int:
    """Cache budget: $SALIENCY_CACHE_MB if set, else sized for the device (1/8 of GPU memory, at most 4 GiB)."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        try:
            return max(0, int(float(override) * (1 << 20)))
        except ValueError:
            raise InvalidParameter(
                f"{CACHE_ENV_VAR} must be a number of megabytes, got {override!r}."
            ) from None
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device.index or 0).total_memory
        return int(min(4 << 30, total // 8))
    return 1 << 30


# torch.OutOfMemoryError exists from torch 2.5; torch.cuda.OutOfMemoryError is the same class there.
OUT_OF_MEMORY: tuple[type[BaseException], ...] = (
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
    MemoryError,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception means an allocation failed (CUDA, MPS or the CPU allocator)."""
    if isinstance(exc, OUT_OF_MEMORY):
        return True
    # The CPU and MPS allocators raise a plain RuntimeError; its message is the only sign.
    text = str(exc) if isinstance(exc, RuntimeError) else ""
    return "can't allocate memory" in text or "MPS backend out of memory" in text


def has_cpu_fallback(device: torch.device) -> bool:
    """Whether work that ran out of memory on `device` can be rerun on the CPU (an accelerator's)."""
    return device.type != "cpu"


def free_memory(device: torch.device) -> None:
    """Hand cached blocks back to the driver after an out-of-memory error, so the next request has them."""
    if device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    elif device.type == "mps" and _mps_available():
        torch.mps.empty_cache()
