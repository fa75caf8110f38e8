"""Loading a skops model file with an explicit list of trusted types (never pickle)."""
from __future__ import annotations

from pathlib import Path

import skops.io as sio

# Types beyond skops' defaults that our estimators need. Anything else in a file is refused.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # SimpleImputer (nullable numeric features) keeps the dtype it was fitted on.
    "numpy.dtype",
)


class UntrustedModelError(ValueError):
    """The file holds a type outside the trusted list."""


def loads_skops(data: bytes, source: str = "the model"):
    """Load skops bytes after checking every type they hold is trusted."""
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    if untrusted:
        raise UntrustedModelError(
            f"{source} holds types outside the trusted list: {', '.join(untrusted)}"
        )
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


def load_skops(path: Path):
    """Load a skops file after checking every type it holds is trusted."""
    return loads_skops(Path(path).read_bytes(), str(path))
