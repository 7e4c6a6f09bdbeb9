"""Weights files checked from their index before any tensor is read, and their tensors checked after.

A zip archive (torch.save) is judged by its central directory: the sum of its records' sizes is bounded
and compressed tensor records are refused, since torch.save stores them uncompressed and a deflated
record is how a small file inflates to gigabytes. torch then checks each storage the pickle names
against its record before allocating it, so reading is bounded by the checked index (measured: a
2 GiB claim over a 16-byte record is refused with no allocation). A .safetensors file is judged by its
JSON header (length bounded, offsets inside the file, dtypes known). A legacy (pre-zip) torch file
cannot be compressed: it is bounded by the file-size check. Every tensor read must be dense, on the
CPU, and finite.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterable, Mapping
from typing import BinaryIO

import torch

from ..errors import InvalidWeights
from ..limits import limits

MAX_HEADER_BYTES = 100 * 1024**2  # a safetensors JSON header; real ones are kilobytes
MAX_RATIO = 100  # inflated / compressed size of a metadata record; tensor data barely compresses
SAFETENSORS_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
RESAVE = (
    "Re-save it as a plain state dict: torch.save(model.state_dict(), path), or "
    "safetensors.torch.save_file(model.state_dict(), path)."
)
_SHOWN = 5  # offending keys named per message
_CHUNK = 1 << 22  # float8 elements widened at a time for the finiteness check


def damaged(name: str, reason: str) -> InvalidWeights:
    """The message for a file that is not a readable weights file."""
    return InvalidWeights(
        f"Could not read {name} as weights: it must be a .safetensors file or a PyTorch state dict saved "
        f"with torch.save, and it is damaged or of another kind ({reason})."
    )


def file_format(fh: BinaryIO, name: str) -> str:
    """ "zip", "legacy" or "safetensors", from the file's first bytes (its name may say otherwise)."""
    fh.seek(0)
    head = fh.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x80"):  # the PROTO opcode every pickle since protocol 2 starts with
        return "legacy"
    if len(head) == 9 and head[8:9] == b"{":  # 8-byte header length, then the JSON header
        return "safetensors"
    raise damaged(name, "neither a zip archive, a pickle nor a safetensors header")


def check_zip(fh: BinaryIO, name: str) -> list[str]:
    """The record names of a torch.save archive, after checking its index; nothing is inflated."""
    size = os.fstat(fh.fileno()).st_size
    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as archive:
            infos = archive.infolist()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        OSError,
        ValueError,
        EOFError,
    ) as exc:
        raise damaged(name, f"its zip index is unreadable: {exc}") from None
    limits().check(
        "max_weights_bytes",
        sum(i.file_size for i in infos),
        f"{name} once unpacked",
        "Use a smaller checkpoint, or ask the operator to raise max_weights_bytes.",
    )
    for info in infos:
        if info.flag_bits & 0x1:
            raise damaged(name, f"its record {info.filename} is encrypted")
        if info.header_offset + info.compress_size > size:
            raise damaged(name, f"its record {info.filename} runs past the end of the file")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise damaged(name, f"its record {info.filename} has two sizes")
            continue
        if "/data/" in f"/{info.filename}" or info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise InvalidWeights(
                f"{name} holds a compressed record, {info.filename}, that would inflate from "
                f"{info.compress_size} to {info.file_size} bytes ({ratio:.0f}×). torch.save stores tensor "
                f"data uncompressed, so this archive was repacked or built to exhaust memory; it is refused "
                f"before anything is inflated. {RESAVE}"
            )
    names = [i.filename for i in infos]
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise damaged(name, "a zip archive without the data.pkl record torch.save writes")
    return names


