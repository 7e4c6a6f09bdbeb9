"""Running a small evaluation on the generated scenes as a background job of the engine, under a progress
bar with Cancel; its tables land in a folder under the evaluation root, which is then opened.

The job is keyed by the run's folder, so leaving the page (or a second tab) attaches to the same run, and
Cancel detaches this session (the run stops when nobody else waits for it). Every finished map is in the
part files at once: running the same settings again resumes, and a finished run opens without a model pass.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

import saliency_core as sc
from saliency_core.dataset import scenes_run
from saliency_core.dataset.scenes_run import MAX_SCENES, ScenesRun
from saliency_core.methods.context import ProgressFn
from ui import resources, results, state
from ui.benchmark import load
from ui.text import md
from ui.widgets.progress import watch_jobs

MAX_METHODS = 8
DEFAULT_SCENES = 10
DEFAULT_STEPS = 20
MAX_STEPS = 200


def _weights(info: sc.ModelInfo) -> str:
    # Scenes runs use the bundled weights; without them (a stripped install) the random-init model.
    return "default" if info.weights_available else "none"


def form() -> ScenesRun | None:
    """The run's pickers; the run they describe (None when no model can be evaluated on the scenes)."""
    infos = [i for i in (resources.model_info(m) for m in scenes_run.scene_models()) if i is not None]
    if not infos:
        st.info("No model trained on the generated scenes is installed.")
        return None
    titles = {i.id: i.title for i in infos}
    state.default(state.BENCH_MODEL, infos[0].id, allowed=list(titles))
    model_id = st.selectbox("Model", list(titles), key=state.BENCH_MODEL, format_func=titles.get)
    info = next(i for i in infos if i.id == model_id)
    weights = _weights(info)
    try:
        model = resources.load_model(model_id, "random" if weights == "none" else "default")
    except sc.SaliencyError as exc:
        st.error(f"The model cannot be loaded: {md(exc, limit=None)}")
        return None
    methods = {m.id: m.title for m in resources.methods(model)}
    featured = [m for m in resources.featured("evaluate", model.task) if m in methods] or list(methods)[:2]
    chosen = [m for m in st.session_state.get(state.BENCH_METHODS) or [] if m in methods]
    st.session_state[state.BENCH_METHODS] = chosen or featured  # kept choices that explain this model
    picked = st.multiselect(
        "Methods",
        list(methods),
        key=state.BENCH_METHODS,
        format_func=methods.get,
        max_selections=MAX_METHODS,
        help="Each with its default parameters; the random-map baseline is always added.",
    )
    columns = st.columns(2)
    state.default(state.BENCH_SCENES, DEFAULT_SCENES)
    scenes = columns[0].number_input(
        "Scenes",
        1,
        MAX_SCENES,
        step=1,
        key=state.BENCH_SCENES,
        help="Generated scenes with exact object masks.",
    )
    top = int(min(MAX_STEPS, sc.limits().max_metric_steps))
    state.default(state.BENCH_STEPS, min(DEFAULT_STEPS, top))
    steps = columns[1].slider(
        "Steps", 2, top, key=state.BENCH_STEPS, help="Points of each deletion and insertion curve."
    )
    if weights == "none":
        st.warning("This model's weights are not installed: the run uses random init.")
    return ScenesRun(model_id, tuple(picked), int(scenes), int(steps), weights)


def _request(run: ScenesRun) -> None:
    st.session_state[state.BENCH_PENDING] = run
    st.session_state.pop(state.cancelled_run(state.BENCH_PENDING), None)


def _job_key(run: ScenesRun, root: Path) -> tuple:
    return ("benchmark", str(root.resolve()), run.folder_name())


def _work(run: ScenesRun, root: Path) -> sc.Work:
    def work(progress: ProgressFn, cancel: threading.Event) -> str:
        return str(scenes_run.run_scenes(run, root, progress=progress, cancel=cancel.is_set))

    return work


def section() -> None:
    """The form and its Run button (or Open, when the same run has finished before)."""
    run = form()
    root = load.root()
    if run is not None:
        done = scenes_run.finished(run, root) if run.methods else None
        st.button(
            "Open the finished run" if done else "Run",
            key=f"{state.ACTION_PREFIX}benchmark.run",
            type="primary",
            icon=":material/folder_open:" if done else ":material/play_arrow:",
            on_click=_request,
            args=(run,),
            disabled=not run.methods,
            help=f"Tables go to {run.folder_name()} under the evaluation folder; the same settings again "
            "resume the run or reopen it.",
        )


def progress() -> None:
    """While a run is asked for, its progress bar with Cancel (below the tabs, so that it is in sight
    whichever tab is open when the page is come back to); a finished run is opened."""
    if st.session_state.pop(state.BENCH_CANCELLED, None):
        st.info("Cancelled. The finished maps are kept: Run again to resume.", icon=":material/stop_circle:")
    pending = st.session_state.get(state.BENCH_PENDING)
    if isinstance(pending, ScenesRun):
        _go(pending, load.root())


def _go(run: ScenesRun, root: Path) -> None:
    """Open the run's tables, computing what is missing first as an engine job this page polls."""
    done = scenes_run.finished(run, root)
    if done is None:
        try:
            run.check()
            job = sc.submit_job(
                _job_key(run, root),
                _work(run, root),
                label=f"Benchmark on {run.scenes} scenes",
                group=("benchmark", run.model),
                watcher=results.watcher(),
            )
        except sc.SaliencyError as exc:  # refused before any work (a limit, a bad setting)
            st.session_state[state.BENCH_PENDING] = None
            st.error(md(exc, limit=None), icon=":material/error:")
            return
        [value] = watch_jobs(
            state.BENCH_PENDING, [(job.label, job)], state.BENCH_CANCELLED, results.watcher()
        )
        done = Path(value) if value else None
    st.session_state[state.BENCH_PENDING] = None
    if done is not None:
        load.open_folder(done, origin="run")
