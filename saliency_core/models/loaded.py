"""A model ready to explain: module in eval mode on its device, preprocessing, layers, predictions."""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import InvalidImage, InvalidParameter
from ..hooks import ReshapeFn, get_layer
from ..tasks import TaskAdapter, get_adapter
from .layers import LayerOption, layer_options, output_shapes, zero_head
from .preprocess import IDENTITY, Preprocess
from .registry import ModelSpec

if TYPE_CHECKING:
    from ..engine import Engine
    from ..targets import Target

_MODULE_TOKENS: weakref.WeakKeyDictionary[nn.Module, str] = weakref.WeakKeyDictionary()
_TOKENS_LOCK = threading.Lock()


def module_token(module: nn.Module) -> str:
    """A unique, never-reused identity for a module object (ids are reused after garbage collection)."""
    with _TOKENS_LOCK:
        token = _MODULE_TOKENS.get(module)
        if token is None:
            token = uuid.uuid4().hex[:12]
            _MODULE_TOKENS[module] = token
        return token


def state_version(module: nn.Module) -> int:
    """Changes whenever a parameter or buffer is modified in place (so cached results go stale)."""
    return sum(t._version for t in module.parameters()) + sum(t._version for t in module.buffers())


class LoadedModel:
    """The object `load_model` returns; every attribution on it is serialised by `lock`."""

    def __init__(
        self,
        module: nn.Module,
        *,
        engine: Engine,
        spec: ModelSpec | None = None,
        weights: str = "",
        device: torch.device | None = None,
        task: str | None = None,
        categories: Sequence[str] | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> None:
        self.module = module
        self.spec = spec
        self.engine = engine
        self.weights = weights
        self.device = device if device is not None else _module_device(module)
        self.task = spec.task if spec else (task or "classification")
        self.id = spec.id if spec else f"{type(module).__name__}@{module_token(module)}"
        self.title = spec.title if spec else type(module).__name__
        self.adapter: TaskAdapter = get_adapter(self.task)
        self.lock = threading.RLock()
        self._preprocess: Preprocess = spec.preprocess if spec else IDENTITY
        if categories is None:
            categories = spec.categories() if spec else ()
        self.categories: list[str] = list(categories)
        # What the loader knows about where the weights and names came from (file names, digests).
        self._provenance: dict[str, Any] = dict(provenance or {})
        self._trees: dict[tuple[int, ...], list[tuple[str, tuple[int, ...] | None]]] = {}
        self._options: dict[tuple[object, ...], list[LayerOption]] = {}
        self._token = module_token(module)

    def __repr__(self) -> str:
        return f"LoadedModel({self.id!r}, task={self.task!r}, weights={self.weights!r}, device={self.device})"

    @property
    def key(self) -> tuple[str, int]:
        """Identity for caches: the module object and the version of its weights."""
        return (self._token, state_version(self.module))

    def with_module(self, module: nn.Module, label: str) -> LoadedModel:
        """The same model description around another module (e.g. a randomised copy for sanity checks)."""
        return LoadedModel(
            module,
            engine=self.engine,
            spec=self.spec,
            weights=f"{self.weights}+{label}",
            device=self.device,
            task=self.task,
            categories=self.categories,
            provenance=self._provenance,
        )

    def source_info(self) -> dict[str, Any]:
        """Card data: source, architecture, weights ("default", "random" or the file's name) and its
        sha256, the class-names file and its sha256, and the head's class count."""
        spec = self.spec
        info: dict[str, Any] = {
            "source": spec.source if spec is not None else "module",
            "architecture": str(spec.extra.get("architecture", spec.id))
            if spec
            else type(self.module).__name__,
            "weights": self.weights,
            "weights_sha256": "",
            "categories_file": "",
            "categories_sha256": "",
            "num_classes": spec.num_classes if spec is not None else len(self.categories),
        }
        info.update(self._provenance)
        return info

    # --- images -----------------------------------------------------------------------------
    def preprocess(self, image: Image.Image | np.ndarray | torch.Tensor) -> torch.Tensor:
        """PIL image or HxWx3 uint8 array -> Tensor [1, 3, H, W] on the model's device."""
        if isinstance(image, torch.Tensor):
            x = image if image.ndim == 4 else image.unsqueeze(0)
            return x.to(self.device, torch.float32)
        if not isinstance(image, (Image.Image, np.ndarray)):
            raise InvalidImage(f"Expected a PIL image or an HxWx3 uint8 array, got {type(image).__name__}.")
        return self._preprocess(image, self.device)

    def to_image(self, x: torch.Tensor) -> np.ndarray:
        """The uint8 HxWx3 picture a preprocessed input shows (for overlays aligned with maps)."""
        return self._preprocess.to_image(x)

    def black(self, x: torch.Tensor) -> torch.Tensor:
        """The input tensor of an all-black picture, shaped like x."""
        return self._preprocess.black(x)

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel values in [0, 1], [N, 3, H, W], -> model input (normalised like `preprocess`)."""
        mean = torch.tensor(self._preprocess.mean, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        std = torch.tensor(self._preprocess.std, dtype=pixels.dtype, device=pixels.device).view(1, -1, 1, 1)
        return (pixels - mean) / std

    # --- layers -----------------------------------------------------------------------------
    def layers(self) -> list[str]:
        """Candidate layers for CAM methods, the suggested default first."""
        if self.spec is not None:
            return list(self.spec.layers)
        return _guess_layers(self.module)

    def layer_tree(self, x: torch.Tensor | None = None) -> list[tuple[str, tuple[int, ...] | None]]:
        """Every named submodule with its output shape from one probe pass (None: not called, or no
        tensor), the CAM defaults first; measured once per model and input shape."""
        probe = self.preprocess(x) if x is not None else self._blank()
        key = tuple(probe.shape)
        with self.lock:
            found = self._trees.get(key)
            if found is None:
                # TorchScript takes no hooks: its layers are listed without shapes.
                scripted = isinstance(self.module, torch.jit.ScriptModule)
                shapes = {} if scripted else output_shapes(self.module, probe, self.forward)
                names = [n for n, _ in self.module.named_modules() if n]
                defaults = self.layers()
                found = [(n, shapes.get(n)) for n in defaults]
                found += [(n, shapes.get(n)) for n in names if n not in defaults]
                self._trees[key] = found
        return list(found)

    def layer_options(self, x: torch.Tensor | None = None) -> list[LayerOption]:
        """`layer_tree` for a layer picker: each layer's output shape, the grid CAM methods read from it
        (tokens reshaped), or why it has none; the suggested defaults first."""
        tree = self.layer_tree(x)
        key = ("options", *(s for s in (tuple(x.shape) if x is not None else ())))
        with self.lock:
            found = self._options.get(key)
            if found is None:
                found = self._options[key] = layer_options(tree, set(self.layers()), self.reshape_for)
        return list(found)

    def _blank(self) -> torch.Tensor:
        p = self._preprocess
        side = p.crop or p.max_side or p.resize or 224
        return self.preprocess(np.zeros((side, side, 3), np.uint8))

    def zero_head_warning(self) -> str:
        """A warning when the classifier head's weight is all zeros (random-init torchvision ViTs), else ""."""
        if self.task != "classification":
            return ""
        name = (self.spec.extra.get("classifier") or self.spec.cam_head) if self.spec is not None else None
        name = name or _guess_head(self.module)
        if not zero_head(self.module, name):
            return ""
        return (
            f"The classifier head '{name}' of {self.title} has all-zero weights (its random init), so the "
            "class scores do not depend on the image: every gradient-based map will be blank. Load trained "
            "weights (the default ones or a file) to explain this model."
        )

    def reshape_for(self, layer: str) -> ReshapeFn | None:
        return self.spec.reshape(layer) if self.spec is not None else None

    def cam_head(self) -> tuple[torch.Tensor, str | None]:
        """Weights [classes, channels] of the linear head after global average pooling, for CAM."""
        name = self.spec.cam_head if self.spec is not None else _guess_head(self.module)
        if name is None:
            raise InvalidParameter(
                f"CAM needs a global-average-pool + linear head, and {self.title} does not end with one. "
                "Use Grad-CAM, which generalises CAM to any architecture."
            )
        head = get_layer(self.module, name)
        if not isinstance(head, nn.Linear):
            raise InvalidParameter(f"CAM head '{name}' is not a linear layer.")
        return head.weight.detach(), (self.spec.gap_activation if self.spec is not None else None)

    # --- predictions ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Any:
        """The task-canonical output, with autograd as the caller has it enabled."""
        return self.adapter.forward(self.module, x)

    def predict(self, x: torch.Tensor, top_k: int = 5, threshold: float = 0.0) -> list[Target]:
        """Predictions as targets, best first, each with .label and .score."""
        output = self.engine.forward(self, x)
        return self.adapter.predict(self, output, top_k, threshold)


def _module_device(module: nn.Module) -> torch.device:
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _guess_layers(module: nn.Module) -> list[str]:
    """For unregistered modules: top-level blocks that contain convolutions, deepest first."""
    names = [
        name
        for name, child in module.named_children()
        if any(isinstance(m, nn.Conv2d) for m in child.modules())
    ]
    if len(names) == 1:
        inner = names[0]
        child = module.get_submodule(inner)
        sub = [
            f"{inner}.{n}"
            for n, c in child.named_children()
            if any(isinstance(m, nn.Conv2d) for m in c.modules())
        ]
        names = sub or names
    return list(reversed(names))


def _guess_head(module: nn.Module) -> str | None:
    last = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            last = name
    return last
