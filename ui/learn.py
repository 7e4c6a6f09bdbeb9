"""The Learn page's sections: overview of all methods, and one method explained with a live example."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import display, params, resources, results, state
from ui.results import Result
from ui.text import md
from ui.view import View

AUTO_RUN_SECONDS = 2.0


def overview(view: View) -> None:
    """One row per method: family, what it needs, and its cost on the current model."""
    rows = []
    layers = view.model.layers()
    for info in resources.methods(view.model):
        text, _ = results.estimate_text(view, info, params.defaults(info, layers))
        rows.append(
            {
                "Method": info.title,
                "Family": resources.family_title(info.family),
                "Needs a target": "yes" if info.needs_target else "no",
                "Uses a layer": "yes" if info.uses_layer else "no",
                f"Cost on {view.info.id}": text.split(" (")[0],
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")
    missing = resources.unsupported(view.model)
    if missing:
        st.caption(
            md(f"Not listed for {view.info.id}: ")
            + "; ".join(f"**{md(m.title)}**: {md(why)}" for m, why in missing)
        )


def pick(view: View) -> sc.MethodInfo:
    infos = resources.methods(view.model)
    by_id = {m.id: m for m in infos}
    state.default(
        state.LEARN_METHOD,
        resources.first_featured("learn", list(by_id)),
        allowed=list(by_id),
    )
    chosen = st.selectbox(
        "Method",
        list(by_id),
        key=state.LEARN_METHOD,
        format_func=lambda i: f"{by_id[i].title} — {resources.family_title(by_id[i].family)}",
    )
    return by_id[chosen]


def section(view: View, info: sc.MethodInfo) -> None:
    """What the method computes, its parameters, cost, pitfalls and a live example."""
    found = info.lesson  # declared in the method's own file
    st.header(info.title)
    with st.container(horizontal=True, gap="small"):
        st.badge(resources.family_title(info.family), color="violet")
        st.badge("needs a target" if info.needs_target else "ignores the target", color="gray")
        if info.uses_layer:
            st.badge("uses a layer", color="gray")
    st.markdown(f"**What it computes.** {found.computes if found else info.description}")
    if found and found.formula:
        st.latex(found.formula)
    st.markdown("**Parameters.**" + ("" if info.params else " None."))
    for p in info.params:
        extra = found.params.get(p["name"], "") if found else ""
        default = p["default"] if p["type"] != "layer" else view.model.layers()[0]
        st.markdown(f"- `{p['name']}` (default `{default}`): {p['help']} {extra}".rstrip())
    layers = view.model.layers()
    text, _ = results.estimate_text(view, info, params.defaults(info, layers))
    cost = f"{found.cost} " if found and found.cost else ""
    st.markdown(f"**Cost.** {cost}On {view.info.title}: {text}.")
    if found and found.pitfalls:
        st.markdown("**Known pitfalls.**\n" + "\n".join(f"- {p}" for p in found.pitfalls))
    coincide(view, info)
    paper = (found.paper if found else "") or getattr(info, "reference", "")
    if paper:
        st.caption(f"Reference: {paper}")
    example(view, info, found.compare_with if found else None)


def coincide(view: View, info: sc.MethodInfo) -> None:
    """Say when the method gives the same map as others on this model, and why (checked on the maps)."""
    if not sc.metrics.equivalences_of(info.id) or view.target is None:
        return
    try:
        found = sc.metrics.coincidences(view.model, view.x, info.id, view.target)
    except sc.SaliencyError as exc:
        st.caption(f"Whether {md(info.title)} coincides with other methods here cannot be checked: {md(exc)}")
        return
    for item in found:
        st.info(f"**Same map, different names.** {md(item.sentence(), limit=None)}", icon=":material/join:")
    if not found:
        rules = "; ".join(e.when for e in sc.metrics.equivalences_of(info.id))
        st.caption(
            f"{md(info.title)} gives the same map as other methods when {md(rules, limit=None)}; "
            "on this model and layer it does not."
        )


def example(view: View, info: sc.MethodInfo, compare_with: str | None) -> None:
    """The method (and its reference, if any) with default parameters on the current image and target."""
    st.subheader("Live example")
    layers = view.model.layers()
    jobs = [(info.title, info, params.defaults(info, layers))]
    reference = resources.method(compare_with) if compare_with else None
    model_free = reference is not None and not reference.needs_target and not reference.uses_layer
    if reference is not None:
        label = f"{reference.title} ({'reference' if model_free else 'for comparison'})"
        jobs.append((label, reference, params.defaults(reference, layers)))
    keys = tuple(results.request_key(view, m, p) for _, m, p in jobs)
    auto = all(results.is_cheap(view, m, p, AUTO_RUN_SECONDS / len(jobs)) for _, m, p in jobs)
    stored = [results.store().get(k) for k in keys]
    if any(r is None for r in stored):
        slot = st.empty()
        slot.button(
            "Run the example",
            key=f"{state.ACTION_PREFIX}learn.run",
            icon=":material/play_arrow:",
            on_click=results.request,
            args=(state.LEARN_PENDING, keys),
        )
        if results.should_run(state.LEARN_PENDING, keys, auto):
            st.session_state[state.LEARN_PENDING] = keys
            stored = results.run_with_progress(view, jobs, state.LEARN_PENDING)
            if all(r is not None for r in stored):
                slot.empty()
    results.show_cancelled()
    done = [(label, r) for (label, _, _), r in zip(jobs, stored) if r is not None]
    if not done:
        st.caption(
            f"On {md(view.image.name)}, explaining **{md(view.target_label)}** with default parameters."
        )
        return
    shown = display.current()
    columns = st.columns(1 + len(done))
    caption = f"{md(view.image.name)} · target {md(view.target_label)}"
    columns[0].image(view.picture, caption=caption, width="stretch")
    for column, (label, result) in zip(columns[1:], done):
        column.image(display.overlay(view, result, shown), caption=label, width="stretch")
    if len(done) == 2:
        _agreement(done[0][1], done[1][1], model_free)
    st.caption(
        f"Drawn with the display settings of the Explore page ({shown.cmap}, sign {shown.sign}, "
        f"opacity {shown.alpha:.2f})."
    )


def _agreement(first: Result, second: Result, model_free: bool) -> None:
    """How much the two maps agree, as a caption (a warning when the metrics refuse a map, e.g. NaN)."""
    try:
        rho, ssim = sc.metrics.similarity(first.map, second.map)
    except sc.SaliencyError as exc:
        st.warning(f"The two maps cannot be compared: {md(exc, limit=None)}")
        return
    if model_free:
        st.caption(
            f"Agreement with the model-free reference: Spearman {rho:.2f}, SSIM {ssim:.2f} "
            "(high values mean the map mostly follows image edges)."
        )
    else:
        st.caption(f"Agreement with {second.title}: Spearman {rho:.2f}, SSIM {ssim:.2f}.")
