"""Faithfulness: deletion and insertion curves (Petsiuk et al. 2018) of several methods, with their AUC and
the random-order curve as reference."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

import saliency_core as sc
from saliency_core.methods.context import ProgressFn
from ui import cards, results, state
from ui.cards import CurveEntry
from ui.evaluate import common
from ui.text import md
from ui.view import View
from ui.widgets.progress import Job
from ui.widgets.variants import Variant

KINDS = ("deletion", "insertion")
SUBSTRATE_HELP = (
    "What removed pixels become: a blurred copy of the image (the RISE paper's choice), black, or the "
    "image's mean colour. Insertion starts from it and puts the original pixels back."
)
RANDOM = "random"


def curve_key(view: View, method: str, params: dict, kind: str, steps: int, substrate: str) -> tuple:
    return ("curve", *cards.view_key(view), method, results.params_key(params), kind, steps, substrate)


def _entries(view: View, variant: Variant, steps: int, substrate: str) -> dict[str, CurveEntry | None]:
    found = cards.store()
    return {
        k: found.get(curve_key(view, variant.info.id, variant.params, k, steps, substrate)) for k in KINDS
    }


def _random(view: View, steps: int, substrate: str) -> dict[str, CurveEntry | None]:
    found = cards.store()
    return {k: found.get(curve_key(view, RANDOM, {}, k, steps, substrate)) for k in KINDS}


def section(view: View) -> None:
    st.caption(
        "Remove the pixels a map ranks highest, step by step, and watch the target's score: a faithful map "
        "makes it **fall fast** (low deletion AUC). Put them back onto a blank substrate: it should **rise "
        "fast** (high insertion AUC). A random pixel order is the reference every map should beat."
    )
    if common.no_target(view):
        return
    variants = common.choose_methods(view, state.FAITH_METHODS)
    left, right = st.columns(2, gap="medium")
    st.session_state.setdefault(state.FAITH_STEPS, 20)
    steps = left.slider(
        "Steps",
        5,
        100,
        step=5,
        key=state.FAITH_STEPS,
        help="How many equal shares of the pixels are removed (or inserted) one after another; each step is "
        "one forward pass (batched).",
    )
    st.session_state.setdefault(state.FAITH_SUBSTRATE, "blur")
    substrate = right.segmented_control(
        "Substrate",
        list(sc.metrics.SUBSTRATES),
        key=state.FAITH_SUBSTRATE,
        required=True,
        help=SUBSTRATE_HELP,
    )
    common.show_cancelled()
    if not variants:
        st.info("Choose at least one method.")
        return
    _compute(view, variants, int(steps), str(substrate))
    _show(view, variants, int(steps), str(substrate))


def _compute(view: View, variants: Sequence[Variant], steps: int, substrate: str) -> None:
    """The Run box while curves are missing; runs them when asked."""
    missing = [v for v in variants if None in _entries(view, v, steps, substrate).values()]
    random_missing = None in _random(view, steps, substrate).values()
    if not missing and not random_missing:
        return
    key = tuple(curve_key(view, v.info.id, v.params, "deletion", steps, substrate) for v in missing)
    key = (*key, random_missing, steps, substrate)
    curves = 2 * (len(missing) + int(random_missing))
    maps = [v for v in missing if results.lookup(view, v.info, v.params) is None]
    box = st.empty()
    with box.container(border=True):
        lines = [f"{curves} curves to compute: {curves * (steps - 1)} forward passes."]
        if maps:
            lines += [
                f"- map of **{md(v.label)}**: {md(results.estimate_text(view, v.info, v.params)[0], limit=None)}"
                for v in maps
            ]
        else:
            lines.append("The maps are already computed in this session.")
        st.markdown("\n".join(lines))
        common.run_button(state.FAITH_PENDING, key, f"Compute {curves} curves")
    if results.should_run(state.FAITH_PENDING, key, auto=False):
        jobs = [_method_job(view, v, steps, substrate) for v in missing]
        if random_missing:
            jobs.append(_random_job(view, steps, substrate))
        done = common.run_jobs(state.FAITH_PENDING, jobs)
        if all(d is not None for d in done):
            box.empty()


def _method_job(view: View, variant: Variant, steps: int, substrate: str) -> Job:
    def work(progress: ProgressFn) -> bool:
        needs_map = results.lookup(view, variant.info, variant.params) is None
        parts = 3 if needs_map else 2
        result = common.map_for(view, variant, common.part(progress, 0, 1 / parts))
        for n, kind in enumerate(KINDS, start=parts - 2):
            if cards.store().get(curve_key(view, variant.info.id, variant.params, kind, steps, substrate)):
                continue
            metric = sc.metrics.deletion if kind == "deletion" else sc.metrics.insertion
            curve = metric(
                view.model,
                view.x,
                view.target,
                result.map,
                steps=steps,
                substrate=substrate,
                progress=common.part(progress, n / parts, (n + 1) / parts),
            )
            entry = CurveEntry(variant.label, variant.info.id, dict(variant.params), steps, curve)
            cards.store().put(curve_key(view, variant.info.id, variant.params, kind, steps, substrate), entry)
        return True

    key = ("faithfulness", curve_key(view, variant.info.id, variant.params, "both", steps, substrate))
    return Job(variant.label, work, key=key)


def _random_job(view: View, steps: int, substrate: str) -> Job:
    def work(progress: ProgressFn) -> bool:
        for n, kind in enumerate(KINDS):
            key = curve_key(view, RANDOM, {}, kind, steps, substrate)
            if cards.store().get(key):
                continue
            curve = sc.metrics.random_curve(
                view.model,
                view.x,
                view.target,
                kind,
                steps=steps,
                substrate=substrate,
                seed=0,
                progress=common.part(progress, n / 2, (n + 1) / 2),
            )
            cards.store().put(key, CurveEntry("Random order", RANDOM, {"seed": 0}, steps, curve))
        return True

    return Job(
        "Random order", work, key=("faithfulness", curve_key(view, RANDOM, {}, "both", steps, substrate))
    )


def _show(view: View, variants: Sequence[Variant], steps: int, substrate: str) -> None:
    done = {v.label: _entries(view, v, steps, substrate) for v in variants}
    done = {label: e for label, e in done.items() if None not in e.values()}
    reference = _random(view, steps, substrate)
    if not done:
        return
    columns = st.columns(2)
    for column, kind in zip(columns, KINDS):
        better = "lower" if kind == "deletion" else "higher"
        figure = sc.metrics.curves_figure(
            {label: e[kind].curve for label, e in done.items()},
            reference=reference[kind].curve if reference[kind] else None,
            title=f"{kind.capitalize()} ({better} AUC is better)",
        )
        figure.update_layout(height=380, legend={"orientation": "h", "y": -0.3})
        column.plotly_chart(figure, config={"displaylogo": False})
    rows = []
    random_auc = {k: reference[k].curve.auc if reference[k] else None for k in KINDS}
    for label, e in done.items():
        deletion, insertion = e["deletion"].curve.auc, e["insertion"].curve.auc
        rows.append(
            {
                "Method": label,
                "Deletion AUC ↓": round(deletion, 4),
                "Insertion AUC ↑": round(insertion, 4),
                "Beats random": _verdict(deletion, insertion, random_auc),
            }
        )
    if all(random_auc.values()):
        rows.append(
            {
                "Method": "Random order (reference)",
                "Deletion AUC ↓": round(random_auc["deletion"], 4),
                "Insertion AUC ↑": round(random_auc["insertion"], 4),
                "Beats random": "",
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption(
        f"Score: {_score_text(view)} · {steps} steps of {100 / steps:.0f}% of the pixels · substrate: {substrate}. "
        "AUC is the area under each curve (trapezoid rule, fractions 0 to 1): lower is better for deletion, "
        "higher for insertion; *Beats random* says which of the two beat the random pixel order."
    )


def _verdict(deletion: float, insertion: float, random_auc: dict[str, float | None]) -> str:
    if random_auc["deletion"] is None or random_auc["insertion"] is None:
        return ""
    ok = {"deletion": deletion < random_auc["deletion"], "insertion": insertion > random_auc["insertion"]}
    if all(ok.values()):
        return "both"
    if not any(ok.values()):
        return "neither"
    return " ".join(f"{k} only" for k, v in ok.items() if v)


def _score_text(view: View) -> str:
    if view.model.task == "classification":
        return f"softmax probability of {view.target_label}"
    return f"the {view.model.task} model's score of {view.target_label}"
