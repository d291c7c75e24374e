"""The tightest exact NumPy steps: a floor for any generated or hand-written step.

Every array is written in place where NumPy allows, the sigmoid is the exact
``1 / (1 + e^-z)`` (three passes: exp, add, divide) and the softmax cross-entropy uses
the one-hot identity ``L = c + log s - f·t`` so no ``log p`` array is formed.  Nothing
here is kept for a backward pass that the step does not need (no pre-activations, no
per-example losses), which is more than a module with a ``forward``/``backward`` API may
skip.  What these steps spend beyond the bare GEMMs is the elementwise work no NumPy
step can avoid.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]


def _softmax_ce_in_place(f: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and ``(softmax(f) - t) / n``, overwriting ``f``."""
    n = f.shape[0]
    f -= f.max(axis=1, keepdims=True)
    s = np.exp(f)
    total = s.sum(axis=1, keepdims=True)
    loss = (float(np.log(total).sum()) - float(np.vecdot(f, t).sum())) / n
    s /= total
    s -= t
    s /= n
    return loss, s


def tight_sigmoid_softmax(params: Arrays, batch: Arrays) -> tuple[Any, Arrays]:
    """784-256-10: sigmoid hidden layer, softmax cross-entropy, all in place."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    x, t = batch["x"], batch["t"]
    h1 = x @ W1.T
    h1 += b1
    np.negative(h1, out=h1)
    with np.errstate(over="ignore"):
        np.exp(h1, out=h1)
    h1 += 1
    np.divide(1, h1, out=h1)
    f = h1 @ W2.T
    f += b2
    loss, g_f = _softmax_ce_in_place(f, t)
    g_z1 = g_f @ W2
    g_z1 *= h1
    one_minus = 1 - h1
    g_z1 *= one_minus
    grads = {
        "W1": g_z1.T @ x,
        "b1": g_z1.sum(axis=0),
        "W2": g_f.T @ h1,
        "b2": g_f.sum(axis=0),
    }
    return loss, grads


def tight_relu2_softmax(params: Arrays, batch: Arrays) -> tuple[Any, Arrays]:
    """784-1024-1024-10: two ReLU layers, softmax cross-entropy, all in place."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    x, t = batch["x"], batch["t"]
    h1 = x @ W1.T
    h1 += b1
    np.maximum(h1, 0, out=h1)
    h2 = h1 @ W2.T
    h2 += b2
    np.maximum(h2, 0, out=h2)
    f = h2 @ W3.T
    f += b3
    loss, g_f = _softmax_ce_in_place(f, t)
    g_z2 = g_f @ W3
    g_z2 *= h2 > 0
    g_z1 = g_z2 @ W2
    g_z1 *= h1 > 0
    grads = {
        "W1": g_z1.T @ x,
        "b1": g_z1.sum(axis=0),
        "W2": g_z2.T @ h1,
        "b2": g_z2.sum(axis=0),
        "W3": g_f.T @ h2,
        "b3": g_f.sum(axis=0),
    }
    return loss, grads
