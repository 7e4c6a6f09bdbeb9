"""Bundled samples: index, files, masks, licences, and that synthetic samples regenerate byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from saliency_core.samples import Sample, assets_dir, list_samples
from saliency_core.zoo import HELDOUT_SEED_START, SAMPLE_SEED_START
from saliency_core.zoo.scenes import SHAPE_CLASSES, make_scene

REPO_ASSETS = Path(__file__).resolve().parents[2] / "assets"


@pytest.fixture
def samples(monkeypatch: pytest.MonkeyPatch) -> list[Sample]:
    monkeypatch.delenv("SALIENCY_ASSETS", raising=False)
    return list_samples()


def test_assets_dir_defaults_to_repository_assets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SALIENCY_ASSETS", raising=False)
    assert assets_dir() == REPO_ASSETS.resolve()


def test_counts_and_kinds(samples: list[Sample]) -> None:
    photos = [s for s in samples if s.kind == "photo"]
    synthetic = [s for s in samples if s.kind == "synthetic"]
    assert len(photos) >= 6
    assert len(synthetic) >= 8
    assert len(photos) + len(synthetic) == len(samples)
    assert len({s.id for s in samples}) == len(samples)
    assert {s.suggested_model for s in photos} >= {
        "resnet50",
        "keypointrcnn_resnet50_fpn",
        "fasterrcnn_resnet50_fpn_v2",
    }
    assert all(s.suggested_model == "shapes_demo" for s in synthetic)


def test_files_exist_and_are_small(samples: list[Sample]) -> None:
    for s in samples:
        assert s.path.is_file(), s.path
        assert s.path.stat().st_size < 300_000, s.path
        assert s.title


def test_photos_load_with_credit(samples: list[Sample]) -> None:
    licences = (REPO_ASSETS / "samples" / "LICENSES.md").read_text(encoding="utf-8")
    for s in samples:
        if s.kind != "photo":
            continue
        im = s.image()
        assert im.mode == "RGB" and min(im.size) >= 200
        assert s.mask() is None and s.mask_path is None and s.label is None
        assert s.credit and ("public domain" in s.credit.lower() or "cc0" in s.credit.lower())
        assert s.path.name in licences


def test_synthetic_masks_match_images(samples: list[Sample]) -> None:
    labels = set()
    for s in samples:
        if s.kind != "synthetic":
            continue
        assert s.mask_path is not None and s.mask_path.is_file()
        mask = s.mask()
        im = s.image()
        assert isinstance(mask, np.ndarray) and mask.dtype == bool
        assert mask.shape == (im.height, im.width)
        assert 0 < mask.mean() < 0.5
        assert s.label in SHAPE_CLASSES
        labels.add(s.label)
    assert labels == set(SHAPE_CLASSES)


def test_synthetic_samples_regenerate_exactly(samples: list[Sample]) -> None:
    index = json.loads((REPO_ASSETS / "samples" / "index.json").read_text(encoding="utf-8"))
    by_file = {e["file"]: e for e in index["samples"]}
    for s in samples:
        if s.kind != "synthetic":
            continue
        seed = by_file[s.path.name]["seed"]
        assert seed >= SAMPLE_SEED_START and seed >= HELDOUT_SEED_START + 500_000
        sc = make_scene(seed)
        assert np.array_equal(np.asarray(s.image()), sc.image), s.id
        assert np.array_equal(s.mask(), sc.mask), s.id
        assert s.label == sc.name


def test_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(folder / "a.png")
    Image.fromarray(np.eye(6, 8, dtype=np.uint8) * 255).save(folder / "a_mask.png")
    entry = {
        "file": "a.png",
        "title": "A",
        "kind": "synthetic",
        "suggested_model": "shapes_demo",
        "mask": "a_mask.png",
    }
    (folder / "index.json").write_text(json.dumps({"samples": [entry]}))
    monkeypatch.setenv("SALIENCY_ASSETS", str(tmp_path))
    assert assets_dir() == tmp_path.resolve()
    (s,) = list_samples()
    assert s.id == "a" and s.label is None and s.credit is None
    assert s.image().size == (8, 6)
    np.testing.assert_array_equal(s.mask(), np.eye(6, 8, dtype=bool))


def test_missing_index_gives_empty_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALIENCY_ASSETS", str(tmp_path))
    assert list_samples() == []
