"""Batch `explain` over folders, globs and sample ids: the maps it writes are `sc.attribute`'s, a bad image is
reported and skipped while the others go on, and the exit code says how it went."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import saliency_core as sc
from saliency_core.cli import main


def _scene(name: str):
    return next(s for s in sc.list_samples() if s.id == name)


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("scene_01", "scene_02"):
        shutil.copy(_scene(name).path, images / f"{name}.png")
    (images / "notes.txt").write_text("not an image, and not listed: a folder's non-image files are ignored")
    return images


def test_maps_equal_sc_attribute_for_the_same_inputs(folder, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(folder), "--method", "gradcam", "--method", "gradient", "--out", str(out)])
    assert code == 0
    model = sc.load_model("shapes_demo")
    for name in ("scene_01", "scene_02"):
        x = model.preprocess(sc.load_image(folder / f"{name}.png"))
        target = model.predict(x)[0]
        for method in ("gradcam", "gradient"):
            expected = sc.attribute(model, x, method, target).map.numpy()
            saved = np.load(out / name / f"{method}.npz")
            np.testing.assert_allclose(saved["map"], expected, rtol=0, atol=1e-6)
            card = json.loads((out / name / f"{method}.json").read_text())
            # As in the app's card: `index` is the target's place among the predictions, `class_index` its class.
            assert card["target"]["index"] == 0 and card["target"]["class_index"] == target.index
            assert card["method"]["id"] == method and card["page"] == "cli"
            assert card["image"]["source"] == "file" and card["image"]["path"] == str(folder / f"{name}.png")
            assert card["maps"][0]["family"] == next(m.family for m in sc.list_methods() if m.id == method)
            assert set(card) >= {
                "image",
                "model",
                "target",
                "method",
                "seed",
                "timings",
                "passes",
                "versions",
            }
            assert (out / name / f"{method}.png").stat().st_size > 0
    err = capsys.readouterr().err
    assert "[2/2] scene_02" in err  # the plain counter (stderr is not a terminal here)


def test_one_corrupt_image_is_reported_and_the_others_processed(folder, tmp_path, capsys) -> None:
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    assert main(["explain", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert [e["stem"] for e in summary["images"]] == ["scene_01", "scene_02"]
    assert len(summary["skipped"]) == 1 and "broken.png" in summary["skipped"][0]["source"]
    assert (out / "scene_01" / "gradcam.npz").is_file() and not (out / "broken").exists()


def test_all_bad_is_exit_1_and_a_folder_never_gives_a_traceback(tmp_path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    (bad / "b.jpg").write_bytes(b"")
    assert main(["explain", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "a.png" in err and "b.jpg" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["explain", str(empty), "--out", str(tmp_path / "o")]) == 1
    assert "holds no image files" in capsys.readouterr().err


def test_globs_sample_ids_and_clashing_stems(tmp_path, capsys) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(_scene("scene_01").path, tmp_path / sub / "x.png")
    out = tmp_path / "out"
    code = main(["explain", str(tmp_path / "*" / "x.png"), "scene_03", "--out", str(out)])
    assert code == 0
    stems = [e["stem"] for e in json.loads((out / "summary.json").read_text())["images"]]
    assert stems == ["x", "x-2", "scene_03"]
    assert (out / "x-2" / "gradcam.png").is_file()


def test_metrics_in_cards_use_the_sample_mask_or_say_why_not(tmp_path, capsys) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(_scene("scene_02").path, plain / "nomask.png")
    out = tmp_path / "out"
    args = ["--metrics", "deletion,insertion,pointing", "--steps", "3", "--out", str(out)]
    assert main(["explain", "scene_01", str(plain / "nomask.png"), *args]) == 0
    card = json.loads((out / "scene_01" / "gradcam.json").read_text())
    model = sc.load_model("shapes_demo")
    x = model.preprocess(sc.load_image(_scene("scene_01").path))
    target = model.predict(x)[0]
    sal = sc.attribute(model, x, "gradcam", target).map
    assert card["metrics"]["deletion"]["auc"] == pytest.approx(
        sc.metrics.deletion(model, x, target, sal, steps=3).auc
    )
    assert card["metrics"]["pointing"] == sc.metrics.pointing_game(sal, _scene("scene_01").mask())
    assert (
        "no mask"
        in json.loads((out / "nomask" / "gradcam.json").read_text())["metrics"]["pointing"]["skipped"]
    )
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(_scene("scene_02").mask_path, masks / "nomask.png")
    assert main(["explain", str(plain), "--masks", str(masks), *args]) == 0
    assert isinstance(json.loads((out / "nomask" / "gradcam.json").read_text())["metrics"]["pointing"], bool)


def test_a_mask_beside_an_image_is_its_mask_and_not_an_image(folder, tmp_path, capsys) -> None:
    shutil.copy(_scene("scene_01").mask_path, folder / "scene_01_mask.png")
    out = tmp_path / "out"
    assert main(["explain", str(folder), "--metrics", "pointing", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [e["stem"] for e in summary["images"]] == ["scene_01", "scene_02"]  # the mask is no image
    assert not (out / "scene_01_mask").exists()
    model = sc.load_model("shapes_demo")
    x = model.preprocess(sc.load_image(folder / "scene_01.png"))
    sal = sc.attribute(model, x, "gradcam", model.predict(x)[0]).map
    card = json.loads((out / "scene_01" / "gradcam.json").read_text())
    assert card["metrics"]["pointing"] == sc.metrics.pointing_game(sal, _scene("scene_01").mask())
    skipped = json.loads((out / "scene_02" / "gradcam.json").read_text())["metrics"]["pointing"]["skipped"]
    assert "no mask" in skipped and "scene_02_mask.png" in skipped
    # A glob leaves the mask out too; `evaluate --images` reads the same sources.
    from saliency_core.dataset import expand_sources, file_items

    globbed, _ = expand_sources([str(folder / "*.png")])
    assert [s.path.name for s in globbed] == ["scene_01.png", "scene_02.png"]
    items, _ = file_items(globbed)
    assert [i.mask_path for i in items] == [str(folder / "scene_01_mask.png"), None]
    # A file named on its own is an image; with --masks DIR only DIR's masks count.
    named, _ = expand_sources([str(folder / "scene_01_mask.png")])
    assert [s.path.name for s in named] == ["scene_01_mask.png"]
    empty = tmp_path / "no_masks"
    empty.mkdir()
    assert expand_sources([str(folder)], masks=empty)[0][0].mask_path is None


def test_the_number_of_images_is_bounded_by_the_limits(folder, tmp_path, capsys) -> None:
    previous = sc.set_limits(max_batch_images=1)
    try:
        assert main(["explain", str(folder), "--out", str(tmp_path / "o")]) == 1
    finally:
        sc.set_limits(previous)
    assert "max_batch_images" in capsys.readouterr().err
