"""What to explain: callables mapping a model's output to one differentiable score per image.

A target is bound to the unperturbed image's output before a method runs (`bind`), so that a
region chosen from the original prediction stays fixed while perturbation methods vary the input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .errors import InvalidParameter, TargetNotFound
from .geometry import Box, as_box, as_detections, best_match, graph_zero, sample_at


def _digest(array: np.ndarray | torch.Tensor | None) -> str | None:
    if array is None:
        return None
    data = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return hashlib.blake2b(
        np.ascontiguousarray(data).tobytes() + str(data.shape).encode(), digest_size=12
    ).hexdigest()


def _as_mask(mask: Any, like: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    return m.to(device=like.device, dtype=like.dtype)


class Target:
    """Base class: `target(output) -> Tensor[N]`, one score per image of the batch.

    What the UI can draw, where a target has it (else None): `box` (x0, y0, x1, y1) in input pixels,
    `keypoints` [K, 3] float numpy array (x, y, score), `mask` [H, W] at input size (tensor or array).
    """

    label: str = ""
    score: float | None = None

    def __getattr__(self, name: str) -> Any:
        # Drawable attributes a target does not have read as None (not class attributes: dataclass
        # subclasses would take those as field defaults).
        if name in ("box", "keypoints", "mask"):
            return None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __call__(self, output: Any) -> torch.Tensor:
        raise NotImplementedError

    def bind(self, output: Any) -> Target:
        """Fix anything taken from the unperturbed prediction (a predicted mask, a box)."""
        return self

    def key(self) -> tuple:
        """A hashable identity for caching."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.label or self.__class__.__name__


@dataclass(frozen=True, eq=False)
class ClassTarget(Target):
    """A class: its logit (classification) or its logits summed over a region (segmentation)."""

    index: int
    label: str = ""
    score: float | None = None
    mask: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if int(self.index) != self.index or self.index < 0:
            raise InvalidParameter(f"A class index must be a non-negative integer, got {self.index!r}.")

    def __call__(self, output: Any) -> torch.Tensor:
        if isinstance(output, torch.Tensor) and output.ndim == 2:
            if self.index >= output.shape[1]:
                raise InvalidParameter(
                    f"Class index {self.index} is out of range: the model has {output.shape[1]} classes."
                )
            return output[:, self.index]
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            if self.index >= output.shape[1]:
                raise InvalidParameter(
                    f"Class index {self.index} is out of range: the model has {output.shape[1]} classes."
                )
            if self.mask is not None:
                region = self.mask
            else:
                region = output.detach().argmax(1, keepdim=True) == self.index
            region = _as_mask(region, output)
            if region.ndim == 2:
                region = region[None, None]
            elif region.ndim == 3:
                region = region[:, None]
            return (output[:, self.index : self.index + 1] * region).flatten(1).sum(1)
        raise InvalidParameter(
            "A class target needs classification logits [N, C] or segmentation logits [N, C, H, W]."
        )

    def bind(self, output: Any) -> Target:
        if self.mask is None and isinstance(output, torch.Tensor) and output.ndim == 4:
            predicted = (output.detach().argmax(1)[0] == self.index).float()
            return replace(self, mask=predicted)
        return self

    def key(self) -> tuple:
        return ("class", int(self.index), _digest(self.mask))

    def describe(self) -> str:
        return self.label or f"class {self.index}"


# COCO person keypoints, in the order of torchvision's KeypointRCNN (its weights' meta["keypoint_names"]).
COCO_KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# Limbs to draw between keypoints (0-based indices into COCO_KEYPOINT_NAMES), as in the COCO annotations.
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
PERSON = 1  # "person" in torchvision's COCO category list


def _box_text(box: Box) -> str:
    return "({:.0f}, {:.0f}, {:.0f}, {:.0f})".format(*box)


def _bound_detection(
    target: BoxTarget | KeypointTarget, output: Any, lost: str
) -> tuple[dict[str, torch.Tensor], int]:
    """The first image's detection that `target` matches, and its index; TargetNotFound(`lost`) if none."""
    detection = as_detections(output)[0]
    index = target.match([detection])[0]
    if index is None:
        raise TargetNotFound(lost)
    return detection, index


