"""The verdict's one-sentence plain reading, derived from the point estimates with fixed, documented thresholds.

Thresholds (on ``Estimate.value``; the confidence intervals are shown next to the sentence, not folded into it):

- a fraction (near-copies, beyond the frontier) reads as "most" at ``MOST`` (0.5) or more, as a "notable share"
  from ``NOTABLE`` (0.1) up to ``MOST``, as "few" below ``NOTABLE`` and as "no" at 0;
- the min-L2 ratio (the group's mean distance to its nearest training model over the same for training models among
  themselves) reads as "closer to training models than they are to each other" below ``RATIO`` (1.0), otherwise as
  "as far from training models as they are from each other, or farther".

"Beyond the noise frontier" means a better similarity/quality trade-off than noised copies of training models:
more novel behaviour at the same quality, which adding noise to training weights cannot reach.
"""
from __future__ import annotations

import math

from ..audit.result import Verdict

MOST = 0.5
NOTABLE = 0.1
RATIO = 1.0


def plain_reading(verdict: Verdict) -> str:
    """One sentence on what ``verdict``'s three numbers mean, e.g. "Most models (92%) are near-copies of training
    models; few (0%) are beyond the noise frontier; and they lie closer to training models than training models
    lie to each other (min-L2 ratio 0.31)." NaN estimates read as "unknown"."""
    copies = _share(verdict.near_copies.value, "are near-copies of training models")
    beyond = _share(verdict.beyond_frontier.value, "are beyond the noise frontier")
    ratio = verdict.min_l2_ratio.value
    if math.isnan(ratio):
        distance = "their distance to training models is unknown"
    elif ratio < RATIO:
        distance = f"they lie closer to training models than training models lie to each other " \
                   f"(min-L2 ratio {ratio:.2g})"
    else:
        distance = f"they lie as far from training models as training models lie from each other, or farther " \
                   f"(min-L2 ratio {ratio:.2g})"
    sentence = f"{copies}; {beyond}; and {distance}."
    return sentence[0].upper() + sentence[1:]


def _share(fraction: float, predicate: str) -> str:
    if math.isnan(fraction):
        return f"an unknown share of models {predicate}"
    if fraction >= MOST:
        return f"most models ({fraction:.0%}) {predicate}"
    if fraction >= NOTABLE:
        return f"a notable share of models ({fraction:.0%}) {predicate}"
    if fraction == 0:
        return f"no models {predicate}"
    return f"few models ({fraction:.0%}) {predicate}"
