"""What the UI needs to know about a task; each task's module subclasses `TaskUI` and registers it.

The defaults describe a classifier: a ranked list of classes, nothing drawn on the picture, nothing to
refine and nothing extra in a share link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import saliency_core as sc

if TYPE_CHECKING:
    from ui.display import Display
    from ui.view import View

RANDOM_WARNING = "Random weights: maps are meaningless except for teaching."


class TaskUI:
    """The target picker, drawing and share-link fields of one task."""

    task = ""
    picker_title = "Target"
    # Tasks whose predictions are listed above a score threshold name them here ("Detections").
    threshold_noun = ""
    lost_noun = ""  # what a prediction is called when it drops below the threshold ("detection")
    slow_what = "this model"  # what each pass runs through, for slow-run warnings
    random_note = ""  # what random weights mean for this task, after RANDOM_WARNING
    # Session keys of pickers that belong to one image and model (reset when either changes).
    per_base_keys: tuple[str, ...] = ()

    def top_k(self, info: sc.ModelInfo) -> int:
        """How many predictions the target picker offers: every class of a small model, else five."""
        return info.num_classes if 0 < info.num_classes <= 10 else 5

    def picker_help(self, n: int) -> str:
        return f"What to explain: the model's {n} best predictions on this image, best first."

    def target_label(self, target: sc.Target, rank: int) -> str:
        score = f" — {target.score:.1%}" if target.score is not None else ""
        return f"{rank + 1}. {target.describe()}{score}"

    def picture_caption(self, n: int) -> str:
        """The caption of the predictions drawn on the picture in the sidebar ("": nothing is drawn)."""
        return ""

    def nothing_predicted(self, threshold: float, weights: str) -> str:
        return "The model predicts nothing on this image, so there is nothing to explain."

    def refine(
        self, prediction: sc.Target, size: tuple[int, int]
    ) -> tuple[sc.Target | None, tuple[int, int, int, int] | None, str]:
        """Pickers under the target that refine it: (refined target or None, rectangle, problem)."""
        return None, None, ""

    def random_warning(self) -> str:
        return f"{RANDOM_WARNING} {self.random_note}".strip()

    def share_fields(self, view: View) -> dict[str, str]:
        """What a share link adds to reproduce the target (beyond its rank)."""
        return {}

    def apply_share(self, link: dict[str, Any]) -> list[str]:
        """Apply the task's fields of a share link to the session; return what could not be used."""
        return []

    def extra_panel(self, view: View, shown: Display) -> None:
        """Drawn on Explore under the map (salient objects: the model's own output beside a reference)."""


_REGISTRY: dict[str, TaskUI] = {}


def register(cls: type[TaskUI]) -> type[TaskUI]:
    """Class decorator: the UI of `cls.task`."""
    _REGISTRY[cls.task] = cls()
    return cls
