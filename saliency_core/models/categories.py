"""Class names from a file: one name per line (.txt), a JSON list, or a JSON mapping index -> name."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidParameter

MAX_CATEGORIES_BYTES = 4 * 2**20
MAX_CLASSES = 100_000
MAX_NAME_CHARS = 300


@dataclass(frozen=True)
class Categories:
    """Names read from a file, with the file's name and sha256 (for cache keys and the model card)."""

    names: tuple[str, ...]
    file_name: str
    sha256: str


def class_names(count: int) -> tuple[str, ...]:
    """Placeholder names "class 0".. for a head without names."""
    return tuple(f"class {i}" for i in range(count))


def read_categories(path: str | os.PathLike) -> Categories:
    """Class names from a .txt (one per line) or .json (a list, or {"0": name, ...}) file, checked."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameter(f"No class-names file at {path}.")
    size = path.stat().st_size
    if size > MAX_CATEGORIES_BYTES:
        raise InvalidParameter(
            f"The class-names file {path.name} is {size / 2**20:.1f} MiB, over the "
            f"{MAX_CATEGORIES_BYTES // 2**20} MiB limit."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidParameter(f"The class-names file {path.name} is not UTF-8 text.") from None
    looks_json = path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{")
    names = _from_json(text, path.name) if looks_json else _from_lines(text, path.name)
    if not names:
        raise InvalidParameter(f"The class-names file {path.name} names no classes.")
    if len(names) > MAX_CLASSES:
        raise InvalidParameter(
            f"The class-names file {path.name} names {len(names)} classes (at most {MAX_CLASSES})."
        )
    long = next((i for i, n in enumerate(names) if len(n) > MAX_NAME_CHARS), None)
    if long is not None:
        raise InvalidParameter(
            f"Class {long} in {path.name} has a name of {len(names[long])} characters (at most {MAX_NAME_CHARS})."
        )
    return Categories(tuple(names), path.name, hashlib.sha256(data).hexdigest())


def _from_lines(text: str, name: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    empty = [i + 1 for i, line in enumerate(lines) if not line]
    if empty:
        raise InvalidParameter(f"Line {empty[0]} of {name} is empty: give one class name per line.")
    return lines


def _from_json(text: str, name: str) -> list[str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"{name} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if isinstance(data, list):
        if not all(isinstance(v, str) for v in data):
            raise InvalidParameter(f"{name} must be a JSON list of strings (one class name per index).")
        return [v.strip() for v in data]
    if isinstance(data, dict):
        try:
            indexed = {int(k): v for k, v in data.items()}
        except ValueError:
            raise InvalidParameter(f"{name} maps keys that are not class indices (0, 1, 2, ...).") from None
        if sorted(indexed) != list(range(len(indexed))):
            missing = sorted(set(range(len(indexed))) - set(indexed))
            raise InvalidParameter(
                f"{name} must map every index 0..{len(indexed) - 1} to a name; "
                f"{'index ' + str(missing[0]) + ' is missing' if missing else 'its indices do not start at 0'}."
            )
        if not all(isinstance(v, str) for v in indexed.values()):
            raise InvalidParameter(f"{name} must map each class index to a string.")
        return [indexed[i].strip() for i in range(len(indexed))]
    raise InvalidParameter(f"{name} must hold a JSON list of names or a mapping from index to name.")


def check_count(categories: Categories, classes: int) -> None:
    """The file must name exactly as many classes as the model's head has outputs."""
    if len(categories.names) != classes:
        raise InvalidParameter(
            f"{categories.file_name} names {len(categories.names)} classes, but the model's head has "
            f"{classes} outputs: give one name per output, in order."
        )
