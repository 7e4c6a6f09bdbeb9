"""The Compare page: several methods, one method over a parameter, or one method for several targets, side by
side on the same image; the agreement matrices and the difference view.

`choose` picks the variants (each a method, its parameters and, for several targets, its own view); `show`
computes and draws them.
"""

from ui.compare.choose import (
    MAX_VARIANTS,
    MODES,
    choose_variants,
    parse_values,
    suggested_values,
    target_variant,
)
from ui.compare.show import (
    agreement_section,
    compute,
    difference_section,
    exports,
    grid,
    scales,
    short_labels,
    tiles,
)

__all__ = [
    "MAX_VARIANTS",
    "MODES",
    "agreement_section",
    "choose_variants",
    "compute",
    "difference_section",
    "exports",
    "grid",
    "parse_values",
    "scales",
    "short_labels",
    "suggested_values",
    "target_variant",
    "tiles",
]
