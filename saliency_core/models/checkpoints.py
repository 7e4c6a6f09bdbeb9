"""Checkpoint files as data: bounded reads, wrapper mappings and key prefixes undone, readable mismatches.

Files are read with safetensors or `torch.load(weights_only=True)`; anything that would need pickled code
is refused. Sizes are checked from the file's index before any tensor is read, and every tensor after
(dense, on the CPU, finite): see `archive`. Training checkpoints wrap the state dict (`{"state_dict": ...}`,
EMA copies) and prefix its keys (`module.` from DataParallel, `model.` from Lightning, `_orig_mod.` from
torch.compile); a prefix is stripped only when that makes the keys fit the architecture better.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from ..errors import InvalidWeights
from ..limits import limits
from . import archive

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "state_dict_ema", "model_ema", "ema")
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
# Key fragments only detection models have (torchvision's R-CNN, RetinaNet, FCOS, SSD heads).
DETECTION_MARKERS = ("roi_heads.", "rpn.", "backbone.fpn.", "head.classification_head.", "anchor_generator.")
PROGRAMS_ADVICE = (
    "Programs are code, so they are off by default; the operator can allow them with allow_programs = true "
    "in saliency.toml or SALIENCY_ALLOW_PROGRAMS=1, and then load the file as the model 'program:<path>'."
)
_SHOWN = 5  # keys listed per kind of mismatch
# torch's weights-only refusals of objects (a global, a class, a call), naming it where they do.
_OBJECTS = re.compile(
    r"GLOBAL ([\w.]+)|(?:new object for|Can only build) .* but got (?:<class ')?([\w.]+)"
    r"|unrecognized function (?:<[\w -]+ )?([\w.]+)|must be imported to load"
)


def check_size(path: str | os.PathLike, what: str = "weights file") -> Path:
    """The path, after checking it is a non-empty file within max_weights_bytes (before reading a byte)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidWeights(f"No {what} at {path}.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidWeights(f"The {what} {path.name} is empty (0 bytes).")
    limits().check(
        "max_weights_bytes",
        size,
        f"The {what} {path.name}",
        "Use a smaller file, or ask the operator to raise max_weights_bytes.",
    )
    return path


def program_kind(path: Path) -> str | None:
    """ "TorchScript" or "torch.export" when the file is a saved program (a zip with code), else None."""
    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as opened:
            return _program_in(opened.namelist())
    except (zipfile.BadZipFile, NotImplementedError, OSError, ValueError, EOFError):
        return None  # not a readable archive, so not a program; the weights reader says what it is


def _program_in(names: list[str]) -> str | None:
    if any("/code/" in n for n in names):
        return "TorchScript"
    if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
        return "torch.export"
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors or torch file, unwrapped from training-checkpoint mappings.

    Sizes are checked from the file's index before anything is inflated or read; every tensor returned
    is dense, on the CPU and finite.
    """
    path = check_size(path)
    # One open file for the checks and the read: what was checked is what is read, even if the path
    # is replaced in between (safetensors reads by path; its sizes are checked again once read).
    with path.open("rb") as fh:
        kind = archive.file_format(fh, path.name)
        if kind == "zip":
            program = _program_in(archive.check_zip(fh, path.name))
            if program is not None:
                raise InvalidWeights(
                    f"{path.name} is a {program} program, not a weights file. {PROGRAMS_ADVICE}"
                )
        elif kind == "safetensors":
            archive.check_safetensors(fh, path.name)
        state = _load(path, fh, kind)
    return archive.check_tensors(unwrap(state, path.name), path.name)


def _load(path: Path, fh: BinaryIO, kind: str) -> Any:
    try:
        if kind == "safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        fh.seek(0)
        return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _OBJECTS.search(str(exc))
        if found is not None:
            name = next((g for g in found.groups() if g), "")
            what = f" ({name.strip('<>')})" if name else ""
        elif _pickle_opcode(str(exc)):  # pickle.dump's framing, which torch.save never writes
            what = " (written by pickle, not torch.save)"
        else:  # bytes no pickle has: damage, not code
            raise archive.damaged(path.name, "its pickle is damaged") from None
        raise InvalidWeights(
            f"{path.name} contains Python objects other than tensors{what}. Reading such objects can run "
            f"code, so files that hold them are refused. {archive.RESAVE}"
        ) from None
    except Exception as exc:  # any other parse failure is the same user-facing problem
        raise archive.damaged(path.name, _reason(exc)) from None


def _pickle_opcode(message: str) -> bool:
    """Whether torch's "Unsupported operand N" names a real pickle opcode (not a damaged byte)."""
    found = re.search(r"Unsupported operand (\d+)", message)
    return found is not None and chr(int(found.group(1))) in {op.code for op in pickletools.opcodes}


def _reason(exc: Exception) -> str:
    """The first line of a parse error, without torch's advice to load the file unsafely."""
    line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    if "weights_only" in line or not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}"


