"""timm:<name>: any architecture `timm.create_model` builds (a pretrained tag, "resnet18.a1_in1k", too).

Preprocessing comes from the model's `pretrained_cfg`; CAM layers from its `feature_info` stages (a
ViT's last blocks' norm1 instead); default weights are timm's own pretrained loading, read from the
Hugging Face cache when the file is there, downloaded otherwise (unless offline).
"""

from __future__ import annotations

import os
from functools import cache, partial
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import WeightsUnavailable
from .download import OFFLINE_ENV
from .layers import build_probe, cam_head_for, find_classifier, grid_reshape, guess_layers, probe_shapes
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from .registry import ModelSpec
from .sources import unknown
from .weights import hub_checkpoints_dir, read_state_dict

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


@cache
def _names() -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models())


def names() -> list[str]:
    """Every timm architecture (without pretrained tags)."""
    return list(_names())


def _check_name(name: str) -> None:
    import timm

    arch, _, tag = name.partition(".")
    if arch not in set(_names()):
        raise unknown("timm", name, names())
    if tag:
        tagged = timm.list_pretrained(f"{arch}.*")
        if name not in tagged:
            raise unknown("timm", name, tagged or names())


def _create(name: str, kwargs: dict[str, Any], **more: Any) -> nn.Module:
    import timm

    return timm.create_model(name, **kwargs, **more)


def preprocess_from(cfg: dict[str, Any]) -> Preprocess:
    """timm's eval transform: resize to round(size / crop_pct), centre-crop to size, normalise."""
    size = int(cfg.get("input_size", (3, 224, 224))[1])
    crop_pct = float(cfg.get("crop_pct") or 1.0)
    interpolation = cfg.get("interpolation", "bilinear")
    return Preprocess(
        resize=round(size / crop_pct),
        crop=size,
        mean=tuple(cfg.get("mean") or IMAGENET_MEAN),
        std=tuple(cfg.get("std") or IMAGENET_STD),
        interpolation=interpolation if interpolation in _INTERPOLATIONS else "bilinear",
    )


def cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The pretrained file on disk: in the Hugging Face cache, or where `downloads` puts it (also where
    torch hub keeps URL weights); when none is there, where the download would put it."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for file in _hf_files(cfg):
            found = try_to_load_from_cache(hub_id, file)
            if isinstance(found, str):
                return Path(found)
        targets = [target for _, target in _hf_downloads(hub_id, cfg)]
        return next((t for t in targets if t.is_file()), targets[0])
    url = cfg.get("url")
    return hub_checkpoints_dir() / os.path.basename(url.split("?")[0]) if url else None


def downloads(cfg: dict[str, Any]) -> list[tuple[str, Path, str | None]]:
    """(URL, file, hash prefix) to try in order for the pretrained weights: the Hugging Face files (read
    as data, a safetensors file first), else the config's URL."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        return [(url, target, None) for url, target in _hf_downloads(hub_id, cfg)]
    url = cfg.get("url")
    return [(url, hub_checkpoints_dir() / os.path.basename(url.split("?")[0]), None)] if url else []


def _hf_downloads(hub_id: str, cfg: dict[str, Any]) -> list[tuple[str, Path]]:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    stem = "timm--" + hub_id.replace("/", "--")
    return [
        (f"{endpoint}/{hub_id}/resolve/main/{file}", hub_checkpoints_dir() / f"{stem}--{file}")
        for file in _hf_files(cfg)
    ]


def _hf_files(cfg: dict[str, Any]) -> tuple[str, ...]:
    return (cfg["hf_hub_filename"],) if cfg.get("hf_hub_filename") else _HF_FILES


def _hf_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _pretrained(name: str, kwargs: dict[str, Any], cfg: dict[str, Any]) -> nn.Module:
    """timm's pretrained model: from the cached file (read as data) when there, else downloaded by timm."""
    cached = cached_weights(cfg)
    if cached is not None and cached.is_file():
        # timm applies its own key conversions and head resizing to a state dict handed over this way.
        overlay = {"state_dict": read_state_dict(cached)}
        return _create(name, kwargs, pretrained=True, pretrained_cfg_overlay=overlay)
    if cfg.get("hf_hub_id"):
        where = f"the Hugging Face Hub ({cfg['hf_hub_id']})"
        # Hugging Face's cache layout is not for hand-placed files; the downloads' place is.
        file_name, folder = (cached.name, str(cached.parent)) if cached else ("", str(_hf_cache()))
    else:
        where = str(cfg.get("url") or "timm's servers")
        file_name = cached.name if cached is not None else ""
        folder = str(cached.parent if cached is not None else hub_checkpoints_dir())
    advice = (
        f"Give a local weights file instead (weights='path/to/file.safetensors'), or put '{file_name}' "
        f"in {folder}."
    )
    if os.environ.get(OFFLINE_ENV) or os.environ.get("HF_HUB_OFFLINE"):
        raise WeightsUnavailable(
            f"Pretrained weights for timm:{name} are downloaded from {where}, and this machine is offline "
            f"({OFFLINE_ENV} or HF_HUB_OFFLINE is set). {advice}",
            file_name=file_name,
            folder=folder,
        )
    try:
        return _create(name, kwargs, pretrained=True)
    except Exception as exc:  # no network, proxy, a removed file: the user needs the same advice
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise WeightsUnavailable(
            f"Pretrained weights for timm:{name} could not be downloaded from {where}. {advice} "
            f"({type(exc).__name__}: {reason})",
            file_name=file_name,
            folder=folder,
        ) from None


