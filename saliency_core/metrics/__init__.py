"""Evaluate maps: deletion/insertion curves, pointing games, agreement, sanity checks.

```python
import saliency_core as sc
curve = sc.metrics.deletion(m, x, target, a.map, steps=50)        # Curve: .fractions, .scores, .auc
sc.metrics.pointing_game(a.map, mask)                              # bool
sc.metrics.cascading_randomization(m, x, target, "gradient")       # SanityResult
```
"""

from __future__ import annotations

# Not a metric, but evaluated on the same page: it lives beside, in saliency_core.activation_max.
from ..activation_max import ActMaxResult, activation_maximization
from .agreement import Agreement, agreement, similarity
from .card import card_metrics, to_jsonable
from .coincide import Coincidence, Equivalence, coincidences, equivalences_of
from .deletion_insertion import (
    SUBSTRATES,
    Curve,
    deletion,
    insertion,
    ordered_curve,
    pixel_order,
    random_curve,
    substrate_image,
)
from .plot import curves_figure, sanity_figure
from .pointing import energy_pointing, max_location, pointing_distance, pointing_game, region_mask
from .sanity import (
    RandomLogitResult,
    SanityResult,
    cascading_randomization,
    default_stages,
    independent_randomization,
    random_logit,
    randomize_,
)

__all__ = [
    "SUBSTRATES",
    "ActMaxResult",
    "Agreement",
    "Coincidence",
    "Curve",
    "Equivalence",
    "RandomLogitResult",
    "SanityResult",
    "activation_maximization",
    "agreement",
    "card_metrics",
    "cascading_randomization",
    "coincidences",
    "curves_figure",
    "default_stages",
    "deletion",
    "energy_pointing",
    "equivalences_of",
    "independent_randomization",
    "insertion",
    "max_location",
    "ordered_curve",
    "pixel_order",
    "pointing_distance",
    "pointing_game",
    "random_curve",
    "random_logit",
    "randomize_",
    "region_mask",
    "sanity_figure",
    "similarity",
    "substrate_image",
    "to_jsonable",
]