def unwrap(state: Any, name: str) -> dict[str, torch.Tensor]:
    """The parameter mapping inside a checkpoint: wrappers ("state_dict", "model", EMA copies) undone."""
    for _ in range(3):  # e.g. {"model": {"module": {...}}}
        if not isinstance(state, Mapping):
            break
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None or _has_tensors(state):
            break
        state = inner
    if not isinstance(state, Mapping):
        raise InvalidWeights(
            f"{name} does not hold a state dict (a mapping from parameter names to tensors), "
            f"but a {type(state).__name__}."
        )
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(state)[:8])) or "none"
        raise InvalidWeights(f"{name} holds no tensors (its top-level keys: {keys}), so it has no weights.")
    return tensors


def _has_tensors(state: Mapping) -> bool:
    return any(isinstance(v, torch.Tensor) for v in state.values())


def _score(keys: Iterable[str], expected: Mapping[str, Any]) -> int:
    return sum(k in expected for k in keys)


def fit_prefixes(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The state with wrapper prefixes (module., model., _orig_mod.) stripped where that fits better.

    Wrappers nest ("module._orig_mod.layer1..."), so every order of up to three strips is tried; the
    fewest strips that fit best win, and nothing is stripped unless it fits better than the file as is.
    """
    best, best_score = dict(state), _score(state, expected)
    frontier = [best]
    for _ in range(3):
        following = []
        for keys in frontier:
            for prefix in WRAPPER_PREFIXES:
                if not any(k.startswith(prefix) for k in keys):
                    continue
                stripped = {k.removeprefix(prefix): v for k, v in keys.items()}
                if len(stripped) < len(keys):  # two keys would collide: not a wrapper prefix
                    continue
                following.append(stripped)
                if _score(stripped, expected) > best_score:
                    best, best_score = stripped, _score(stripped, expected)
        frontier = following
    return best


def head_size(state: Mapping[str, torch.Tensor], classifier: str | None) -> int | None:
    """Classes of the head in a file (the first dim of `<classifier>.weight`, any wrapper prefix)."""
    if not classifier:
        return None
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES) and key != f"{classifier}.weight":
            key = key.split(".", 1)[1]
        if key == f"{classifier}.weight" and value.ndim >= 1:
            return int(value.shape[0])
    return None


def check_fit(
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    source: str,
    task: str | None = None,
    hint: str = "",
) -> None:
    """Raise InvalidWeights naming missing, unexpected and mis-shaped entries, with a guess at why."""
    # Batch-norm step counters are bookkeeping, absent from frozen-BN checkpoints; not worth refusing for.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    # A parameter loaded from integers or bools (or a counter from floats) is cast silently: refuse it.
    retyped = [
        f"{k} (file {_dtype(state[k])}, model {archive.dtype_kind(expected[k].dtype)})"
        for k in expected
        if k in state and archive.dtype_kind(state[k].dtype) != archive.dtype_kind(expected[k].dtype)
    ]
    if not (missing or unexpected or mismatched or retyped):
        return
    detection = [k for k in state if any(m in k for m in DETECTION_MARKERS)]
    if task == "classification" and detection:
        raise InvalidWeights(
            f"{source} looks like a detection model's checkpoint (keys such as '{detection[0]}'), but this "
            "model is a classifier: load it with the detection architecture it was trained as "
            "(e.g. torchvision:fasterrcnn_resnet50_fpn)."
        )
    parts = [f"{source} does not fit this architecture."]
    kinds = (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched))
    for title, items in (*kinds, ("with the wrong kind of dtype", retyped)):
        if items:
            more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            parts.append(f"{len(items)} {title}: {', '.join(items[:_SHOWN])}{more}.")
    guess = _prefix_guess(state, expected, unexpected, missing)
    parts += [p for p in (guess, hint) if p]
    raise InvalidWeights(" ".join(parts))


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _prefix_guess(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, Any], unexpected: list[str], missing: list[str]
) -> str:
    """A sentence when the keys would fit with a leading segment removed (or added), else ""."""
    if unexpected:
        prefix, count = _common_head(unexpected)
        if prefix and count >= len(unexpected) / 2:
            fits = _score((k.removeprefix(prefix) for k in state), expected)
            if fits > _score(state, expected):
                return (
                    f"The file's keys start with '{prefix}' ({count} of {len(state)}): it seems to hold a "
                    f"larger model whose '{prefix}' part has this architecture ({fits} of {len(expected)} "
                    f"entries fit once the prefix is removed). Save that part's state dict instead."
                )
    prefix, _count = _common_head(missing)
    if prefix:
        fits = _score((prefix + k for k in state), expected)
        if fits > _score(state, expected):
            return (
                f"The architecture's keys start with '{prefix}' where the file's do not: {fits} of "
                f"{len(expected)} entries fit with it added, so the file may hold only that part of the model."
            )
    return ""


def _common_head(keys: Iterable[str]) -> tuple[str, int]:
    """The most common first key segment ("backbone.") and how many keys have it."""
    heads = Counter(k.split(".", 1)[0] + "." for k in keys if "." in k)
    return heads.most_common(1)[0] if heads else ("", 0)


def load_checked(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    task: str | None = None,
    hint: str = "",
) -> nn.Module:
    """Load a state dict into a module after fitting prefixes and checking every key and shape."""
    expected = module.state_dict()
    fitted = fit_prefixes(state, expected)
    check_fit(expected, fitted, source, task, hint)
    module.load_state_dict(fitted, strict=False)
    return module
