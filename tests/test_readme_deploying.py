"""README's "Deploying" table lists every resource limit with the default the code uses."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import saliency_core as sc

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_limits_table_matches_the_code() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([0-9.e+]+) \|", section, flags=re.M))
    defaults = sc.Limits()
    assert set(rows) == {f.name for f in fields(sc.Limits)}
    for name, shown in rows.items():
        assert float(shown) == float(getattr(defaults, name)), name
