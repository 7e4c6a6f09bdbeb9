"""Model loading: registered models built once per process and weights choice, plain modules wrapped,
and the weights policy ("default" = bundled file or pretrained enum, None = random init, else a path)."""

from __future__ import annotations

import threading

import torch
from torch import nn

from ..errors import InvalidParameter, WeightsUnavailable
from ..models.loaded import LoadedModel, module_token
from ..models.registry import ModelSpec, get_spec
from ..models.weights import load_into, read_state_dict


class ModelLoader:
    """The Engine's models: a mixin that needs `self.device`; a LoadedModel keeps the engine that made it."""

    device: torch.device

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], LoadedModel] = {}  # (model id, weights key) -> model
        self._wrapped: dict[str, LoadedModel] = {}  # module token -> model
        self._load_lock = threading.Lock()

    def load_model(self, model_id: str, weights: str | None = "default") -> LoadedModel:
        """A registered model, loaded once per process and weights choice; eval mode, on the device."""
        spec = get_spec(model_id)
        weights_key = "random" if weights is None else str(weights)
        with self._load_lock:
            found = self._models.get((model_id, weights_key))
            if found is not None:
                return found
            module = self._build(spec, weights)
            module.eval().to(self.device)
            model = LoadedModel(module, engine=self, spec=spec, weights=weights_key, device=self.device)
            self._models[(model_id, weights_key)] = model
            return model

    def _build(self, spec: ModelSpec, weights: str | None) -> nn.Module:
        if weights is None:
            return spec.build(None)
        if weights == "default":
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
            # No weights file of its own (a plugin's model): the builder's weights are the default.
            return spec.build(None)
        module = spec.build(None)
        return load_into(module, read_state_dict(weights), f"The weights file {weights}")

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
