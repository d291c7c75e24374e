"""Building the graph: from Python calls or from a parsed spec, through one API.

A :class:`~derive.graph.tensor.Tensor` is a lazy pointwise index expression
(``mm[b, i] + b1[i]``) with per-example dims; it becomes a
:class:`~derive.graph.nodes.Node` when it is named, fed to an op, or contracted.  The
:class:`Builder` here holds leaves, nodes, naming and the loss; shapes
(:mod:`~derive.graph.shapes`), op calls (:mod:`~derive.graph.calls`) and the spec
language (:mod:`~derive.graph.translate`) are mixed in from their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy import Symbol

from derive.errors import SpecError, suggest
from derive.graph.calls import OpCalls
from derive.graph.labels import Labels
from derive.graph.nodes import BATCH, Graph, Node, atom_name, entry, split_sum
from derive.graph.penalties import add_penalties
from derive.graph.shapes import Shapes
from derive.graph.tensor import Tensor
from derive.graph.translate import SpecTranslation
from derive.lang import expr as P


class Builder(Shapes, OpCalls, SpecTranslation):
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

    def _is_variance(self, expr: sp.Expr) -> bool:
        """Whether ``expr`` holds a mean of squares (``batch_mean((z - mu)**2) + eps``)."""
        names = {atom_name(a) for a in expr.atoms(sp.Indexed, Symbol)}
        for n in self.nodes:
            if n.name in names and n.kind == "contraction":
                coeff, body, _ = split_sum(n.expr)
                if coeff != 1 and body.is_Pow and body.exp == 2:
                    return True
        return False

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
    def loss(self, name: str, reduction: str = "mean", per_example: bool = True) -> Graph:
        """The graph with ``name`` as its loss; ``per_example`` asks that it read the batch
        (a module's loss; a scalar expression for ``derive tex --expr`` need not)."""
        node = next((n for n in self.nodes if n.name == name and n.user), None)
        if node is None:
            raise self.error(f"the loss '{name}' is not a computed value")
        if node.dims == () and per_example:
            raise SpecError(
                f"the loss '{name}' reads no input, so it is the same number for every example",
                file=self.file,
                line=self.lines.get(name),
                hint="a loss compares predictions with the batch's inputs; a penalty on the "
                f'parameters is added to one, e.g. {name} = "ce + lam * l2(W)"',
            )
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
