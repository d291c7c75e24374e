"""Building the graph: from Python calls or from a parsed spec, through one API.

A :class:`Tensor` is a lazy pointwise index expression (``mm[b, i] + b1[i]``) with
per-example dims; it becomes a :class:`~derive.graph.nodes.Node` when it is named, fed to
an op, or contracted.  Shapes follow NumPy: ``@`` on rank ≤ 2 operands and
right-aligned broadcasting; a batched value has the batch axis in front.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy import Sum, Symbol

from derive.errors import SpecError, suggest
from derive.graph.dropout import add_dropout
from derive.graph.labels import Labels
from derive.graph.nodes import BATCH, Graph, Node, atom_name, entry, split_sum
from derive.graph.penalties import add_penalties
from derive.graph.reductions import axes_of, count, reduce
from derive.lang import expr as P
from derive.ops.functions import ELEMENTWISE, MACROS
from derive.ops.signatures import HELPER_OPS, BindError, bind
from derive.ops.table import BUILTIN_OPS, OpKind

PREACTIVATION = "pre"
VECTOR_OPS = {"cross_entropy", "softmax_cross_entropy"}


class Tensor:
    """A value under construction: ``expr`` in the canonical labels of ``dims``."""

    def __init__(self, b: Builder, expr: sp.Expr, dims: tuple[str | int, ...]) -> None:
        self.b, self.expr, self.dims = b, sp.sympify(expr), tuple(dims)

    @property
    def example_dims(self) -> tuple[str | int, ...]:
        return self.dims[1:] if self.batched else self.dims

    @property
    def batched(self) -> bool:
        return bool(self.dims) and self.dims[0] == BATCH

    def __add__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a + c, self, o, "+")

    def __radd__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c + a, self, o, "+")

    def __sub__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a - c, self, o, "-")

    def __rsub__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c - a, self, o, "-")

    def __mul__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a * c, self, o, "*")

    def __rmul__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c * a, self, o, "*")

    def __truediv__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a / c, self, o, "/")

    def __rtruediv__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: c / a, self, o, "/")

    def __pow__(self, o: object) -> Tensor:
        return self.b.pointwise(lambda a, c: a**c, self, o, "**")

    def __neg__(self) -> Tensor:
        return Tensor(self.b, -self.expr, self.dims)

    def __matmul__(self, o: Tensor) -> Tensor:
        return self.b.matmul(self, o)

    @property
    def T(self) -> Tensor:
        return self.b.transpose(self)

    def __repr__(self) -> str:
        return f"Tensor({self.expr}, dims={self.dims})"


class Builder:
    """Builds a :class:`Graph` one named value at a time.

    >>> b = Builder("toy", {"d": 3})
    >>> x = b.input("x", ["d"]); w = b.param("w", ["d"])
    >>> L = b.let("L", b.call("sum", w * x) ** 2)
    >>> g = b.loss("L")
    """

    def __init__(
        self,
        name: str,
        dims: dict[str, int | None],
        *,
        description: str = "",
        file: str | None = None,
        taken: Sequence[str] = (),
    ) -> None:
        self.name, self.description, self.file = name, description, file
        self.dims = dict(dims)
        names = set(dims) | set(taken)
        batch = next(
            n for n in ("m", "B", "N", "M", *(f"m{k}" for k in range(2, 99))) if n not in names
        )
        self.batch_size = Symbol(batch, integer=True, positive=True)
        sizes = {BATCH: self.batch_size}
        sizes.update({d: Symbol(d, integer=True, positive=True) for d in dims})
        self.labels = Labels(sizes, names | {self.batch_size.name})
        self.nodes: list[Node] = []
        self.inputs: dict[str, Node] = {}
        self.params: dict[str, Node] = {}
        self.constants: dict[str, float] = {}
        self.input_kinds: dict[str, str] = {}
        self.param_init: dict[str, str | float | None] = {}
        self.custom_ops: dict[str, tuple[tuple[str, ...], P.Expr]] = {}
        self.const_env: dict[str, Tensor] = {}
        self.lines: dict[str, int] = {}
        self.where: str | None = None  # name of the equation being built, for errors
        self._equation_start = 0
        self._taken = names
        self._macro_ops: list[str] = []  # the ops whose bodies are being built, innermost last

    # ----- errors ---------------------------------------------------------------------
    def error(self, message: str, hint: str | None = None) -> SpecError:
        where = f"{self.where}: " if self.where else ""
        line = self.lines.get(self.where or "")
        return SpecError(where + message, file=self.file, line=line, hint=hint)

    # ----- leaves -----------------------------------------------------------------------
    def _check_shape(self, shape: Sequence[str | int]) -> tuple[str | int, ...]:
        for d in shape:
            if isinstance(d, str) and d not in self.dims:
                raise self.error(f"unknown dim '{d}'", suggest(d, self.dims))
        return tuple(shape)

    def _leaf(self, name: str, kind: str, dims: tuple[str | int, ...]) -> Tensor:
        node = Node(name, kind, dims, self.labels.for_dims(dims), user=True)
        self.nodes.append(node)
        self._taken.add(name)
        return Tensor(self, node.atom, dims)

    def input(self, name: str, shape: Sequence[str | int], kind: str = "real") -> Tensor:
        """One example's input; the graph carries it with a leading batch axis."""
        t = self._leaf(name, "input", (BATCH, *self._check_shape(shape)))
        self.inputs[name] = self.nodes[-1]
        self.input_kinds[name] = kind
        return t

    def param(
        self, name: str, shape: Sequence[str | int], init: str | float | None = None
    ) -> Tensor:
        t = self._leaf(name, "param", self._check_shape(shape))
        self.params[name] = self.nodes[-1]
        self.param_init[name] = init
        return t

    def constant(self, name: str, value: float) -> Tensor:
        self.constants[name] = float(value)
        self._taken.add(name)
        self.const_env[name] = Tensor(self, Symbol(name, real=True), ())
        return self.const_env[name]

    def value(self, name: str) -> Tensor:
        """The value already declared or computed under ``name``."""
        node = next((n for n in reversed(self.nodes) if n.name == name), None)
        if node is None:
            raise self.error(f"unknown name '{name}'", suggest(name, [n.name for n in self.nodes]))
        return Tensor(self, node.atom, node.dims)

    def size(self, dim: str | int) -> Tensor:
        return Tensor(self, self.labels.size(dim), ())

    # ----- nodes ------------------------------------------------------------------------
    def fresh(self, stem: str) -> str:
        name, n = stem, 1
        while name in self._taken:
            n += 1
            name = f"{stem}{n}"
        self._taken.add(name)
        return name

    def node_of(self, t: Tensor) -> Node | None:
        name = atom_name(t.expr)
        if name is None or t.expr != entry(name, self.labels.for_dims(t.dims)):
            return None
        return next((n for n in reversed(self.nodes) if n.name == name), None)

    def _args_of(self, expr: sp.Expr) -> tuple[Node, ...]:
        names = {atom_name(a) for a in expr.atoms(sp.Indexed, Symbol)}
        return tuple(n for n in self.nodes if n.name in names)

    def add_node(
        self,
        expr: sp.Expr,
        dims: tuple[str | int, ...],
        stem: str,
        *,
        kind: str = "pointwise",
        op: str | None = None,
        nograd: bool = False,
    ) -> Tensor:
        same = self._existing(expr, dims, kind, op, nograd)
        if same is not None:  # the same value computed once (softmax inside log_softmax, ...)
            return Tensor(self, same.atom, dims)
        node = Node(
            self.fresh(stem),
            kind,
            dims,
            self.labels.for_dims(dims),
            expr,
            self._args_of(expr),
            op=op,
            nograd=nograd,
        )
        self.nodes.append(node)
        return Tensor(self, node.atom, dims)

    def _existing(self, expr: sp.Expr, dims: tuple, kind: str, op, nograd: bool) -> Node | None:
        for n in reversed(self.nodes):
            if (n.expr, n.dims, n.kind, n.op, n.nograd) == (expr, dims, kind, op, nograd):
                return n
        return None

    def let(self, name: str, value: Tensor | float) -> Tensor:
        """Name a value: it becomes a user node whose adjoint stays named."""
        t = self.lift(value)
        renamed = self._name_preactivations(name)
        t = Tensor(self, t.expr.xreplace(renamed), t.dims)
        node = self.node_of(t)
        if node is not None and not node.user and node.kind not in ("input", "param"):
            self._taken.discard(node.name)
            self._rename(node, name)
        else:
            stem = t.expr
            node = Node(name, "pointwise", t.dims, self.labels.for_dims(t.dims), stem)
            node.args = self._args_of(stem)
            self.nodes.append(node)
        node.user = True
        self._taken.add(name)
        self._equation_start = len(self.nodes)
        return Tensor(self, node.atom, t.dims)

    def _name_preactivations(self, name: str) -> dict:
        """Call the unnamed argument of an activation in ``name = act(...)`` ``z_name``.

        Returns the renaming of bases (old -> new) for expressions built before it.
        """
        renamed: dict = {}
        for node in self.nodes[self._equation_start :]:
            if node.meta.get("preactivation") and not node.user:
                old = node.name
                stem = node.meta.get("stem", "z")
                renamed.update(self._rename(node, self.fresh(f"{stem}_{name}")))
                for other in self.nodes[self._equation_start :]:
                    if other.name.endswith(f"_{old}") and not other.user:
                        stem = other.name[: -len(old)] + node.name
                        renamed.update(self._rename(other, self.fresh(stem)))
        return renamed

    def _rename(self, node: Node, name: str) -> dict:
        """Rename ``node`` everywhere it is used; returns ``{old base: new base}``."""
        self._taken.discard(node.name)
        self._taken.add(name)
        old = node.atom
        node.name = name
        new = node.atom
        mapping = {old.base: new.base} if old.is_Indexed else {old: new}
        for n in self.nodes:
            if n.expr is not None and node in n.args:
                n.expr = n.expr.xreplace(mapping)
        return mapping

    def view_node(self, t: Tensor) -> Node | None:
        """The node ``t`` reads one entry of (at any labels: ``s[b]`` read along a row)."""
        name = atom_name(t.expr)
        if name is None:
            return None
        return next((n for n in reversed(self.nodes) if n.name == name), None)

    def materialize(self, t: Tensor, stem: str = "u") -> Tensor:
        if self.node_of(t) is not None:
            return t
        return self.add_node(t.expr, t.dims, stem)

    def lift(self, v: object) -> Tensor:
        if isinstance(v, Tensor):
            return v
        if isinstance(v, int | float | sp.Expr):
            return Tensor(self, sp.sympify(v), ())
        raise self.error(f"cannot use {v!r} as a value")

    # ----- broadcasting -------------------------------------------------------------------
    def relabel(self, t: Tensor, labels: Sequence[sp.Expr]) -> sp.Expr:
        """``t.expr`` with its own labels replaced by ``labels`` (same order as ``t.dims``)."""
        own = self.labels.for_dims(t.dims)
        return t.expr.xreplace(dict(zip(own, labels, strict=True)))

    def broadcast(self, ts: Sequence[Tensor], what: str) -> tuple[tuple, list[sp.Expr]]:
        """Right-aligned NumPy broadcasting of per-example dims; batch in front if any."""
        rank = max(len(t.example_dims) for t in ts)
        out: list[str | int | None] = [None] * rank
        for t in ts:
            ed = t.example_dims
            for k, d in enumerate(ed):
                pos = rank - len(ed) + k
                if out[pos] is None or out[pos] == 1:
                    out[pos] = d
                elif d not in (out[pos], 1):
                    raise self.error(
                        f"shape mismatch in '{what}': {self.describe(ts)} do not broadcast",
                        "per-example shapes align from the right and must agree "
                        "(check the declared shapes or transpose with .T)",
                    )
        dims = ((BATCH,) if any(t.batched for t in ts) else ()) + tuple(out)
        labels = self.labels.for_dims(dims)
        exprs = []
        for t in ts:
            ed = t.example_dims
            target = list(labels[len(dims) - len(ed) :])
            exprs.append(self.relabel(t, ([labels[0]] if t.batched else []) + target))
        return dims, exprs

    def describe(self, ts: Sequence[Tensor]) -> str:
        return " and ".join(f"({', '.join(map(str, t.example_dims))})" for t in ts)

    def pointwise(self, fn, a: Tensor, o: object, what: str) -> Tensor:
        ts = [a, self.lift(o)]
        dims, (ea, eo) = self.broadcast(ts, what)
        return Tensor(self, fn(ea, eo), dims)

    # ----- contractions ---------------------------------------------------------------------
    def contraction(
        self, body: sp.Expr, limits: list, dims: tuple, coeff: sp.Expr, stem: str
    ) -> Tensor:
        expr = coeff * Sum(body, *limits) if limits else coeff * body
        return self.add_node(expr, dims, stem, kind="contraction")

    def matmul(self, a: Tensor, c: Tensor) -> Tensor:
        a, c = self._operand(a), self._operand(c)
        ad, cd = a.example_dims, c.example_dims
        if not ad or not cd or len(ad) > 2 or len(cd) > 2:
            raise self.error(
                f"'@' needs operands of rank 1 or 2 per example, got {self.describe([a, c])}"
            )
        inner_a, inner_c = ad[-1], cd[0]
        if inner_a != inner_c:
            raise self.error(
                f"shape mismatch in '@': {self.describe([a, c])}: inner dims "
                f"'{inner_a}' and '{inner_c}' differ",
                "the last dim of the left operand must equal the first of the right; "
                "swap the operands, transpose one (.T) or fix the declared shapes",
            )
        batch = (BATCH,) if a.batched or c.batched else ()
        dims = (*batch, *ad[:-1], *cd[1:])
        labels = self.labels.for_dims(dims)
        key = inner_a if isinstance(inner_a, str) else self.labels.int_dim(inner_a)
        j = self.labels.bound(key, 1)
        lb = list(labels[: len(batch)])
        la = [*(lb if a.batched else []), *labels[len(batch) : len(batch) + len(ad) - 1], j]
        lc = [*(lb if c.batched else []), j, *labels[len(batch) + len(ad) - 1 :]]
        body = self.relabel(a, la) * self.relabel(c, lc)
        return self.contraction(body, [(j, 1, self.labels.size(inner_a))], dims, 1, "mm")

    def _operand(self, t: Tensor) -> Tensor:
        """A matmul operand as a node: ``k.T`` of a per-example matrix becomes ``k_T``."""
        if self.node_of(t) is not None:
            return t
        node = self.view_node(t)
        return self.materialize(t, f"{node.name}_T" if node is not None else "u")

    def transpose(self, a: Tensor) -> Tensor:
        if len(a.example_dims) != 2:
            return a
        dims = (*a.dims[:-2], a.dims[-1], a.dims[-2])
        labels = self.labels.for_dims(dims)
        own = list(labels)
        own[-2], own[-1] = own[-1], own[-2]
        return Tensor(self, self.relabel(a, own), dims)

    def reduction(self, op: str, a: Tensor, axis: object, keepdims: bool = False) -> Tensor:
        """``sum``, ``mean``, ``max`` or ``argmax`` of ``a`` over ``axis`` (None: every axis)."""
        axes = axes_of(self, a, axis, op)
        if op == "mean":
            return reduce(self, a, axes, "mean", coeff=1 / count(self, a, axes), keepdims=keepdims)
        if op in ("max", "argmax"):
            if op == "argmax" and len(axes) > 1:
                raise self.error("argmax(): give one axis", "e.g. argmax(a, axis=-1)")
            stem = "c" if self._macro_ops and self._macro_ops[-1] in MACROS else op
            return reduce(self, a, axes, stem, kind=op, keepdims=keepdims)
        return reduce(self, a, axes, "s" if op == "sum" else "tot", keepdims=keepdims)

    def batch_mean(self, a: Tensor) -> Tensor:
        if not a.batched:
            raise self.error("batch_mean() of a value with no batch axis")
        j = self.labels.bound(BATCH, 1)
        dims = a.dims[1:]
        body = self.relabel(a, [j, *self.labels.for_dims(dims)])
        return self.contraction(body, [(j, 1, self.batch_size)], dims, 1 / self.batch_size, "mu")

    # ----- op calls -----------------------------------------------------------------------
    def call(self, op: str, *args: object, **kwargs: object) -> Tensor:
        """Apply a built-in or custom op by name.

        At the top level of an equation the op's arguments and its result keep named
        adjoints, as if the author had written each on a line of its own: what is nested
        and what is staged derive the same forms.
        """
        out = self._call(op, *args, **kwargs)
        if not self._macro_ops:
            for t in (*args, out):
                node = self.node_of(t) if isinstance(t, Tensor) else None
                if node is not None and node.expr is not None and node.batched:
                    node.meta["stage"] = True
                    if t is not out and not node.user and node.op not in ELEMENTWISE:
                        node.meta["preactivation"] = True  # named after the equation: z_h, y_h
        return out

    def _call(self, op: str, *args: object, **kwargs: object) -> Tensor:
        helper = {"total": self._total, "size": self._size_of, "stop": self._stop}.get(op)
        if helper is not None:  # bound here: an [ops] entry can never replace a helper
            return helper(self.lift(args[0]))
        if op in self.custom_ops and op not in HELPER_OPS:
            params, body = self.custom_ops[op]
            ts = [self.lift(a) for a in self._bind(op, params, (), args, kwargs)[0]]
            return self.expand_macro(op, params, (("out", body),), ts)
        keepdims = bool(kwargs.pop("keepdims", 0)) if self._macro_ops else False
        if op in BUILTIN_OPS:
            sig = BUILTIN_OPS[op]
            values, given = self._bind(op, sig.args, tuple(sig.kwargs), args, kwargs)
            args, kwargs = tuple(values), {**sig.kwargs, **kwargs, **given}
        ts = [self.lift(a) for a in args]
        kind = BUILTIN_OPS[op].kind if op in BUILTIN_OPS else None
        if kind is OpKind.REDUCTION:
            t = self.reduction(op, ts[0], kwargs.get("axis"), keepdims)
            if op in ("max", "argmax") and not any(o in MACROS for o in self._macro_ops):
                node = self.view_node(t)  # the user's own max or argmax: no derivative
                node.meta["no_derivative"] = op
                node.meta["line"] = self.lines.get(self.where or "")
                node.meta["where"] = self.where
            return t
        if kind is OpKind.BATCH:
            return self.batch_mean(ts[0])
        if kind is OpKind.MASK:
            return add_dropout(self, ts[0], kwargs["drop"])
        if kind is OpKind.ELEMENTWISE:
            return self.elementwise(op, ts[0], kwargs)
        if kind is OpKind.MACRO:
            params, stmts = MACROS[op]
            if op in VECTOR_OPS and any(len(t.example_dims) > 1 for t in ts):
                shape = ", ".join(map(str, ts[0].example_dims))
                raise self.error(
                    f"{op}() works on a vector per example (its last axis), got ({shape})",
                    "apply it to a vector, e.g. one row of logits per example",
                )
            if op == "batchnorm":  # a parameter used as the scale starts at ones
                scale = self.node_of(ts[1]) if len(ts) > 1 else None
                if scale is not None and scale.kind == "param":
                    scale.meta.setdefault("role", "scale")
            sig = BUILTIN_OPS[op]
            if "axis" in sig.kwargs:  # softmax(f, axis=k): checked here, not inside the body
                axes_of(self, ts[0], kwargs.get("axis"), op)
            extra = [self.lift(kwargs.get(k, v)) for k, v in sig.kwargs.items()]
            return self.expand_macro(
                op, params, [(n, P.parse_expression(s)) for n, s in stmts], ts + extra
            )
        known = sorted(set(BUILTIN_OPS) | set(self.custom_ops))
        raise self.error(f"unknown op '{op}'", suggest(op, known))

    def _total(self, a: Tensor) -> Tensor:
        """``total(a)``: the sum of every per-example entry (the macros' helper)."""
        return self.reduction("total", a, None)

    def _size_of(self, a: Tensor) -> Tensor:
        """``size(a)``: the size of ``a``'s last per-example axis (1 for a scalar)."""
        dims = a.example_dims
        return self.size(dims[-1] if dims else 1)

    def _stop(self, a: Tensor) -> Tensor:
        """``stop(a)``: ``a`` as a value the derivative does not flow through."""
        node = self.view_node(a)
        if node is None:
            a = self.materialize(a)
            node = self.node_of(a)
        node.nograd = True
        node.meta.pop("no_derivative", None)  # stop(max(f)): no gradient asked for
        return a

    def _bind(self, op: str, names: Sequence[str], params: Sequence[str], args, kwargs) -> tuple:
        """Arguments in order and parameters by name (positional parameters follow arguments)."""
        try:
            return bind(op, tuple(names), tuple(params), args, list(kwargs.items()))
        except BindError as e:
            sig = (
                BUILTIN_OPS[op].signature(op) if op in BUILTIN_OPS else f"{op}({', '.join(names)})"
            )
            raise self.error(e.message, f"call it as {sig}") from None

    def elementwise(self, op: str, a: Tensor, kwargs: dict) -> Tensor:
        fn = ELEMENTWISE[op]
        sig = BUILTIN_OPS[op]
        extra = [sp.sympify(self.lift(kwargs.get(k, v)).expr) for k, v in sig.kwargs.items()]
        values = {Symbol(c, real=True): sp.Float(v) for c, v in self.constants.items()}
        numeric = [x.xreplace(values) for x in extra]  # conventions are checked on values
        if sig.check_params is not None:  # conventions (f'(0) at a kink) checked on values
            try:
                checked = sig.check_params(numeric)
            except ValueError as err:
                raise self.error(*err.args) from None
            extra = [x if c is None else sp.Integer(c) for x, c in zip(extra, checked, strict=True)]
        if not a.dims and all(
            self.view_node(Tensor(self, s, ())) is None for s in a.expr.atoms(Symbol)
        ):
            return Tensor(self, fn(a.expr, *extra), ())  # sqrt(d): a number, not a value
        node = self.node_of(a)
        contracted = [n.base for n in self.nodes if n.kind == "contraction"]
        variance = op == "sqrt" and self._is_variance(a.expr)
        if node is None and a.expr.has(Sum, *contracted):
            a = self.materialize(a, PREACTIVATION)  # z = W @ x + b: its adjoint is shared
            node = self.node_of(a)
            node.meta["preactivation"] = True
            if variance:
                node.meta["stem"] = "var"
        stem = "std" if variance else op if node is None else f"{op}_{node.name}"
        return self.add_node(fn(a.expr, *extra), a.dims, stem, op=op)

    def _is_variance(self, expr: sp.Expr) -> bool:
        """Whether ``expr`` holds a mean of squares (``batch_mean((z - mu)**2) + eps``)."""
        names = {atom_name(a) for a in expr.atoms(sp.Indexed, Symbol)}
        for n in self.nodes:
            if n.name in names and n.kind == "contraction":
                coeff, body, _ = split_sum(n.expr)
                if coeff != 1 and body.is_Pow and body.exp == 2:
                    return True
        return False

    def _argument(self, a: Tensor) -> Tensor:
        """A macro argument as a node of its own (the caller's value, not the macro's)."""
        if not a.dims or self.node_of(a) is not None:
            return a
        a = self.materialize(a, PREACTIVATION)
        node = self.node_of(a)
        node.meta["preactivation"] = True
        if not self._macro_ops and node.batched:  # as if it had a line of its own
            node.meta["stage"] = True
        return a

    def expand_macro(self, op: str, params: Sequence[str], stmts, args: list[Tensor]) -> Tensor:
        if len(args) != len(params):
            raise self.error(f"{op}() takes {len(params)} arguments, got {len(args)}")
        if len(stmts) > 1:  # a lazy argument used by several statements is computed once
            args = [self._argument(a) for a in args]
        first = len(self.nodes)
        env = {**self.const_env, **dict(zip(params, args, strict=True))}
        result: Tensor | None = None
        self._macro_ops.append(op)
        try:
            result = self._macro_body(stmts, env)
        finally:
            self._macro_ops.pop()
        for node in self.nodes[first:]:
            if not node.meta.get("preactivation"):
                node.meta.setdefault("macro", op)
        out = self.view_node(result)
        if out in self.nodes[first:]:  # y of batchnorm, p of softmax: its name when nested
            out.meta.setdefault("stem", stmts[-1][0] if stmts[-1][0] != "out" else op)
        return result

    def _macro_body(self, stmts, env: dict[str, Tensor]) -> Tensor:
        result: Tensor | None = None
        for local, ast in stmts:
            start = len(self.nodes)
            result = self.from_ast(ast, env)
            if len(stmts) > 1:
                if self.view_node(result) is None:
                    result = self.materialize(result, local)
                node = self.view_node(result)
                if node in self.nodes[start:] and not node.user:
                    self._taken.discard(node.name)
                    renamed = self._rename(node, self.fresh(local))
                    result = Tensor(self, result.expr.xreplace(renamed), result.dims)
            env[local] = result
        assert result is not None
        return result

    # ----- from the spec language ---------------------------------------------------------
    def from_ast(self, e: P.Expr, env: dict[str, Tensor]) -> Tensor:
        """Build a parsed spec expression; ``env`` maps names to values."""
        if isinstance(e, P.Num):
            return self.lift(sp.Integer(e.value) if isinstance(e.value, int) else sp.Float(e.value))
        if isinstance(e, P.Name):
            if e.id in env:
                return env[e.id]
            if e.id in self.dims:
                return self.size(e.id)
            raise self.error(f"unknown name '{e.id}'", suggest(e.id, env))
        if isinstance(e, P.Neg):
            return -self.from_ast(e.operand, env)
        if isinstance(e, P.Transpose):
            return self.from_ast(e.operand, env).T
        if isinstance(e, P.BinOp) and e.op == "**" and isinstance(e.right, P.Num):
            # a decimal exponent is exact: z**0.5 is sqrt(z), and its derivative 1/(2 h)
            left = self.from_ast(e.left, env)
            return self._real(left ** sp.Rational(repr(e.right.value)), e, (left,))
        if isinstance(e, P.BinOp):
            left, right = self.from_ast(e.left, env), self.from_ast(e.right, env)
            if e.op == "/" and right.expr.is_number and right.expr.is_zero:
                raise self._zero_division(e)
            return self._real(_BINOPS[e.op](left, right), e, (left, right))
        if isinstance(e, P.Call):
            args = [self.from_ast(a, env) for a in e.args]
            kwargs = {k: self.from_ast(v, env) for k, v in e.kwargs}
            return self._real(self.call(e.func, *args, **kwargs), e, args)
        raise self.error(f"unsupported expression {e!r}")  # pragma: no cover

    def _real(self, t: Tensor, e: P.Expr, operands: Sequence[Tensor]) -> Tensor:
        """``t``, unless constant operands made it undefined, infinite or complex."""
        if not all(isinstance(o.expr, sp.Number) for o in operands):
            return t
        node = self.node_of(t)
        value = node.expr if node is not None and node.expr is not None else t.expr
        if value.is_number and not (value.is_extended_real and value.is_finite):
            what = "undefined" if value is sp.nan else "complex" if value.has(sp.I) else "infinite"
            raise self.error(
                f"the constant '{P.unparse(e)}' is {what}",
                "every value must be a finite real number; check the numbers written here",
            )
        return t

    def _zero_division(self, e: P.BinOp) -> SpecError:
        return self.error(
            f"'{P.unparse(e)}' divides by zero"
            + ("" if P.unparse(e.right) == "0" else f": '{P.unparse(e.right)}' is 0"),
            "every value must be a finite real number; check the numbers written here",
        )

    def _reject_argmax_on_path(self, loss: Node) -> None:
        """An op with no derivative may compute a prediction, but the loss may not use it."""
        seen, todo = set(), [loss]
        while todo:
            n = todo.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            if n.meta.get("no_derivative"):
                raise SpecError(
                    f"{n.meta['where']}: {n.meta['no_derivative']} has no derivative, "
                    f"and the loss '{loss.name}' depends on it",
                    file=self.file,
                    line=n.meta["line"],
                    hint="compute predictions beside the loss, not in it; "
                    "use softmax(f) where the loss needs probabilities",
                )
            todo.extend(n.args)

    # ----- finish -------------------------------------------------------------------------------
    def loss(self, name: str, reduction: str = "mean") -> Graph:
        node = next((n for n in self.nodes if n.name == name and n.user), None)
        if node is None:
            raise self.error(f"the loss '{name}' is not a computed value")
        if node.dims not in ((BATCH,), ()):
            shape = ", ".join(str(d) for d in node.dims if d != BATCH)
            raise SpecError(
                f"the loss '{name}' must be a scalar per example, but it has shape ({shape})",
                file=self.file,
                line=self.lines.get(name),
                hint=f'reduce it, e.g. {name} = "sum(...)" or "mean(...)"',
            )
        if node.nograd:
            raise self.error(f"the loss '{name}' does not depend on any parameter")
        self._reject_argmax_on_path(node)
        return Graph(
            name=self.name,
            description=self.description,
            dims=self.dims,
            labels=self.labels,
            nodes=self.nodes,
            inputs=self.inputs,
            params=self.params,
            constants=self.constants,
            input_kinds=self.input_kinds,
            loss=node,
            reduction=reduction,
            batch_size=self.batch_size,
            lines=self.lines,
            file=self.file,
            param_init=self.param_init,
        )


