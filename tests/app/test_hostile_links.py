"""Crafted share links and typed values: every field is checked and fitted to its widget, what cannot be
used is named in one escaped notice, and no text from a link is rendered as markdown (links, images)."""

from __future__ import annotations

import re

from app_helpers import demo_weights, markdown_sources, texts
from streamlit.testing.v1 import AppTest

from ui import state

# an unescaped markdown link or image: "[text](" or "![text](" whose brackets are not backslash-escaped
UNESCAPED_LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")
EVIL_LINK = "[click](http://evil.example)"
EVIL_IMAGE = "![x](http://evil.example/p.png)"


def _link(**fields: str) -> dict[str, str]:
    link = {"sample": "scene_01", "model": "shapes_demo", **fields}
    if demo_weights() == "random":
        link["weights"] = "random"
    return link


def _assert_nothing_renders_as_a_link(at: AppTest) -> None:
    for source in markdown_sources(at):
        assert not UNESCAPED_LINK.search(source), source
        assert "](http" not in source, source


def test_a_hostile_link_keeps_the_page_working_and_applies_what_it_can(app) -> None:
    link = _link(
        target="-3",
        method="occlusion",
        **{"p.patch": "inf", "p.stride": "1e400", "p.baseline": "mean", "p.batch_size": "nan"},
        **{"p.nope": "1", "alpha": "5", "clip": "50", "cmap": "evil", "sign": "absolute"},
    )
    at = app(query=link)
    said = texts(at)
    assert said.count("Parts of this link could not be used as given") == 1
    assert "parameter patch=inf" in said and "parameter stride=1e400" in said
    assert "parameter batch_size=nan" in said and "parameter nope=1" in said and "cmap=evil" in said
    assert "alpha=5 (set to 1.0)" in said and "clip=50 (set to 80.0)" in said
    assert "target=-3 (set to 0)" in said
    at.run()  # the values stay usable on every rerun, not only the first
    assert not at.exception, [e.value for e in at.exception]
    get = at.session_state
    assert (get[state.ALPHA], get[state.CLIP], get[state.SIGN]) == (1.0, 80.0, "absolute")
    assert get[state.METHOD] == "occlusion" and get["param.occlusion.baseline"] == "mean"
    assert get["param.occlusion.patch"] == 32 and get["param.occlusion.stride"] == 16  # defaults kept
    assert get[state.IMAGE].sample_id == "scene_01" and get[state.TARGET] == 0


def test_link_text_is_escaped_wherever_it_is_echoed(app) -> None:
    for evil in (EVIL_LINK, EVIL_IMAGE):
        at = app(query=_link(sample=evil))  # an unknown sample: the notice and the sidebar name it
        assert not at.exception
        _assert_nothing_renders_as_a_link(at)
        assert evil in texts(at)  # shown, as text
        assert any("\\[" in s and "\\(http\\:\\/\\/evil" in s for s in markdown_sources(at))
        at = app(query=_link(model=evil, method=evil, **{"p.sigma": evil}))
        assert not at.exception
        _assert_nothing_renders_as_a_link(at)
        assert f"model '{evil}'" in texts(at) and f"method '{evil}'" in texts(at)


def test_a_long_notice_is_cut_short() -> None:
    from ui import share

    message = share.notice([f"parameter p{i}=" + "x" * 500 for i in range(30)])
    assert "and 22 more" in message and len(message) < 1000


def _apply_threshold(value: str) -> None:
    import streamlit as st

    from ui import state as keys
    from ui.tasks.detection import DetectionUI

    st.session_state["problems"] = DetectionUI().apply_share({"threshold": value})
    st.slider("Score threshold", 0.05, 0.95, step=0.05, key=keys.THRESHOLD)


def test_detection_thresholds_from_links_are_read_and_fitted() -> None:
    expected = {"inf": None, "1e400": None, "nan": None, "-inf": None, "abc": None, "5": 0.95, "0.33": 0.35}
    for given, threshold in expected.items():
        at = AppTest.from_function(_apply_threshold, args=(given,)).run()
        assert not at.exception, (given, [e.value for e in at.exception])
        problems = at.session_state["problems"]
        if threshold is None:
            assert problems == [f"threshold={given}"] and at.slider(key=state.THRESHOLD).value == 0.05
        else:
            assert at.session_state[state.THRESHOLD] == threshold
            assert problems == ([f"threshold={given} (set to 0.95)"] if given == "5" else [])


def test_compare_sweep_box_refuses_non_finite_values(app) -> None:
    at = app(page="pages/1_Compare.py")
    at.button_group(key="compare.mode").set_value("One method, several settings").run()
    at.selectbox(key="compare.sweep_method").set_value("occlusion").run()
    at.text_input(key="compare.sweep_values.occlusion.patch").set_value("inf, 1e400, nan, 16, -inf, 8").run()
    assert not at.exception, [e.value for e in at.exception]
    said = texts(at)
    assert "'inf' is not an integer" in said and "'1e400' is not an integer" in said
    assert "and 1 more" not in said and len(at.warning) >= 1
    assert "2 of 2 maps still to compute" in said  # 16 and 8 kept


def test_md_escapes_every_special_character_and_keeps_one_line() -> None:
    from ui.text import SPECIAL, md

    escaped = md(SPECIAL + "plain")
    assert escaped == "".join("\\" + c for c in SPECIAL) + "plain"
    assert md("a\nb\r\n# title") == "a b \\# title"  # no new block (heading, list) can start
    assert md("x" * 500, limit=10) == "x" * 9 + "…" and len(md("x" * 500, limit=None)) == 500
    assert md(3.5) == "3\\.5"
