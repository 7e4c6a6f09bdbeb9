"""The Benchmark page through AppTest: opening an evaluation folder, a malformed upload, a small run on the
generated scenes, and a per-image row opened in Explore."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from app_helpers import slow_batches, texts

import saliency_core as sc
from saliency_core.dataset import summarise
from saliency_core.dataset.scenes_run import PARTS, ScenesRun, finished, run_scenes, scene_png
from ui import state

BENCH = "pages/4_Benchmark.py"
SEED = 1_800_000


def _per_image(images: int = 12) -> pd.DataFrame:
    """A per-image table as `evaluate` writes it: scenes, two methods and the baseline."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(images):
        for method, shift in (("gradcam", 0.0), ("gradient", 0.15), ("random", 0.25)):
            rows.append(
                {
                    "image": f"scene-{SEED + i}",
                    "source": f"scene:{SEED + i}",
                    "sha256": "0" * 64,
                    "target_index": 2,
                    "target_label": "triangle",
                    "method": method,
                    "model": "shapes_demo",
                    "weights": "default",
                    "deletion": 0.1 + shift + 0.05 * rng.random(),
                    "insertion": 0.8 - shift + 0.05 * rng.random(),
                    "pointing": float(rng.random() < 0.8 - shift),
                    "energy_pointing": 0.3 - shift / 2 + 0.05 * rng.random(),
                    "sanity": float("nan"),
                    "seconds": 0.01,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("SALIENCY_EVAL_DIR", str(tmp_path))
    return tmp_path


def _board(at) -> pd.DataFrame:
    return at.main.dataframe[0].value


def test_opening_a_folder_shows_the_leaderboard_of_its_file(app, root) -> None:
    frame = _per_image()
    (root / "eval-a").mkdir()
    frame.to_parquet(root / "eval-a" / "per_image.parquet", index=False)
    at = app(page=BENCH)
    assert at.selectbox(key=state.BENCH_FOLDER).value == "eval-a"
    at.button(key="act.benchmark.open").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = summarise(pd.read_parquet(root / "eval-a" / "per_image.parquet")).set_index("method")
    board = _board(at)
    # ranked by deletion (lower is better), the baseline last
    assert board["Method"].tolist() == ["Grad-CAM", "Gradient (saliency)", "Random map (baseline)"]
    for shown, method in zip(board.itertuples(index=False), ["gradcam", "gradient", "random"]):
        row = board[board["Method"] == shown[0]].iloc[0]
        for metric, title in (("deletion", "Deletion AUC ↓"), ("insertion", "Insertion AUC ↑")):
            assert math.isclose(row[title], expected.loc[method, metric], rel_tol=0, abs_tol=1e-12)
            low, high = expected.loc[method, f"{metric}_low"], expected.loc[method, f"{metric}_high"]
            assert row[title.rsplit(" ", 1)[0] + " 95% interval"] == f"[{low:.3f}, {high:.3f}]"
    assert "Sanity similarity ↓" not in board.columns  # no image has it
    assert board["vs. random (Deletion AUC)"].tolist()[:2] == ["better", "better"]
    assert len(at.main.get("plotly_chart")) == 1
    at.selectbox(key=state.BENCH_METRIC).set_value("insertion").run()
    assert _board(at)["Method"].tolist()[0] == "Grad-CAM"
    assert "higher is better" in texts(at)
    rows = at.main.dataframe[1].value
    assert len(rows) == 24  # per-image rows of the two methods (the baseline filtered out by default)


def test_a_malformed_upload_is_an_error_and_keeps_the_page(app, root) -> None:
    (root / "eval-a").mkdir()
    _per_image(4).to_csv(root / "eval-a" / "per_image.csv", index=False)
    at = app(page=BENCH)
    at.button(key="act.benchmark.open").click().run()
    before = _board(at)
    for name, data in (
        ("per_image.csv", b"\x00\x01 not a table \xff\xfe"),
        ("per_image.parquet", b"PAR1 this is not parquet"),
        ("other.csv", b"a,b\n1,2\n"),
        ("bad.csv", b"image,method,deletion\nx,gradcam,oops\n"),
    ):
        at.file_uploader(key=state.BENCH_UPLOAD).set_value((name, data, "text/csv")).run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.error, name
        pd.testing.assert_frame_equal(_board(at), before)  # what was on show stays
    assert "not a per-image table" in texts(at) or "not numbers" in texts(at)
    good = _per_image(3).to_csv(index=False).encode()
    at.file_uploader(key=state.BENCH_UPLOAD).set_value(("mine.csv", good, "text/csv")).run()
    assert not at.error and "mine.csv" in texts(at)


def test_running_two_scenes_finishes_and_shows_the_leaderboard(app, root) -> None:
    at = app(page=BENCH)
    at.multiselect(key=state.BENCH_METHODS).set_value(["gradcam", "gradient"])
    at.number_input(key=state.BENCH_SCENES).set_value(2)
    at.slider(key=state.BENCH_STEPS).set_value(5).run()
    at.button(key="act.benchmark.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    board = _board(at)
    assert set(board["Method"]) == {"Grad-CAM", "Gradient (saliency)", "Random map (baseline)"}
    assert (board["Images"] == 2).all()
    folder = next(p for p in root.iterdir() if p.name.startswith("scenes-shapes_demo"))
    expected = summarise(pd.read_parquet(folder / "per_image.parquet")).set_index("method")
    row = board[board["Method"] == "Grad-CAM"].iloc[0]
    assert math.isclose(row["Deletion AUC ↓"], expected.loc["gradcam", "deletion"], abs_tol=1e-12)
    # the same settings again: the finished run opens at once, from its tables
    at.run()
    assert at.button(key="act.benchmark.run").label == "Open the finished run"
    (folder / "per_image.parquet").touch()
    at.session_state[state.BENCH_RESULT] = None
    at.button(key="act.benchmark.run").click().run()
    assert not at.error and _board(at)["Images"].tolist() == [2, 2, 2]


def test_choosing_a_row_opens_it_in_explore(app, root) -> None:
    (root / "eval-a").mkdir()
    _per_image(3).to_parquet(root / "eval-a" / "per_image.parquet", index=False)
    at = app(page=BENCH)
    at.button(key="act.benchmark.open").click().run()
    found = at.session_state[state.BENCH_RESULT]
    key = at.main.dataframe[1].key
    assert key.startswith(state.bench_rows(found.digest))
    rows = at.main.dataframe[1].value
    pick = 3  # scene-1800001, gradient
    assert (
        rows.iloc[pick]["image"] == f"scene-{SEED + 1}" and rows.iloc[pick]["method"] == "Gradient (saliency)"
    )
    at.session_state[key] = {"selection": {"rows": [pick], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Explore"
    assert at.session_state[state.MODEL] == "shapes_demo"
    assert at.session_state[state.METHOD] == "gradient"
    image = at.session_state[state.IMAGE]
    assert image.digest == hashlib.sha256(scene_png(SEED + 1)).hexdigest()
    view = at.session_state[state.VIEW]
    assert view.target is not None and view.target.index == 2 and view.target_label.startswith("triangle")
    assert found.digest


def test_a_cancelled_scenes_run_keeps_its_maps_and_the_rerun_resumes(tmp_path) -> None:
    run = ScenesRun("shapes_demo", ("gradcam", "gradient"), scenes=2, steps=4)
    asked = []

    def cancel() -> bool:  # asked before each map: stop after the first image's three rows
        asked.append(1)
        return len(asked) > 3

    with pytest.raises(sc.Cancelled):
        run_scenes(run, tmp_path, cancel=cancel)
    parts = {p: p.stat().st_mtime_ns for p in (tmp_path / PARTS).rglob("*.json") if p.name != "settings.json"}
    assert len(parts) == 3 and finished(run, tmp_path) is None
    folder = run_scenes(run, tmp_path)
    assert finished(run, tmp_path) == folder
    assert len(pd.read_parquet(folder / "per_image.parquet")) == 6
    assert all(p.stat().st_mtime_ns == t for p, t in parts.items())  # nothing computed twice


def test_leaving_during_a_run_and_coming_back_attaches_to_it(app, root, monkeypatch) -> None:
    slow_batches(monkeypatch, 0.03)  # the run outlasts the first script run
    at = app(page=BENCH)
    at.multiselect(key=state.BENCH_METHODS).set_value(["gradcam", "gradient"])
    at.number_input(key=state.BENCH_SCENES).set_value(2)
    at.slider(key=state.BENCH_STEPS).set_value(12).run()
    at.button(key="act.benchmark.run").click()
    with pytest.raises(RuntimeError, match="timed out"):  # the page is left while the run goes on
        at.run(timeout=1.5)
    jobs = [j for j in sc.get_engine().jobs.jobs() if j.label == "Benchmark on 2 scenes" and not j.done]
    assert len(jobs) == 1
    at.switch_page("pages/5_Settings.py").run()
    at.switch_page(BENCH).run()  # attaches to the same job and waits for it
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert jobs[0].state == "done" and (_board(at)["Images"] == 2).all()


def test_a_file_row_opens_from_under_the_root_only(app, root, tmp_path_factory) -> None:
    inside, outside = root / "images" / "a.png", tmp_path_factory.mktemp("elsewhere") / "b.png"
    inside.parent.mkdir()
    inside.write_bytes(scene_png(SEED + 5))
    outside.write_bytes(scene_png(SEED + 6))
    frame = _per_image(2).iloc[[0, 3]].reset_index(drop=True)  # gradcam rows of two images
    frame["source"] = [str(inside), str(outside)]
    (root / "files").mkdir()
    frame.to_csv(root / "files" / "per_image.csv", index=False)
    at = app(page=BENCH)
    at.button(key="act.benchmark.open").click().run()
    key = at.main.dataframe[1].key
    at.session_state[key] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert at.title[0].value == "Benchmark" and "not a file under" in texts(at)
    at.session_state[key] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and at.title[0].value == "Explore"
    assert at.session_state[state.IMAGE].digest == hashlib.sha256(inside.read_bytes()).hexdigest()
    assert at.session_state[state.METHOD] == "gradcam"
