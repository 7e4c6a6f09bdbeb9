"""Putting text the user controls (sample, file, class, layer and model names, values from a share link,
error messages that quote them) into Streamlit markdown without it being read as markdown.

Streamlit renders alerts, captions and `st.markdown` as GitHub-flavoured markdown with LaTeX (`$…$`) and
its own directives (`:red[…]`, `:material/icon:`), so a name like `[click](http://evil)` becomes a link and
`![x](http://evil/p.png)` makes the browser fetch a remote picture. `md` escapes every character markdown,
HTML, LaTeX or a directive could use, which renders as the plain text it was.
"""

from __future__ import annotations

import re
from typing import Any

# Markdown and HTML punctuation, `$` (LaTeX), `:` (directives, emoji), `/` and `@` (bare URLs and e-mail
# addresses become links in GitHub-flavoured markdown), `&` (entities), `=`, `^` and quotes.
SPECIAL = "\\`*_{}[]()#+-.!|<>~$:/@&=^\"'"
_ESCAPE = re.compile("[" + re.escape(SPECIAL) + "]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")  # a newline would start a new block (a heading...)


def md(value: Any, limit: int | None = 200) -> str:
    """`value` as markdown that renders as exactly its text (on one line, at most `limit` characters)."""
    text = _CONTROL.sub(" ", str(value))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"  # a link can carry a megabyte: the notice shows its start
    return _ESCAPE.sub(lambda m: "\\" + m.group(0), text)
