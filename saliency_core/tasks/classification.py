"""Classification: logits [N, C]; predictions are the top-k classes by probability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..targets import ClassTarget, Target
from .base import TaskAdapter, register_adapter

if TYPE_CHECKING:
    from ..models.loaded import LoadedModel


@register_adapter
class ClassificationAdapter(TaskAdapter):
    task = "classification"
    binds_targets = False

    def predict(self, model: LoadedModel, output: Any, top_k: int, threshold: float) -> list[Target]:
        logits = output[0] if isinstance(output, torch.Tensor) else torch.as_tensor(output)[0]
        probs = torch.softmax(logits.float(), dim=-1)
        k = min(top_k, probs.numel())
        values, indices = probs.topk(k)
        names = model.categories
        return [
            ClassTarget(
                int(i), label=names[int(i)] if int(i) < len(names) else f"class {int(i)}", score=float(v)
            )
            for v, i in zip(values.tolist(), indices.tolist())
            if float(v) >= threshold
        ]

    def faithfulness_score(self, target: Target, output: Any) -> torch.Tensor:
        """The softmax probability of the target class (as in the RISE paper's deletion/insertion)."""
        if isinstance(target, ClassTarget) and isinstance(output, torch.Tensor) and output.ndim == 2:
            target(output)  # validates the class index with a clear message
            return torch.softmax(output.float(), dim=1)[:, target.index]
        return super().faithfulness_score(target, output)
