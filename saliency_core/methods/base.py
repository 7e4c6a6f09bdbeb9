"""Method descriptions: a parameter schema the UI renders without special cases, costs, and the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidParameter, UnknownMethod
from ..viz.styles import STYLES as DISPLAYS
from . import coercion
from .lesson import Lesson

if TYPE_CHECKING:
    import torch

    from ..models.loaded import LoadedModel
    from .context import MethodContext

FAMILIES = ("gradient", "propagation", "cam", "attention", "perturbation", "region", "reference")
FAMILY_TITLES = {
    "gradient": "Gradient-based",
    "propagation": "Relevance propagation",
    "cam": "Class activation maps",
    "attention": "Transformer attention",
    "perturbation": "Perturbation",
    "region": "Regions and superpixels",
    "reference": "Model-free references",
}
# The modules that register the built-in methods, imported when the registry is first read.
METHOD_MODULES = (
    "gradients",
    "reference_gradients",
    "pair_paths",
    "lrp",
    "cam",
    "cam_more",
    "attention",
    "perturbation",
    "superpixel",
    "xrai",
    "reference",
)


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
        """Validate and convert a user value (a number, or text from a form or a link) to the parameter's
        type and range; anything else raises InvalidParameter naming the parameter."""
        converted = coercion.convert(self, value)
        wrong = coercion.problem(self, converted)
        if wrong:
            raise InvalidParameter(f"Parameter '{self.name}' must be {wrong}; got {coercion.shown(value)}.")
        return converted

    @classmethod
    def from_dict(cls, p: Mapping[str, Any]) -> Param:
        """The Param of a schema entry as listed in `MethodInfo.params` (the inverse of `as_dict`)."""
        return cls(
            name=p["name"],
            kind=p["type"],
            default=p.get("default"),
            help=p.get("help") or "",
            min=p.get("min"),
            max=p.get("max"),
            step=p.get("step"),
            choices=tuple(p.get("choices") or ()),
            log=bool(p.get("log")),
        )

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


class Passes(tuple):
    """What a cost formula may return instead of a plain (forward, backward) pair, for time estimates:
    still that pair (each backward's forward counted in `forward`, as the engine counts them), plus
    `batched`: how many of them are images given to `for_batches` (each with a backward when the batches
    take gradients, i.e. when backward >= batched), and `to_layer`: backward passes that stop at a
    layer (a CAM's), cheaper than one down to the input."""

    batched: int
    to_layer: int

    def __new__(cls, forward: int, backward: int, batched: int = 0, to_layer: int = 0) -> Passes:
        made = super().__new__(cls, (int(forward), int(backward)))
        made.batched = int(batched)
        made.to_layer = int(to_layer)
        return made


# (side of the input in pixels, whether each pass is heavy, e.g. a whole detector) -> parameter defaults
SizeDefaults = Callable[[int, bool], dict[str, Any]]
# (resolved params, forward passes, "about 2.1 min", "this model") -> why it is slow and what helps
SlowHint = Callable[[Mapping[str, Any], int, str, str], str]
SIGNS = ("positive", "absolute")  # how a map is read by default: its positive part or its magnitude
VIEWS = ("explore", "compare", "evaluate", "learn", "reference")  # where a method can be a default pick


class AllTasks:
    """Every task, including tasks registered after the method (the default of `MethodSpec.tasks`)."""

    def __contains__(self, task: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ALL_TASKS"


ALL_TASKS = AllTasks()


def default_slow_hint(params: Mapping[str, Any], forward_passes: int, when: str, what: str) -> str:
    return ""


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
    tasks: tuple[str, ...] | AllTasks
    reference: str = ""
    sign: str = "positive"
    display: str = "overlay"
    lesson: Lesson | None = None
    featured: Mapping[str, int] = field(default_factory=dict)
    localises: bool = False
    spec: MethodSpec | None = field(default=None, repr=False, compare=False)

    def supports(self, task: str) -> bool:
        return task in self.tasks

    def unsupported(self, model: LoadedModel) -> str:
        """Why the method cannot explain this model ("" when it can); see `MethodSpec.unsupported`."""
        return self.spec.unsupported(model) if self.spec is not None else ""

    def defaults_for(self, side: int, heavy: bool) -> dict[str, Any]:
        """Parameter defaults for a large input (`side` pixels) of a task with scaled defaults; see
        `MethodSpec.size_defaults`."""
        return self.spec.defaults_for(side, heavy) if self.spec is not None else {}

    def slow_hint(self, params: Mapping[str, Any], forward_passes: int, when: str, what: str) -> str:
        """Why this run is slow and what makes it faster ("" for the generic advice)."""
        return self.spec.slow_hint(params, forward_passes, when, what) if self.spec is not None else ""


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
    tasks: tuple[str, ...] | AllTasks = ALL_TASKS
    reference: str = ""
    # How the display's "auto" sign reads the map: "positive" (its positive part) or "absolute" (gradient
    # maps, whose sign mostly follows the input's colours).
    sign: str = "positive"
    # How its paper draws the map (one of DISPLAYS, viz.STYLES): "overlay" (coloured, over the picture),
    # "gray" (the magnitude alone in grayscale: pixel-level gradient maps) or "smoothed" (the magnitude
    # blurred, then overlaid). The display's "as the method's paper" style follows it.
    display: str = "overlay"
    # Defaults for tasks whose inputs are large (detectors see up to 640 px): schema defaults suit 224 px.
    size_defaults: SizeDefaults | None = None
    slow_hint: SlowHint = default_slow_hint
    lesson: Lesson | None = None
    # Views where the method is picked by default, with its place: {"compare": 1, "evaluate": 2}.
    featured: Mapping[str, int] = field(default_factory=dict)
    # Whether its default map's maximum is expected on the object the model recognises (checked on the
    # demo scenes by tests/core/test_default_maps.py); a method that does not says why in its lesson.
    localises: bool = False
    # Which models it explains beyond the task: model -> "" when it can, else why not, in a sentence a
    # user reads (attention methods need a transformer, relevance rules need modules they know).
    model_check: Callable[[LoadedModel], str] | None = None

    def unsupported(self, model: LoadedModel) -> str:
        """Why the method cannot explain `model` ("" when it can): the task, then `model_check`."""
        if model.task not in self.tasks:
            return f"{self.title} does not apply to {model.task} models."
        return self.model_check(model) if self.model_check is not None else ""

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
            sign=self.sign,
            display=self.display,
            lesson=self.lesson,
            featured=dict(self.featured),
            localises=self.localises,
            spec=self,
        )

    def defaults_for(self, side: int, heavy: bool) -> dict[str, Any]:
        """`size_defaults` for an input of `side` pixels, clamped to the schema's ranges."""
        if self.size_defaults is None:
            return {}
        schema = {p.name: p for p in self.params}
        out = {}
        for name, value in self.size_defaults(int(side), bool(heavy)).items():
            p = schema.get(name)
            if p is None:
                continue
            if p.min is not None:
                value = max(value, type(value)(p.min))
            if p.max is not None:
                value = min(value, type(value)(p.max))
            out[name] = value
        return out

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
                out[p.name] = p.coerce(value)
            else:
                out[p.name] = p.coerce(p.default if value is None else value)
        return out


_METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method (ids are unique); plugins call this as `sc.register_method`."""
    if spec.id in _METHODS:
        raise ValueError(f"Method id '{spec.id}' is already registered.")
    if spec.family not in FAMILIES:
        raise ValueError(f"Unknown family '{spec.family}' (one of {', '.join(FAMILIES)}).")
    if spec.sign not in SIGNS:
        raise ValueError(f"Unknown sign '{spec.sign}' (one of {', '.join(SIGNS)}).")
    if spec.display not in DISPLAYS:
        raise ValueError(f"Unknown display '{spec.display}' (one of {', '.join(DISPLAYS)}).")
    unknown = sorted(set(spec.featured) - set(VIEWS))
    if unknown:
        raise ValueError(f"Unknown views {unknown} in featured (known: {', '.join(VIEWS)}).")
    _METHODS[spec.id] = spec
    return spec


def featured(view: str, task: str | None = None) -> list[str]:
    """Ids of the methods picked by default in `view` (for a task), in their declared order."""
    _ensure_loaded()
    found = [s for s in _METHODS.values() if view in s.featured and (task is None or task in s.tasks)]
    return [s.id for s in sorted(found, key=lambda s: s.featured[view])]


def get_method(method_id: str) -> MethodSpec:
    _ensure_loaded()
    try:
        return _METHODS[method_id]
    except KeyError:
        raise UnknownMethod(f"Unknown method '{method_id}'. Known methods: {', '.join(_METHODS)}.") from None


def list_methods(
    family: str | None = None, task: str | None = None, model: LoadedModel | None = None
) -> list[MethodInfo]:
    """All methods, in family order, optionally of one family, usable for one task, or able to explain
    one loaded model (its task and the method's `model_check`)."""
    _ensure_loaded()
    specs = sorted(_METHODS.values(), key=lambda s: FAMILIES.index(s.family))
    return [
        s.info()
        for s in specs
        if (family is None or s.family == family)
        and (task is None or task in s.tasks)
        and (model is None or not s.unsupported(model))
    ]


def _ensure_loaded() -> None:
    import importlib

    from .. import plugins

    for name in METHOD_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    plugins.load_plugins()