@dataclass(frozen=True, eq=False)
class BoxTarget(Target):
    """One detection: the class score of the detection that best matches `box`.

    On a detection output (one dict per image: boxes, scores, labels) the score of an image is the
    `scores` entry of the detection labelled `category` whose box has the highest IoU with `box`,
    provided that IoU is at least `min_iou`; it is differentiable through that score. When no detection
    matches, the image scores 0 with zero gradient. `bind` (on the unperturbed output) raises
    TargetNotFound instead, so a box that is no longer detected is reported, not explained as zeros.
    Perturbation methods score with the adapter's D-RISE-style `perturbation_score` instead.

    box: (x0, y0, x1, y1) in input pixels; category: class index in the model's categories (COCO:
    1 = person); name: display name; score: the detection's score when it was predicted or bound.
    """

    box: Box
    category: int
    name: str = ""
    score: float | None = None
    min_iou: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", as_box(self.box))
        if int(self.category) != self.category or self.category < 0:
            raise InvalidParameter(f"A class index must be a non-negative integer, got {self.category!r}.")
        object.__setattr__(self, "category", int(self.category))
        if not 0.0 < self.min_iou <= 1.0:
            raise InvalidParameter(f"min_iou must be in (0, 1]; got {self.min_iou}.")

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.name or f"class {self.category}"

    def match(self, output: Any) -> list[int | None]:
        """Per image, the index of the matched detection, or None where the box is not detected."""
        return [best_match(self.box, self.category, d, self.min_iou) for d in as_detections(output)]

    def __call__(self, output: Any) -> torch.Tensor:
        detections = as_detections(output)
        values = [
            graph_zero(d) if i is None else d["scores"][i] for d, i in zip(detections, self.match(detections))
        ]
        return torch.stack(values)

    def bind(self, output: Any) -> Target:
        detection, index = _bound_detection(
            self,
            output,
            f"The chosen box ({self.label} at {_box_text(self.box)}) is no longer detected: no "
            f"'{self.label}' detection overlaps it with IoU >= {self.min_iou:g}. Pick a detection again.",
        )
        return replace(self, score=float(detection["scores"][index].detach()))

    def key(self) -> tuple:
        return ("box", tuple(round(v, 2) for v in self.box), self.category, self.min_iou)

    def describe(self) -> str:
        score = f" {self.score:.2f}" if self.score is not None else ""
        return f"{self.label}{score} at {_box_text(self.box)}"


@dataclass(frozen=True, eq=False)
class KeypointTarget(Target):
    """One keypoint of one person: its heatmap logit at the predicted location.

    The person is the detection labelled `category` (person) that best matches `box` (IoU >= min_iou).
    The score is that person's heatmap logit for the keypoint, read (bicubic, as torchvision upsamples
    heatmaps) at `location`: fixed by `bind` to where the unperturbed image puts the keypoint, or, while
    unbound, where each output puts it. Differentiable through the heatmap; 0 with zero gradient when
    no person matches; `bind` raises TargetNotFound then. Outputs need per-detection `keypoint_heatmaps`
    [M, K, h, w] (the keypoints adapter adds them); without them torchvision's `keypoints_scores`
    (the logit at each output's own predicted location) is used.

    keypoint: index or name (COCO_KEYPOINT_NAMES); `keypoints` [K, 3] (x, y, logit) is the whole
    person, for drawing the skeleton (`skeleton`: pairs of keypoint indices); `score` the keypoint's
    logit and `person_score` the person's detection score.
    """

    box: Box
    keypoint: int | str
    score: float | None = None
    person_score: float | None = None
    keypoints: Any = field(default=None, repr=False)
    location: tuple[float, float] | None = None
    person: str = "person"
    keypoint_names: tuple[str, ...] = COCO_KEYPOINT_NAMES
    skeleton: tuple[tuple[int, int], ...] = field(default=COCO_SKELETON, repr=False)
    category: int = PERSON
    min_iou: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "box", as_box(self.box))
        k = self.keypoint
        if isinstance(k, str):
            if k not in self.keypoint_names:
                raise InvalidParameter(
                    f"Unknown keypoint '{k}'. Keypoints: {', '.join(self.keypoint_names)}."
                )
            k = self.keypoint_names.index(k)
        if isinstance(k, bool) or int(k) != k or not 0 <= int(k) < len(self.keypoint_names):
            raise InvalidParameter(
                f"A keypoint is a name or an index below {len(self.keypoint_names)}; got {self.keypoint!r}."
            )
        object.__setattr__(self, "keypoint", int(k))
        if self.keypoints is not None:
            object.__setattr__(self, "keypoints", np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 3))

    @property
    def keypoint_name(self) -> str:
        return self.keypoint_names[int(self.keypoint)]

    @property
    def label(self) -> str:  # type: ignore[override]
        return f"{self.person}: {self.keypoint_name}"

    def with_keypoint(self, keypoint: int | str) -> KeypointTarget:
        """The same person, another keypoint (its location and score taken from `keypoints` if known)."""
        other = replace(self, keypoint=keypoint, location=None, score=None)
        if self.keypoints is not None:
            x, y, logit = (float(v) for v in self.keypoints[other.keypoint])
            other = replace(other, location=(x, y), score=logit)
        return other

    def match(self, output: Any) -> list[int | None]:
        """Per image, the index of the matched person, or None where no person matches the box."""
        return [best_match(self.box, self.category, d, self.min_iou) for d in as_detections(output)]

    def _value(self, detection: dict[str, torch.Tensor], index: int) -> torch.Tensor:
        k = int(self.keypoint)
        heatmaps = detection.get("keypoint_heatmaps")
        if heatmaps is None:
            if "keypoints_scores" not in detection:
                raise InvalidParameter(
                    "A keypoint target needs a keypoint model's output (keypoint heatmaps)."
                )
            return detection["keypoints_scores"][index, k]
        location = self.location
        if location is None:
            x, y = detection["keypoints"][index, k, :2].detach().tolist()
            location = (x, y)
        return sample_at(heatmaps[index, k], detection["boxes"][index].detach(), location, mode="bicubic")

    def __call__(self, output: Any) -> torch.Tensor:
        detections = as_detections(output)
        values = [
            graph_zero(d) if i is None else self._value(d, i)
            for d, i in zip(detections, self.match(detections))
        ]
        return torch.stack(values)

    def bind(self, output: Any) -> Target:
        detection, index = _bound_detection(
            self,
            output,
            f"The chosen person at {_box_text(self.box)} is no longer detected: no person detection "
            f"overlaps it with IoU >= {self.min_iou:g}. Pick a person again.",
        )
        points = detection["keypoints"][index].detach().float().cpu().clone()
        if "keypoints_scores" in detection:
            points[:, 2] = detection["keypoints_scores"][index].detach().float().cpu()
        x, y = (float(v) for v in points[int(self.keypoint), :2])
        bound = replace(
            self,
            keypoints=points.numpy(),
            location=(x, y) if self.location is None else self.location,
            person_score=float(detection["scores"][index].detach()),
        )
        return replace(bound, score=float(bound._value(detection, index).detach()))

    def key(self) -> tuple:
        location = None if self.location is None else tuple(round(v, 2) for v in self.location)
        return ("keypoint", tuple(round(v, 2) for v in self.box), int(self.keypoint), location, self.min_iou)

    def describe(self) -> str:
        where = f" at ({self.location[0]:.0f}, {self.location[1]:.0f})" if self.location is not None else ""
        score = f", logit {self.score:.2f}" if self.score is not None else ""
        return f"{self.label}{where}{score} (person box {_box_text(self.box)})"


