"""Model loading: registered and source models ("timm:...", "torchvision:...", "program:...") built once
per process and choice of weights, head size and class names; plain modules wrapped; and the weights
policy ("default" = bundled file, pretrained enum or the source's own, None = random init, else a path)."""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import os
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InvalidParameter, WeightsUnavailable
from ..models.categories import Categories, check_count, read_categories
from ..models.checkpoints import check_size, head_size
from ..models.loaded import LoadedModel, module_token
from ..models.registry import ModelSpec, get_spec
from ..models.sources import check_num_classes, default_categories, spec_file, split_id
from ..models.weights import load_into, read_state_dict
from .precision import prefer_channels_last

# (path, size, mtime, ctime, inode) -> sha256: a file is hashed again whenever it is written to (the
# ctime changes on every write, even when a copy restores the modification time).
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file (remembered while the file is not written to)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    with _DIGEST_LOCK:
        found = _DIGESTS.get(key)
    if found is None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        found = digest.hexdigest()
        with _DIGEST_LOCK:
            _DIGESTS[key] = found
    return found


class ModelLoader:
    """The Engine's models: a mixin that needs `self.device`; a LoadedModel keeps the engine that made it."""

    device: torch.device

    def __init__(self) -> None:
        # (model id, weights, file digest, num_classes, names digest) -> model
        self._models: dict[tuple[str, str, str, int | None, str], LoadedModel] = {}
        self._wrapped: dict[str, LoadedModel] = {}  # module token -> model
        self._load_lock = threading.Lock()
        self._move_lock = threading.Lock()  # one device move at a time (moving.py)

    def load_model(
        self,
        model_id: str,
        weights: str | os.PathLike | None = "default",
        *,
        num_classes: int | None = None,
        categories: str | os.PathLike | None = None,
    ) -> LoadedModel:
        """A model loaded once per process and choice of weights, head size and names; eval mode, on the
        device. `num_classes` sizes a source model's head (default: the file's, else the architecture's);
        `categories` is a class-names file (.txt, one per line, or .json)."""
        check_num_classes(num_classes)
        label = "random" if weights is None else str(weights)
        is_file = weights is not None and label != "default"
        names = read_categories(categories) if categories is not None else None
        if is_file and not Path(label).exists():
            # An uploaded file is deleted once loaded: the engine's copy is still the model it names.
            wanted = (model_id, label, num_classes, names.sha256 if names else "")
            with self._load_lock:
                kept = [m for k, m in self._models.items() if (k[0], k[1], k[3], k[4]) == wanted]
            if kept:
                return kept[-1]
        digest_of = check_size(label) if is_file else spec_file(model_id)
        digest = file_sha256(digest_of) if digest_of is not None and Path(digest_of).is_file() else ""
        key = (model_id, label, digest, num_classes, names.sha256 if names else "")
        with self._load_lock:
            found = self._models.get(key)
            if found is not None:
                return found
            spec, module = self._build(model_id, label if is_file else weights, num_classes)
            module.eval().to(self.device)
            prefer_channels_last(module, self.device)
            model = LoadedModel(
                module,
                engine=self,
                spec=spec,
                weights=label,
                device=self.device,
                categories=self._categories(spec, "file" if is_file else label, names),
                provenance=_provenance(label if is_file else None, digest, names),
            )
            self._models[key] = model
            return model

    def _build(
        self, model_id: str, weights: str | None, num_classes: int | None
    ) -> tuple[ModelSpec, nn.Module]:
        spec = get_spec(model_id, num_classes)
        sourced = split_id(model_id) is not None and spec.source in ("timm", "torchvision", "program")
        if num_classes is not None and not sourced and num_classes != spec.num_classes:
            raise InvalidParameter(
                f"{model_id} has {spec.num_classes} classes; num_classes applies to timm: and torchvision: "
                f"models (e.g. 'torchvision:{model_id}'), whose head is built to that size."
            )
        if spec.source == "program" and weights != "default":
            raise InvalidParameter("A program carries its own weights: load it with weights='default'.")
        if weights is None:
            return spec, spec.build(None)
        if weights == "default":
            return spec, self._default(spec)
        state = read_state_dict(weights)
        if sourced and num_classes is None:
            # The head's size is the file's: a fine-tuned checkpoint loads without saying it.
            found = head_size(state, spec.extra.get("classifier"))
            if found is not None and found != spec.num_classes:
                spec = get_spec(model_id, found)
        hint = ""
        if spec.source == "curated" and spec.weights_enum is not None:
            hint = f"For a checkpoint with a head of its own size, load it as 'torchvision:{spec.id}'."
        source = f"The weights file {Path(weights).name}"
        return spec, load_into(spec.build(None), state, source, task=spec.task, hint=hint)

    def _default(self, spec: ModelSpec) -> nn.Module:
        if spec.bundled_weights is not None:
            path = spec.bundled_weights()
            if not path.is_file():
                raise WeightsUnavailable(
                    f"The bundled weights file '{path.name}' is missing from {path.parent}.",
                    file_name=path.name,
                    folder=str(path.parent),
                )
            return load_into(spec.build(None), read_state_dict(path), f"Bundled weights {path.name}")
        if spec.weights_enum is not None:
            return spec.build(spec.weights_enum())
        if spec.default_weights is not None:
            return spec.default_weights()
        # No weights file of its own (a plugin's model, a program): the builder's weights are the default.
        return spec.build(None)

    @staticmethod
    def _categories(spec: ModelSpec, weights: str, names: Categories | None) -> tuple[str, ...]:
        if names is None:
            return default_categories(spec, weights, spec.num_classes)
        check_count(names, spec.num_classes)
        return names.names

    def loaded_models(self) -> list[LoadedModel]:
        """Every model loaded so far (registered ones; wrapped modules are not listed)."""
        with self._load_lock:
            return list(self._models.values())

    def unload(self, model_id: str, weights: str | None = None) -> None:
        """Forget a loaded model: every weights choice of it, or only `weights` (e.g. a file path)."""
        with self._load_lock:
            for key in [k for k in self._models if k[0] == model_id]:
                if weights is None or key[1] == str(weights):
                    del self._models[key]

    def move_to(self, device: str | torch.device) -> torch.device:
        """Move the engine and every loaded model to `device` ("cpu", "cuda:1", "mps"), waiting for the work
        running on each model; device-bound cached needs and speed measurements are dropped (moving.py)."""
        from .moving import move_engine

        return move_engine(self, device)  # type: ignore[arg-type]

    def wrap(self, module: nn.Module, task: str = "classification") -> LoadedModel:
        """A plain nn.Module as a model of `task` (identity preprocessing, layers by dotted name)."""
        token = module_token(module)
        with self._load_lock:
            found = self._wrapped.get(token)
            # The token names the module, not the task: wrapping it for another task makes a new model.
            if found is None or found.module is not module or found.task != task:
                found = LoadedModel(module, engine=self, task=task)
                self._wrapped[token] = found
            return found

    def resolve(self, model: LoadedModel | nn.Module | str) -> LoadedModel:
        """A LoadedModel from a loaded model, a plain module (wrapped) or a registered model id (loaded)."""
        if isinstance(model, LoadedModel):
            return model
        if isinstance(model, nn.Module):
            return self.wrap(model)
        if isinstance(model, str):
            return self.load_model(model)
        raise InvalidParameter(f"Expected a loaded model or an nn.Module, got {type(model).__name__}.")


