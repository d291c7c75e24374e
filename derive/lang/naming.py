"""How gradients are named: ``g_X`` is ``∂L/∂X`` (in derivations, emitted code and display).

The one place that writes or reads the prefix; a spec may not declare a name that has it.
"""

from __future__ import annotations

GRADIENT_PREFIX = "g_"


def gradient_name(name: str) -> str:
    """``h1`` → ``g_h1``."""
    return GRADIENT_PREFIX + name


def gradient_of(name: str | None) -> str | None:
    """``g_h1`` → ``h1``; None for a name that is not a gradient's."""
    if name and name.startswith(GRADIENT_PREFIX):
        return name[len(GRADIENT_PREFIX) :]
    return None


def is_gradient_name(name: str) -> bool:
    """Whether ``name`` has the gradient prefix (and so cannot be declared in a spec)."""
    return name.startswith(GRADIENT_PREFIX)