_BINOPS = {
    "+": lambda a, c: a + c,
    "-": lambda a, c: a - c,
    "*": lambda a, c: a * c,
    "/": lambda a, c: a / c,
    "**": lambda a, c: a**c,
    "@": lambda a, c: a @ c,
}


def graph_from_spec(spec) -> Graph:  # spec: derive.lang.records.Spec
    """The graph of a parsed spec (see :mod:`derive.lang.spec`)."""
    taken = [*spec.inputs, *spec.params, *spec.constants, *spec.ops] + [
        eq.name for eq in spec.forward
    ]
    b = Builder(spec.name, spec.dims, description=spec.description, file=spec.file, taken=taken)
    b.lines = dict(spec.lines)
    env: dict[str, Tensor] = {}
    for name, c in spec.constants.items():
        env[name] = b.constant(name, c)
    for name, decl in spec.inputs.items():
        b.where = name
        env[name] = b.input(name, decl.shape, decl.kind)
    for name, decl in spec.params.items():
        b.where = name
        env[name] = b.param(name, decl.shape, decl.init)
    for name, op in spec.ops.items():
        b.custom_ops[name] = (op.args, op.expr)
    for eq in spec.forward:
        b.where = eq.name
        env[eq.name] = b.let(eq.name, b.from_ast(eq.expr, env))
        b.node_of(env[eq.name]).meta["text"] = eq.text
    b.where = "loss"
    b.lines.setdefault("loss", spec.lines.get("loss", 0))
    loss = add_penalties(b, spec, env) if spec.penalties else spec.loss
    g = b.loss(loss, spec.reduction)
    g.sha256 = spec.sha256
    return g
