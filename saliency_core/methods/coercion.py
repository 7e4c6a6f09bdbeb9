"""What a parameter value may be: one conversion per kind of `Param`, used for every value (the API, forms,
share links), so that inf, NaN, 400-digit numbers, flags given as numbers and the like are refused alike."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Param

BAD = object()  # "not a value of this kind" (None is a legitimate layer default elsewhere)
INT_LIMIT = 2**63 - 1  # what torch's int64 holds; larger whole numbers are mistakes or attacks
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _is_bool(value: Any) -> bool:
    # numpy's bool_ is no subclass of bool, and a flag is never a number here
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def _real(value: Any) -> int | float | None:
    """An int (exact, from an integer or integral text) or a finite float; None for anything else."""
    if _is_bool(value):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)  # exact even past a float's precision
        except ValueError:
            pass
        try:
            value = float(text)  # "1e400" becomes inf, refused below
        except ValueError:
            return None
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            return None
        return number if math.isfinite(number) else None
    return None


def _as_int(p: Param, value: Any) -> Any:
    number = _real(value)
    if number is None or (isinstance(number, float) and not number.is_integer()):
        return BAD
    return int(number)  # its size is checked with the range, to say which bound it passes


def _as_float(p: Param, value: Any) -> Any:
    number = _real(value)
    if number is None:
        return BAD
    try:
        number = float(number)  # a whole number of 400 digits overflows here
    except OverflowError:
        return BAD
    return number if math.isfinite(number) else BAD


def _as_bool(p: Param, value: Any) -> Any:
    if _is_bool(value):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else BAD
    number = _real(value)
    return bool(number) if number in (0, 1) else BAD


def _as_choice(p: Param, value: Any) -> Any:
    text = value.strip() if isinstance(value, str) else None
    for choice in p.choices:
        if _is_bool(choice) != _is_bool(value):
            continue  # True == 1 in Python, but a flag is not the choice 1
        try:
            equal = choice == value
        except Exception:  # exotic objects may refuse comparison: then they are no choice
            equal = False
        if (isinstance(equal, bool) and equal) or (text is not None and str(choice) == text):
            return choice
    return BAD


def _as_layer(p: Param, value: Any) -> Any:
    # which names exist is the model's business (checked when the method runs); here: a non-empty name
    return value if isinstance(value, str) and value.strip() else BAD


_CONVERT: dict[str, Callable[[Param, Any], Any]] = {
    "int": _as_int,
    "float": _as_float,
    "bool": _as_bool,
    "choice": _as_choice,
    "layer": _as_layer,
}


def expected(p: Param) -> str:
    """What the parameter takes, in words: 'a whole number from 1 to 512', 'one of 3, 5, 7'."""
    if p.kind == "choice":
        return "one of " + ", ".join(map(str, p.choices))
    if p.kind not in ("int", "float"):
        return {"bool": "true or false", "layer": "a layer name"}.get(p.kind, p.kind)
    word = "a whole number" if p.kind == "int" else "a finite number"
    if p.min is not None and p.max is not None:
        return f"{word} from {p.min} to {p.max}"
    if p.min is not None:
        return f"{word} of at least {p.min}"
    if p.max is not None:
        return f"{word} of at most {p.max}"
    return word


def shown(value: Any, limit: int = 40) -> str:
    """A short repr for messages: a value from a link can be megabytes long, or an int too big to print."""
    try:
        text = repr(value)
    except ValueError:  # Python refuses to print ints of more than 4300 digits
        return "a number too large to show"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def convert(p: Param, value: Any) -> Any:
    """value as the parameter's kind, or BAD; a kind this module does not know (a plugin's) is passed on."""
    return _CONVERT[p.kind](p, value) if p.kind in _CONVERT else value


def problem(p: Param, converted: Any) -> str:
    """What the parameter must be when a converted value does not fit ("at least 2"); "" when it fits."""
    if converted is BAD:
        return expected(p)
    if p.kind in ("int", "float") and p.min is not None and converted < p.min:
        return f"at least {p.min}"
    if p.kind in ("int", "float") and p.max is not None and converted > p.max:
        return f"at most {p.max}"
    if p.kind == "int" and abs(converted) > INT_LIMIT:
        return f"at most {INT_LIMIT}" if converted > 0 else f"at least {-INT_LIMIT}"
    return ""
