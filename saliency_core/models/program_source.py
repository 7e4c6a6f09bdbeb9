"""program:<path>: a TorchScript (.pt) or torch.export (.pt2) classifier, only where the operator allows.

A program is code (TorchScript runs its own serialised code), so it is refused unless the operator turns
programs on: `allow_programs = true` in the config file (see `plugins.config_path`) or the environment
variable SALIENCY_ALLOW_PROGRAMS=1. Never from an upload alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import InvalidParameter, InvalidWeights, UnknownModel
from ..plugins import read_config
from .checkpoints import PROGRAMS_ADVICE, check_size, program_kind
from .layers import grid_reshape, guess_layers, probe_shapes
from .preprocess import Preprocess
from .registry import ModelSpec

ALLOW_ENV = "SALIENCY_ALLOW_PROGRAMS"
PROBE_SIDE = 224


def programs_allowed() -> bool:
    """Whether the operator allows TorchScript / torch.export programs (env var or config file)."""
    if os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return read_config().get("allow_programs") is True


def names() -> list[str]:
    return []  # programs are files, not a catalogue


def load_program(path: Path, kind: str) -> tuple[nn.Module, int]:
    """The program as a module on the CPU (torch.export programs unflattened, so layer hooks work), and
    the input side it takes (an exported program's example input fixes it; else PROBE_SIDE)."""
    try:
        if kind == "TorchScript":
            return torch.jit.load(str(path), map_location="cpu"), PROBE_SIDE
        program = torch.export.load(str(path))
        example = (getattr(program, "example_inputs", None) or ((),))[0]  # saved since torch 2.5
        tensor = example[0] if example and isinstance(example[0], torch.Tensor) else None
        return torch.export.unflatten(program), int(tensor.shape[-1]) if tensor is not None else PROBE_SIDE
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InvalidWeights(f"Could not load {path.name} as a {kind} program ({reason}).") from None


def count_classes(module: nn.Module, side: int) -> int:
    """Outputs of a program's head, from one pass over a blank image."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, side, side))
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InvalidParameter(
            f"The program did not run on a {side}x{side} RGB image [1, 3, H, W] ({reason})."
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise InvalidParameter(f"A program must return class logits [1, classes]; this one returns {shape}.")
    return int(out.shape[1])


def _layers(module: nn.Module, kind: str, side: int) -> list[str]:
    if kind == "TorchScript":  # no hooks on TorchScript: its modules are in the layer tree, unmeasured
        return []
    shapes = probe_shapes(module, (side, side))
    return guess_layers(module, shapes, grid_reshape(None, None, False)(""))


def spec(name: str, num_classes: int | None) -> ModelSpec:
    """A ModelSpec for program:<path>, after checking programs are allowed and the file is one."""
    if not programs_allowed():
        raise UnknownModel(
            f"'program:{name}' names a program, and programs are refused here. {PROGRAMS_ADVICE}"
        )
    path = check_size(Path(name).expanduser(), "program file")
    kind = program_kind(path)
    if kind is None:
        raise InvalidWeights(f"{path.name} is not a TorchScript or torch.export program.")
    module, side = load_program(path, kind)
    classes = count_classes(module.eval(), side)
    if num_classes is not None and num_classes != classes:
        raise InvalidParameter(
            f"The program {path.name} has {classes} outputs, not num_classes={num_classes}."
        )
    return ModelSpec(
        id=f"program:{name}",
        task="classification",
        title=f"{path.name} ({kind})",
        build=lambda _weights: load_program(path, kind)[0],
        layers=tuple(_layers(module, kind, side)),
        # ImageNet normalisation, the resize and crop scaled as torchvision's 256 -> 224.
        preprocess=Preprocess(resize=round(side * 256 / 224), crop=side),
        categories=lambda: (),
        description=f"A {kind} program from {path}; ImageNet preprocessing at {side} px.",
        reshape=grid_reshape(None, None, False),
        extra={"source": "program", "architecture": kind, "num_classes": classes, "program_file": str(path)},
    )
