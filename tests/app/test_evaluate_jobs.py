"""Evaluate's long metrics are engine jobs too: leaving the page during faithfulness curves and coming back
attaches to the same jobs (their progress went on meanwhile), and the curves are then shown."""

from __future__ import annotations

import time

import pytest
from app_helpers import slow_batches, texts

import saliency_core as sc

EVALUATE = "pages/2_Evaluate.py"
SECONDS_PER_IMAGE = 0.02  # batched passes slowed to at least this, so the curves outlast a page visit


@pytest.fixture(autouse=True)
def _slow_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_batches(monkeypatch, SECONDS_PER_IMAGE)


def _curve_jobs() -> list[sc.Job]:
    return [j for j in sc.get_engine().jobs.jobs() if j.label in ("Grad-CAM", "Random order")]


def test_leaving_evaluate_during_curves_and_coming_back_attaches(app) -> None:
    at = app(page=EVALUATE)
    at.multiselect(key="evaluate.faith.methods").set_value(["gradcam"]).run()
    at.slider(key="evaluate.faith.steps").set_value(100).run()
    at.button(key="act.evaluate.faith.pending").click()
    with pytest.raises(RuntimeError, match="timed out"):  # the page is left while the curves run
        at.run(timeout=3)
    running = [j for j in _curve_jobs() if not j.done]
    assert running, "no curve job runs in the background"
    at.switch_page("pages/5_Settings.py").run()
    assert not at.exception
    left_at = sum(j.progress.fraction for j in running)
    time.sleep(1.0)
    assert sum(j.progress.fraction for j in running) > left_at or all(j.done for j in running)
    at.switch_page(EVALUATE).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert all(j.done and j.state == "done" for j in running), [
        (j.state, j.progress, texts(at)[-300:]) for j in running
    ]
    assert len(at.main.get("plotly_chart")) == 2  # deletion and insertion, computed once
    assert "curves to compute" not in texts(at)
    assert len({id(j) for j in _curve_jobs()}) == len(_curve_jobs())
