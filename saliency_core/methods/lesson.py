"""What the Learn page teaches about a method; each method file declares its own `Lesson`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Lesson:
    """What a method computes (markdown), its formula (LaTeX), its cost, what each parameter does beyond
    its help text, its known pitfalls, a method worth showing beside it, and the paper."""

    computes: str
    formula: str = ""
    cost: str = ""
    pitfalls: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    compare_with: str | None = None
    paper: str = ""