def _region(mask: Any, like: torch.Tensor) -> torch.Tensor:
    """A mask [H, W] (or [N, H, W]) as a float tensor broadcastable to `like` [N, H, W]."""
    region = _as_mask(mask, like)
    if region.ndim == 4 and region.shape[1] == 1:
        region = region[:, 0]
    if region.ndim not in (2, 3) or tuple(region.shape[-2:]) != tuple(like.shape[-2:]):
        raise InvalidParameter(
            f"The mask is {tuple(region.shape)}; it must be [H, W] at the output's size {tuple(like.shape[-2:])}."
        )
    return region


@dataclass(frozen=True, eq=False)
class MaskTarget(Target):
    """A one-channel output map (salient-object logits [N, 1, H, W]) summed over a region.

    The region is `mask` ([H, W], bool or float, numpy or tensor, at the output's size); if None it is
    fixed by `bind` to the predicted region of the unperturbed output (`output > threshold`; logits:
    probability > 0.5) and stored as a float tensor [H, W] on the output's device. `bind` raises
    TargetNotFound when nothing is predicted. For a class of a semantic segmentation (several
    channels) use ClassTarget(index, mask=...).
    """

    mask: Any = field(default=None, repr=False)
    label: str = "salient region"
    score: float | None = None
    threshold: float = 0.0

    @staticmethod
    def _map(output: Any) -> torch.Tensor:
        if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[1] == 1:
            return output[:, 0]
        if isinstance(output, torch.Tensor) and output.ndim == 3:
            return output
        raise InvalidParameter(
            "A mask target needs a one-channel map [N, 1, H, W]; for a segmentation class use ClassTarget."
        )

    def __call__(self, output: Any) -> torch.Tensor:
        values = self._map(output)
        region = values.detach() > self.threshold if self.mask is None else self.mask
        return (values * _region(region, values)).flatten(1).sum(1)

    def bind(self, output: Any) -> Target:
        values = self._map(output)[:1].detach()
        given = None if self.mask is None else _region(self.mask, values)
        region = (
            (values[0] > self.threshold).float()
            if given is None
            else given.reshape(-1, *values.shape[-2:])[0]
        )
        if float(region.sum()) <= 0:
            raise TargetNotFound(
                "The model predicts no salient region on this image; pass a region (mask=...) to explain."
            )
        inside = torch.sigmoid(values[0].float())[region > 0]
        return replace(self, mask=region if self.mask is None else self.mask, score=float(inside.mean()))

    def key(self) -> tuple:
        return ("mask", _digest(self.mask), self.threshold)

    def describe(self) -> str:
        return self.label


def as_target(target: Target | int | None) -> Target | None:
    """Accept a Target or a bare class index."""
    if target is None or isinstance(target, Target):
        return target
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return ClassTarget(int(target))
    raise InvalidParameter(f"A target must be a Target or an int class index, got {type(target).__name__}.")
