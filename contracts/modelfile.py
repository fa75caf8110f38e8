"""Loading a skops model file with an explicit list of trusted types (never pickle)."""
from __future__ import annotations

from pathlib import Path

import skops.io as sio

# Types beyond skops' defaults that our estimators need. Anything else in a file is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


class UntrustedModelError(ValueError):
    """The file holds a type outside the trusted list."""


def load_skops(path: Path):
    """Load a skops file after checking every type it holds is trusted."""
    data = Path(path).read_bytes()
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise UntrustedModelError(
            f"{path} holds types outside the trusted list: {', '.join(untrusted)}"
        )
    return sio.loads(data, trusted=list(TRUSTED_TYPES))
