"""Large magnitudes: wherever the forward pass is finite, the backward pass must be too.

Central differences check gradients at ordinary points (entries of order 1), where an
unstable backward form such as ``e^z/(1 + e^z)`` agrees with a stable one. This check
scales every parameter and every real input by ``s`` (pre-activations grow like s^2 and
beyond), in float64 and float32, and at each scale where the per-example losses are all
finite requires every gradient to be finite and of the parameter's dtype. A scale at which
the forward pass itself overflows (a ReLU chain, a log of a huge value) proves nothing and
is passed over.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from derive.verify.module import GradModule, random_batch, random_params
from derive.verify.report import SmokeResult

SCALES = (10.0, 100.0, 1000.0)
DTYPES = (np.float64, np.float32)


def large_magnitude_check(
    module: GradModule, dims: Mapping[str, int], *, m: int = 3, seed: int = 0
) -> SmokeResult:
    """Finite forward implies finite backward at ``SCALES`` x the usual magnitudes."""
    tried = []
    for dtype in DTYPES:
        for scale in SCALES:
            rng = np.random.default_rng(seed)
            params = {
                k: (scale * v).astype(dtype) for k, v in random_params(module, dims, rng).items()
            }
            batch = {
                k: (scale * v if module.INPUTS[k][1] == "real" else v).astype(dtype)
                for k, v in random_batch(module, dims, m, rng).items()
            }
            where = f"parameters and real inputs x{scale:g} ({np.dtype(dtype).name})"
            try:
                with np.errstate(all="ignore"):
                    _loss, cache = module.forward(params, batch)
                    if not np.all(np.isfinite(cache[module.LOSS])):
                        continue
                    grads = module.backward(params, batch, cache)
            except Exception as exc:
                return SmokeResult(False, f"{where}: raised {type(exc).__name__}: {exc}")
            tried.append(f"x{scale:g} {np.dtype(dtype).name}")
            for name, p in params.items():
                g = np.asarray(grads.get(name))
                if g.shape != p.shape or not np.all(np.isfinite(g)):
                    return SmokeResult(
                        False,
                        f"{where}: the loss is finite but the gradient of '{name}' is not "
                        "(an unstable backward form?)",
                    )
    if not tried:
        return SmokeResult(True, "the forward pass overflows at every scale tried; nothing to do")
    return SmokeResult(True, "finite gradients wherever the loss is finite: " + ", ".join(tried))