def check_safetensors(fh: BinaryIO, name: str) -> None:
    """Check a .safetensors header (length, JSON, dtypes, shapes, offsets) before loading the file."""
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    length = int.from_bytes(fh.read(8), "little")
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise damaged(name, f"its safetensors header claims {length} bytes")
    raw = fh.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise damaged(name, f"its safetensors header is not JSON: {str(exc)[:120]}") from None
    if not isinstance(header, dict):
        raise damaged(name, "its safetensors header is not a mapping")
    data_size, total = size - 8 - length, 0
    for key, entry in header.items():
        if key == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise damaged(name, "its __metadata__ is not a mapping of strings")
            continue
        total += _entry_bytes(name, key, entry, data_size)
    limits().check("max_weights_bytes", total, f"The total size of the tensors in {name}")


def _entry_bytes(name: str, key: str, entry: object, data_size: int) -> int:
    if not isinstance(entry, dict):
        raise damaged(name, f"its header entry {key!r} is not a mapping")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in SAFETENSORS_SIZES:
        raise InvalidWeights(
            f"{name} stores {key!r} as {str(dtype)[:20]!r}, a dtype this reader does not know "
            f"(known: {', '.join(SAFETENSORS_SIZES)})."
        )
    if not (isinstance(shape, list) and all(_count(d) for d in shape)):
        raise damaged(name, f"the shape of {key!r} is not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_count(o) for o in offsets)):
        raise damaged(name, f"the data offsets of {key!r} are not two positions")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise damaged(name, f"the data of {key!r} lies outside the file")
    if end - begin != math.prod(shape) * SAFETENSORS_SIZES[dtype]:
        raise damaged(name, f"the data of {key!r} does not match its shape {shape} and dtype {dtype}")
    return end - begin


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_tensors(tensors: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Plain CPU tensors, after checking their kind, their total size (views count in full) and values."""
    odd = [(k, kind) for k, t in tensors.items() if (kind := _odd_kind(t))]
    if odd:
        raise InvalidWeights(
            f"{name} holds tensors that are not plain dense CPU tensors: "
            f"{_listed(f'{k} ({v})' for k, v in odd)}"
            f". Weights must be dense: save tensor.to_dense() or tensor.dequantize() instead. {RESAVE}"
        )
    limits().check(
        "max_weights_bytes",
        sum(t.numel() * t.element_size() for t in tensors.values()),
        f"The total size of the tensors in {name}",
        "Use a smaller checkpoint, or ask the operator to raise max_weights_bytes.",
    )
    plain = {k: t.detach() for k, t in tensors.items()}
    bad = [k for k, t in plain.items() if not _finite(t)]
    if bad:
        raise InvalidWeights(
            f"{name} has NaN or infinite values in {_listed(bad)}: these weights are unusable."
        )
    return plain


def _odd_kind(t: torch.Tensor) -> str:
    """What makes a tensor unusable as a weight ("" for a dense CPU tensor)."""
    if type(t) not in (torch.Tensor, torch.nn.Parameter):
        return f"a {type(t).__name__}"
    if t.is_nested:
        return "nested"
    if t.is_quantized:
        return "quantized"
    if t.layout != torch.strided:
        return str(t.layout).removeprefix("torch.").replace("_", " ")
    if t.device.type != "cpu":
        return f"on the {t.device.type} device, without data" if t.device.type == "meta" else str(t.device)
    return ""


def _finite(t: torch.Tensor) -> bool:
    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return True
    if t.is_complex():
        t = torch.view_as_real(t if t.dtype != torch.complex32 else t.to(torch.complex64))
    # min and max propagate NaN and reach ±inf: one pass, no mask as large as the tensor.
    if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return _bounded(t)
    flat = t.reshape(-1)  # float8: no reduction kernels, so widened a chunk at a time
    return all(_bounded(flat[i : i + _CHUNK].float()) for i in range(0, flat.numel(), _CHUNK))


def _bounded(t: torch.Tensor) -> bool:
    low, high = torch.aminmax(t)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def _listed(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def dtype_kind(dtype: torch.dtype) -> str:
    """ "floating point", "complex", "bool" or "integer": what a parameter of this dtype can hold."""
    if dtype.is_floating_point:
        return "floating point"
    if dtype.is_complex:
        return "complex"
    return "bool" if dtype == torch.bool else "integer"
