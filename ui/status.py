"""The Settings page's sections: device, caches, weights of every model, plugins, this session, versions."""

from __future__ import annotations

import streamlit as st

import saliency_core as sc
from ui import resources, results, state
from ui.text import md

ENV_VAR = "SALIENCY_DEVICE"


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _move(key: str) -> None:
    """Move the shared engine to the device just chosen (on_change: before the page is drawn)."""
    chosen = st.session_state.get(key)
    try:
        with st.spinner(f"Moving the models to {chosen}…"):
            sc.set_device(str(chosen))
    except sc.SaliencyError as exc:
        st.session_state[state.DEVICE_ERROR] = str(exc)
    else:
        st.session_state.pop(state.DEVICE_ERROR, None)


def device() -> None:
    engine = resources.engine()
    st.subheader("Device")
    current = sc.current_device()
    options = sc.available_devices()
    if current not in options:
        options = [current, *options]
    # A session's prepared inputs may stay where they are: the engine moves an input to the model's device.
    # The engine is the truth: the picker shows where it computes now (another session may have moved it).
    st.session_state[state.DEVICE] = current
    st.selectbox(
        "Compute on",
        options,
        key=state.DEVICE,
        on_change=_move,
        args=(state.DEVICE,),
        disabled=len(options) < 2,
        help="Every session shares one engine: moving it moves every loaded model, for everyone, once the "
        "work running on each model has finished. Finished maps are kept; cached model passes and "
        "measured speeds start again on the new device.",
    )
    error = st.session_state.pop(state.DEVICE_ERROR, None)
    if error:
        st.error(md(error, limit=None), icon=":material/memory:")
    st.markdown(
        f"Computing on **{md(engine.describe_device())}**"
        + (" (the only device here)." if len(options) < 2 else ".")
        + f" `{ENV_VAR}` sets the device a new server process starts on."
    )
    stats = engine.stats()
    loaded = stats.get("models") or []
    st.markdown("Models loaded in this process: " + (", ".join(f"`{m}`" for m in loaded) or "none yet"))
    speed = stats.get("speed") or {}
    if speed:
        rows = [
            {"Model": model, "Pass": kind, "Seconds per image": round(float(s), 4)}
            for (model, kind), s in speed.items()
        ]
        st.dataframe(rows, hide_index=True)
        st.caption("Measured speeds feed the time estimates shown before a method runs.")


def cache() -> None:
    stats = resources.engine().cache.stats()
    st.subheader("Engine cache")
    st.caption("Shared by every session: model outputs, gradients and finished maps.")
    cols = st.columns(5)
    cols[0].metric("Entries", stats.entries)
    cols[1].metric("Size", human_bytes(stats.bytes), help=f"Limit {human_bytes(stats.max_bytes)}")
    cols[2].metric("Hits", stats.hits)
    cols[3].metric("Misses", stats.misses)
    total = stats.hits + stats.misses
    cols[4].metric("Hit rate", f"{stats.hits / total:.0%}" if total else "–")
    st.progress(
        min(1.0, stats.bytes / max(stats.max_bytes, 1)),
        text=f"{human_bytes(stats.bytes)} of {human_bytes(stats.max_bytes)} used, {stats.evictions} evicted",
    )


def weights() -> None:
    st.subheader("Model weights")
    rows = [
        {
            "Model": m.id,
            "Title": m.title,
            "Task": m.task,
            "Weights": "available" if m.weights_available else "missing",
            "File (where it is or would be cached)": m.weights_path or "(none: made by its builder)",
        }
        for m in resources.models()
    ]
    st.dataframe(rows, hide_index=True, width="stretch", height=38 + 35 * len(rows))
    st.caption(
        "Missing ImageNet weights can be put in the folder shown (torchvision's cache, under TORCH_HOME). "
        "The shapes demo model's weights ship with the app."
    )


def plugins() -> None:
    st.subheader("Plugins")
    found = resources.plugins()
    where = f"`{resources.plugin_config()}`"
    if not found:
        st.caption(
            f"No plugins are configured. An operator adds methods and models with plugins: Python files or "
            f"modules named in the `SALIENCY_PLUGINS` environment variable or in the `plugins` list of "
            f"{where} (see docs/extending.md). Plugins are code, so they are never taken from an upload."
        )
        return
    st.dataframe(
        [
            {
                "Plugin": p.entry,
                "Configured in": p.source,
                "Status": "loaded" if p.loaded else "failed",
                "Error": p.error or "",
            }
            for p in found
        ],
        hide_index=True,
        width="stretch",
    )
    failed = [p for p in found if not p.loaded]
    if failed:
        st.warning(
            f"{len(failed)} plugin{'s' if len(failed) > 1 else ''} failed to load; what they register is "
            "missing. The details are in the server log.",
            icon=":material/extension_off:",
        )


def _forget() -> None:
    results.store().clear()


def session() -> None:
    st.subheader("This session")
    store = results.store()
    st.markdown(
        f"{len(store)} maps kept ({human_bytes(store.nbytes())}), "
        f"{st.session_state.get(state.COMPUTE_COUNT, 0)} computed (or fetched from the engine) so far."
    )
    st.button("Forget this session's maps", key=f"{state.ACTION_PREFIX}forget", on_click=_forget)


def versions() -> None:
    st.subheader("Versions")
    st.dataframe(
        [{"Library": name, "Version": version} for name, version in resources.versions().items()],
        hide_index=True,
    )
