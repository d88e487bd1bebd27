"""Vector helpers shared by the encoders and the indexes."""

from __future__ import annotations

import numpy as np

from latentspace.errors import InvalidInput

__all__ = ["l2_normalise"]


def l2_normalise(vectors: np.ndarray, *, name: str = "vectors") -> np.ndarray:
    """Rows scaled to unit length, as C-contiguous float32.

    Raises:
        InvalidInput: a row is zero or not finite (it has no direction).
    """
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.sqrt(np.einsum("...i,...i->...", out, out))[..., None]
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(-1)).tolist()
        raise InvalidInput(f"{name}: rows {rows[:10]} are zero or not finite; no direction")
    return np.ascontiguousarray(out / norms, dtype=np.float32)
