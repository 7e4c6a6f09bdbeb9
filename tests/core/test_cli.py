"""The command line works end to end on the bundled demo model and reports bad input plainly."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from saliency_core.cli import main


def test_explain_writes_overlays_maps_and_a_summary(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "explain",
            "scene_01",
            "--method",
            "gradcam",
            "--method",
            "occlusion",
            "--param",
            "patch=56",
            "--param",
            "stride=56",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    # Layout since batch explain: OUT/<image stem>/<method>.{npz,png,json}, OUT/summary.json over images
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["images"]
    assert entry["predictions"][0]["label"] == "square"
    occlusion = next(r for r in entry["results"] if r["method"] == "occlusion")
    # 16 windows; the unoccluded score comes from the forward pass Grad-CAM already made
    assert (
        occlusion["params"]["patch"] == 56 and occlusion["forward_passes"] == 16 + 2
    )  # and the incremental plan's two
    gradcam = np.load(out / "scene_01" / "gradcam.npz")["map"]
    assert gradcam.shape == (224, 224) and np.ptp(gradcam) > 0
    assert Image.open(out / "scene_01" / "gradcam.png").size == (224, 224)
    card = json.loads((out / "scene_01" / "gradcam.json").read_text())
    assert card["image"]["sha256"] == entry["image_sha256"] and card["method"]["id"] == "gradcam"
    printed = json.loads(capsys.readouterr().out)
    assert printed["images"][0]["image_sha256"] == entry["image_sha256"]


def test_listing_commands(capsys) -> None:
    assert main(["models"]) == 0
    assert "shapes_demo" in capsys.readouterr().out
    assert main(["methods"]) == 0
    assert "integrated_gradients" in capsys.readouterr().out


def test_errors_are_messages_not_tracebacks(tmp_path, capsys) -> None:
    # Exit code 1: nothing was done (2 now means some images were skipped and others done)
    assert main(["explain", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 1
    assert "no bundled sample" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert main(["explain", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "not an image" in capsys.readouterr().err
    assert main(["explain", "scene_01", "--method", "gradcamm", "--out", str(tmp_path)]) == 1
    assert "Unknown method" in capsys.readouterr().err
