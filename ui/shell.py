"""What every page starts with: page config, kept widget values, a share link applied, navigation and the
shared sidebar.

Streamlit runs one script per page (app.py is Explore; pages/<n>_<Name>.py the others), so each page calls
`setup` first. A new page (e.g. pages/2_Evaluate.py) needs nothing else: the navigation finds it.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import share, sidebar, state
from ui.view import View

ROOT = Path(__file__).resolve().parent.parent
ICONS = {
    "explore": ":material/explore:",
    "compare": ":material/view_module:",
    "evaluate": ":material/fact_check:",
    "learn": ":material/school:",
    "settings": ":material/settings:",
    "benchmark": ":material/leaderboard:",
}


def page_title(path: Path) -> tuple[int, str]:
    """(order, title) of a page file: `pages/3_Learn.py` -> (3, "Learn")."""
    number, _, name = path.stem.partition("_")
    if not number.isdigit():
        return 999, path.stem.replace("_", " ")
    return int(number), name.replace("_", " ")


def pages() -> list[tuple[str, str]]:
    """(path relative to app.py, title) of Explore and every page in pages/, in order."""
    files = sorted((ROOT / "pages").glob("*.py"), key=lambda p: (page_title(p), p.name))
    return [("app.py", "Explore")] + [(f"pages/{p.name}", page_title(p)[1]) for p in files]


def _navigation() -> None:
    with st.sidebar:
        for path, title in pages():
            st.page_link(path, label=title, icon=ICONS.get(title.lower()))
        st.divider()


def setup(title: str) -> View | None:
    """Start a page: config, navigation and the sidebar; returns the current view (None if unusable)."""
    st.set_page_config(
        page_title=f"{title} · Saliency dashboard",
        page_icon=":material/visibility:",
        layout="wide",
        menu_items={"About": "Explore, compare and export saliency maps of vision models."},
    )
    state.keep_widget_values()
    share.apply_requested()  # a view another page opened (before the sidebar's widgets draw)
    problems = share.apply_from_url()
    _navigation()
    current = sidebar.render()
    if problems:
        st.warning(share.notice(problems), icon=":material/link_off:")
    return current
