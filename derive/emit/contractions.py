"""Sums of products as NumPy contractions: ``@``, ``np.tensordot``, ``np.vecdot``, ``np.einsum``.

Each function takes the factors of ``Σ_j a b`` with their index labels and the output's
label order, and returns code, or None when its form does not fit the labels.
``@`` (one contracted label; matrices or stacks of them) and ``np.tensordot`` (several
labels) reach BLAS; ``np.vecdot`` is a row-wise dot; ``np.einsum`` is what is left.
"""

from __future__ import annotations

from sympy import Indexed, Symbol


def matmul(a: Indexed, b: Indexed, j: Symbol, free: list) -> str | None:
    """``Σ_j a b`` as ``x @ y`` with transposes, when the labels allow it."""
    ia, ib = list(a.indices), list(b.indices)
    if ia.count(j) != 1 or ib.count(j) != 1 or len(ia) > 2 or len(ib) > 2:
        return None
    pa = [lab for lab in ia if lab != j]
    pb = [lab for lab in ib if lab != j]
    if set(pa) & set(pb) or sorted(map(str, pa + pb)) != sorted(map(str, free)):
        return None
    if pa + pb != free:
        a, b, pa, pb = b, a, pb, pa
        if pa + pb != free:
            return None
    left = align(a.base.label.name, list(a.indices), [*pa, j])
    right = align(b.base.label.name, list(b.indices), [j, *pb])
    return f"{left} @ {right}"


def stacked_matmul(a: Indexed, b: Indexed, j: Symbol, free: list) -> str | None:
    """``Σ_j a b`` as ``x @ y`` over stacks of matrices (attention's ``q @ k.T`` per example).

    The last two output axes are the matrix product's rows (from one factor) and columns
    (from the other); every other output axis is a stack axis, which a factor either has
    or lacks as NumPy's broadcasting allows (only leading ones).  ``@`` hands each matrix
    of the stack to BLAS, where ``np.einsum`` would loop in C without it.
    """
    if len(free) < 3 or list(a.indices).count(j) != 1 or list(b.indices).count(j) != 1:
        return None
    *stack, rows, cols = free
    if rows in b.indices and cols in a.indices:
        a, b = b, a
    sides = []
    for f, own in ((a, rows), (b, cols)):
        labels = list(f.indices)
        mine = [lab for lab in labels if lab not in (own, j)]
        if own not in labels or mine != stack[len(stack) - len(mine) :]:
            return None
        sides.append((f, labels, mine))
    (fa, la, sa), (fb, lb, sb) = sides
    left = _arranged(fa.base.label.name, la, [*sa, rows, j])
    right = _arranged(fb.base.label.name, lb, [*sb, j, cols])
    return f"{left} @ {right}"


def tensordot(a: Indexed, b: Indexed, js: list, free: list) -> str | None:
    """``Σ_{b,n} g[b, n, i] x[b, n, j]`` as ``np.tensordot(g, x, axes=([0, 1], [0, 1]))``.

    Several axes contracted at once, every other axis kept by one factor only: NumPy
    reshapes both factors to matrices and makes one GEMM of it.
    """
    la, lb = list(a.indices), list(b.indices)
    if not free or set(la) & set(lb) != set(js) or any(la.count(j) != 1 for j in js):
        return None
    if any(lb.count(j) != 1 for j in js):
        return None
    for x, y, lx, ly in ((a, b, la, lb), (b, a, lb, la)):
        kept = [lab for lab in lx if lab not in js] + [lab for lab in ly if lab not in js]
        if kept == list(free):
            order = sorted(js, key=lx.index)
            axes_x = [lx.index(j) for j in order]
            axes_y = [ly.index(j) for j in order]
            names = x.base.label.name, y.base.label.name
            return f"np.tensordot({names[0]}, {names[1]}, axes=({axes_x}, {axes_y}))"
    return None


def _arranged(var: str, labels: list, order: list) -> str:
    """``var`` with its axes (``labels``) put in ``order``: ``.T`` or ``.transpose(...)``."""
    perm = tuple(labels.index(lab) for lab in order)
    if perm == tuple(range(len(perm))):
        return var
    return f"{var}.T" if len(perm) == 2 else f"{var}.transpose{perm}"


def einsum(factors: list, free: list) -> str:
    """``np.einsum`` of ``factors`` to axes ``free``; a row-wise dot as ``np.vecdot``.

    ``Σ_k a[b, k] c[b, k]`` over the last, contiguous axis is ``np.vecdot(a, c)``: a
    ufunc, about half the time of ``np.einsum("ab,ab->a", a, c)`` at every size.
    """
    if len(factors) == 2 and factors[0].indices == factors[1].indices:
        *rest, last = factors[0].indices
        if list(rest) == list(free) and last not in free:
            a, c = (f.base.label.name for f in factors)
            return f"np.vecdot({a}, {c})"
    letters: dict = {}
    for f in factors:
        for lab in f.indices:
            letters.setdefault(lab, "abcdefghijklmnopqrstuvwxyz"[len(letters)])
    ins = ",".join("".join(letters[lab] for lab in f.indices) for f in factors)
    out = "".join(letters[lab] for lab in free)
    ops = ", ".join(f.base.label.name for f in factors)
    return f'np.einsum("{ins}->{out}", {ops})'


def align(var: str, labels: list, target: list) -> str:
    """``var`` (axes ``labels``) arranged to broadcast against axes ``target``."""
    order = sorted(range(len(labels)), key=lambda k: target.index(labels[k]))
    text = var
    if order != list(range(len(labels))):
        text = f"{var}.T" if len(order) == 2 else f"{var}.transpose({tuple(order)})"
    present = [lab for lab in target if lab in labels]
    if not present:
        return text
    first = target.index(present[0])
    tail = target[first:]
    if all(lab in labels for lab in tail):
        return text
    sub = ", ".join(":" if lab in labels else "None" for lab in tail)
    return f"{text}[{sub}]"