def _imagenet_names() -> tuple[str, ...]:
    from timm.data import ImageNetInfo

    # "tench, Tinca tinca" -> "tench", as torchvision names the classes.
    return tuple(d.split(",")[0].strip() for d in ImageNetInfo("imagenet-1k").label_descriptions())


def _classifier(probe: nn.Module, cfg: dict[str, Any], classes: int) -> str | None:
    named = cfg.get("classifier")
    named = named[0] if isinstance(named, (tuple, list)) else named
    modules = dict(probe.named_modules())
    if isinstance(named, str) and isinstance(modules.get(named), (nn.Linear, nn.Conv2d)):
        return named
    return find_classifier(probe, classes)


def spec(name: str, num_classes: int | None) -> ModelSpec:
    """A ModelSpec for timm:<name> with `num_classes` outputs (None: the architecture's default)."""
    _check_name(name)
    kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    probe = build_probe(partial(_create, name, kwargs, pretrained=False))
    cfg = dict(probe.pretrained_cfg)
    classes = int(getattr(probe, "num_classes", num_classes or 0))
    size = tuple(int(s) for s in cfg.get("input_size", (3, 224, 224))[1:])
    shapes = probe_shapes(probe, size)
    grid = getattr(getattr(probe, "patch_embed", None), "grid_size", None)
    fmt = str(getattr(probe, "output_fmt", "NCHW"))
    reshape = grid_reshape(
        tuple(grid) if grid else None, getattr(probe, "num_prefix_tokens", None), "NHWC" in fmt
    )
    modules = dict(probe.named_modules())
    stages = [f["module"] for f in getattr(probe, "feature_info", []) or [] if f.get("module") in modules]
    layers = guess_layers(probe, shapes, reshape(""), stages)
    classifier = _classifier(probe, cfg, classes)
    pretrained_classes = int(cfg.get("num_classes") or 0)
    return ModelSpec(
        id=f"timm:{name}",
        task="classification",
        title=f"timm {name}" + (f" ({classes} classes)" if num_classes is not None else ""),
        build=lambda _weights: _create(name, kwargs, pretrained=False),
        layers=tuple(layers),
        preprocess=preprocess_from(cfg),
        categories=lambda: (),
        description=f"timm.create_model('{name}'), preprocessing from its pretrained_cfg.",
        cam_head=cam_head_for(probe, classifier, layers[0] if layers else None, shapes),
        reshape=reshape,
        default_weights=partial(_pretrained, name, kwargs, cfg),
        default_weights_file=partial(cached_weights, cfg),
        extra={
            "downloads": partial(downloads, cfg),
            "source": "timm",
            "architecture": name,
            "num_classes": classes,
            "classifier": classifier,
            # ImageNet names belong to the pretrained head only (a resized head is trained from scratch).
            "pretrained_categories": _imagenet_names if classes == pretrained_classes == 1000 else None,
        },
    )
