"""Method descriptions: a parameter schema the UI renders without special cases, costs, and the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameter, UnknownMethod

if TYPE_CHECKING:
    import torch

    from .context import MethodContext

FAMILIES = ("gradient", "cam", "perturbation", "reference")
FAMILY_TITLES = {
    "gradient": "Gradient-based",
    "cam": "Class activation maps",
    "perturbation": "Perturbation",
    "reference": "Model-free references",
}


@dataclass(frozen=True)
class Param:
    """One method parameter: `kind` is "int", "float", "choice", "bool" or "layer"."""

    name: str
    kind: str
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()
    log: bool = False

    def coerce(self, value: Any) -> Any:
        """Validate and convert a user value, with a message that names the parameter."""
        try:
            if self.kind == "int":
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                value = int(float(value))
            elif self.kind == "float":
                value = float(value)
            elif self.kind == "bool":
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                value = bool(value)
            elif self.kind == "choice":
                matches = [c for c in self.choices if c == value or str(c) == str(value)]
                value = matches[0] if matches else value
            elif self.kind == "layer":
                value = str(value)
        except (TypeError, ValueError):
            raise InvalidParameter(
                f"Parameter '{self.name}' must be of type {self.kind}, got {value!r}."
            ) from None
        if self.kind == "choice" and value not in self.choices:
            raise InvalidParameter(
                f"Parameter '{self.name}' must be one of {', '.join(map(str, self.choices))}; got {value!r}."
            )
        if self.kind in ("int", "float"):
            if self.min is not None and value < self.min:
                raise InvalidParameter(f"Parameter '{self.name}' must be at least {self.min}; got {value}.")
            if self.max is not None and value > self.max:
                raise InvalidParameter(f"Parameter '{self.name}' must be at most {self.max}; got {value}.")
        return value

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.kind,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "choices": list(self.choices),
            "log": self.log,
            "help": self.help,
        }


LAYER = Param("layer", "layer", None, "Layer whose activations are used; the model's suggested layer first.")
BATCH_SIZE = Param(
    "batch_size",
    "int",
    0,
    "Images per forward/backward batch; 0 picks one for the device.",
    min=0,
    max=1024,
    step=1,
)
SEED = Param("seed", "int", 0, "Random seed: the same seed gives the same map.", min=0, max=2**31 - 1, step=1)

Cost = Callable[[Mapping[str, Any], "CostInfo"], tuple[int, int]]


class CostInfo:
    """What a cost formula may know before running: the input size and the layer's channel count.

    `channels` is measured (one forward pass, then remembered) only when a cost formula reads it, so
    per-channel methods (Score-CAM, Ablation-CAM) are estimated right without special cases.
    """

    def __init__(self, size: tuple[int, int] = (224, 224), channels: int | Callable[[], int] = 0) -> None:
        self.size = tuple(size)
        self._channels = channels

    @property
    def channels(self) -> int:
        if callable(self._channels):
            self._channels = int(self._channels())
        return int(self._channels)


@dataclass(frozen=True)
class MethodInfo:
    """A method as listed by `list_methods()`; `params` is the schema as plain dicts."""

    id: str
    family: str
    title: str
    description: str
    needs_target: bool
    uses_layer: bool
    params: tuple[dict[str, Any], ...]
    tasks: tuple[str, ...]
    reference: str = ""


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: schema, cost formula and the function computing (raw, map)."""

    id: str
    family: str
    title: str
    description: str
    compute: Callable[[MethodContext], tuple[torch.Tensor, torch.Tensor]]
    params: tuple[Param, ...] = ()
    needs_target: bool = True
    cost: Cost = field(default=lambda p, info: (1, 1))
    tasks: tuple[str, ...] = ("classification", "detection", "keypoints", "segmentation", "salient_object")
    reference: str = ""

    @property
    def uses_layer(self) -> bool:
        return any(p.kind == "layer" for p in self.params)

    def info(self) -> MethodInfo:
        return MethodInfo(
            id=self.id,
            family=self.family,
            title=self.title,
            description=self.description,
            needs_target=self.needs_target,
            uses_layer=self.uses_layer,
            params=tuple(p.as_dict() for p in self.params),
            tasks=self.tasks,
            reference=self.reference,
        )

    def resolve(self, given: Mapping[str, Any], layers: list[str]) -> dict[str, Any]:
        """Fill defaults, coerce types, reject unknown names; the layer defaults to the model's first."""
        names = {p.name for p in self.params}
        unknown = sorted(set(given) - names)
        if unknown:
            allowed = ", ".join(sorted(names)) or "none"
            raise InvalidParameter(
                f"{self.title} has no parameter {', '.join(unknown)} (it takes: {allowed})."
            )
        out: dict[str, Any] = {}
        for p in self.params:
            value = given.get(p.name)
            if p.kind == "layer":
                if value is None:
                    if not layers:
                        raise InvalidParameter(
                            f"{self.title} needs a layer, and this model suggests none: pass layer=."
                        )
                    value = layers[0]
                out[p.name] = str(value)
            else:
                out[p.name] = p.coerce(p.default if value is None else value)
        return out


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    if spec.id in _METHODS:
        raise ValueError(f"Method id '{spec.id}' is already registered.")
    if spec.family not in FAMILIES:
        raise ValueError(f"Unknown family {spec.family}")
    _METHODS[spec.id] = spec
    return spec


def get_method(method_id: str) -> MethodSpec:
    _ensure_loaded()
    try:
        return _METHODS[method_id]
    except KeyError:
        raise UnknownMethod(f"Unknown method '{method_id}'. Known methods: {', '.join(_METHODS)}.") from None


def list_methods(family: str | None = None, task: str | None = None) -> list[MethodInfo]:
    """All methods, in family order, optionally of one family or usable for one task."""
    _ensure_loaded()
    specs = sorted(_METHODS.values(), key=lambda s: FAMILIES.index(s.family))
    return [
        s.info()
        for s in specs
        if (family is None or s.family == family) and (task is None or task in s.tasks)
    ]


def _ensure_loaded() -> None:
    from . import cam, gradients, perturbation, reference  # noqa: F401
