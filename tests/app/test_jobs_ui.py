"""Long runs are engine jobs: leaving the page during one and coming back attaches to the same job (its
progress continues, one computation), and a share link to a slow view the engine has cached shows the
map at once, with no Run press."""

from __future__ import annotations

import time

import pytest
from app_helpers import computed, demo_weights, slow_batches, texts

import saliency_core as sc
from ui import state

MASKS = 1200  # RISE masks: slow enough (pinned at 0.1 s a pass: about 2 min) to wait for Run
SECONDS_PER_IMAGE = 0.01  # batched passes slowed to at least this, so a run outlasts a 4 s page visit


@pytest.fixture(autouse=True)
def _slow_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_batches(monkeypatch, SECONDS_PER_IMAGE)


def _link(masks: int) -> dict[str, str]:
    link = {"sample": "scene_01", "model": "shapes_demo", "method": "rise", "p.masks": str(masks)}
    if demo_weights() == "random":
        link["weights"] = "random"
    return link


def _running_rise() -> list[sc.Job]:
    return [j for j in sc.get_engine().jobs.jobs() if j.label == "RISE" and not j.done]


def test_leaving_during_a_long_run_and_coming_back_attaches_to_the_same_job(app) -> None:
    at = app(query=_link(MASKS))
    assert "Press **Run** to compute RISE" in texts(at)
    engine = sc.get_engine()
    before = engine.forward_count
    at.button(key=f"{state.ACTION_PREFIX}run").click()
    # The page is left while the run goes on: its script stops (here: at the run's time limit).
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=4)
    (job,) = _running_rise()
    deadline = time.monotonic() + 60
    while job.progress.fraction < 0.05 and time.monotonic() < deadline:
        time.sleep(0.1)
    at.switch_page("pages/5_Settings.py").run()
    assert not at.exception
    left_at = job.progress.fraction
    assert left_at > 0 and not job.done, "the job stopped when its page was left"
    time.sleep(0.5)
    assert job.progress.fraction > left_at, "the job does not run on while nobody watches"
    # Back on Explore: the same job is polled to the end, not restarted.
    at.switch_page("app.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert job.done and job.state == "done"
    assert _running_rise() == []
    shown = texts(at)
    assert "RISE overlay" in shown and "Press **Run**" not in shown
    assert computed(at) == 1
    passes = engine.forward_count - before
    assert MASKS <= passes < 1.5 * MASKS, f"{passes} images through the model: computed more than once"


def test_a_second_session_opening_a_running_view_attaches_to_its_job(app) -> None:
    masks = 800
    first = app(query=_link(masks))
    engine = sc.get_engine()
    before = engine.forward_count
    first.button(key=f"{state.ACTION_PREFIX}run").click()
    with pytest.raises(RuntimeError, match="timed out"):
        first.run(timeout=4)
    (job,) = _running_rise()
    # A second tab (another session, which never pressed Run) opens the same view: it shows the run's
    # progress and then its map, computed once.
    second = app(query=_link(masks))
    assert job.done and job.state == "done" and job.watchers >= {first.session_state[state.JOB_WATCHER]}
    shown = texts(second)
    assert "RISE overlay" in shown and "Press **Run**" not in shown
    assert computed(second) == 1
    passes = engine.forward_count - before
    assert masks <= passes < 1.5 * masks, f"{passes} images through the model: computed more than once"


def test_a_share_link_to_a_cached_slow_view_shows_the_map_without_run(app) -> None:
    first = app(query=_link(700))
    assert "Press **Run** to compute RISE" in texts(first)
    view = first.session_state[state.VIEW]
    known = first.session_state[state.REQUESTS]
    _, info, params = next(r for r in known.values() if r[1].title == "RISE")
    # Another user (or the job of a page left earlier) computed this view: it is in the engine's cache.
    sc.attribute(view.model, view.x, info.id, view.target, **params)
    engine = sc.get_engine()
    before = engine.forward_count
    at = app(query=_link(700))
    shown = texts(at)
    assert "RISE overlay" in shown and "Press **Run**" not in shown
    assert engine.forward_count == before  # served from the cache: no model pass
    (result,) = [r for _, r in at.session_state[state.RESULTS].matching(()) if r.title == "RISE"]
    assert result.engine_cached
