"""A right hand-written backward pass for examples/mlp_softmax.toml, for grading tests."""

GOOD = """\
import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def backward(x, t, W1, b1, W2, b2):
    m = x.shape[0]
    h = sigmoid(x @ W1.T + b1)
    f = h @ W2.T + b2
    p = np.exp(f - f.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    gf = (p - t) / m
    gh = gf @ W2
    gz = gh * h * (1 - h)
    return {"W1": gz.T @ x, "b1": gz.sum(0), "W2": gf.T @ h, "b2": gf.sum(0)}
"""