def _provenance(weights_file: str | None, digest: str, names: Categories | None) -> dict[str, str]:
    # A program's digest is its file's: the weights it carries.
    out = {"weights_sha256": digest} if digest else {}
    if weights_file:
        out["weights"] = Path(weights_file).name
    if names is not None:
        out.update(categories_file=names.file_name, categories_sha256=names.sha256)
    return out


def cpu_copy(model: LoadedModel) -> LoadedModel:
    """A copy of the model on the CPU, its weights copied straight to host memory (never through the
    accelerator, which has just run out), to rerun a request there."""
    module = model.module
    if isinstance(module, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(module, buffer)
        buffer.seek(0)
        copied: nn.Module = torch.jit.load(buffer, map_location="cpu")
    else:
        # deepcopy takes an object from `memo` when it meets one listed there: the host copies.
        memo: dict[int, Any] = {}
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            host = tensor.detach().to("cpu", copy=True)
            memo[id(tensor)] = (
                nn.Parameter(host, requires_grad=tensor.requires_grad)
                if isinstance(tensor, nn.Parameter)
                else host
            )
        copied = copy.deepcopy(module, memo)
    return LoadedModel(
        copied,
        engine=model.engine,
        spec=model.spec,
        weights=model.weights,
        device=torch.device("cpu"),
        task=model.task,
        categories=model.categories,
    )
