"""Op calls while building a graph (mixed into the Builder).

A call binds its values to the op's signature (:mod:`derive.ops.table`), then dispatches
on the op's kind: elementwise (one SymPy function per entry), reduction, batch, mask
(dropout) or macro (the op's spec-language statements built in turn).  The helpers the
macros use (``total``, ``size``, ``stop``) are bound here and cannot be replaced by an
``[ops]`` entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp
from sympy import Sum, Symbol

from derive.errors import suggest
from derive.graph.batchnorm import tag_running_stats
from derive.graph.dropout import add_dropout
from derive.graph.reductions import axes_of
from derive.graph.tensor import Tensor
from derive.lang import expr as P
from derive.ops.functions import ELEMENTWISE, MACROS
from derive.ops.signatures import HELPER_OPS, BindError, bind
from derive.ops.table import BUILTIN_OPS, OpKind

PREACTIVATION = "pre"
"""Stem of the name given to an op's unnamed argument (``W @ x + b``, ``x + w``)."""
VECTOR_OPS = {"cross_entropy", "softmax_cross_entropy"}


class OpCalls:
    """Calls of built-in and custom ops."""

    def call(self, op: str, *args: object, **kwargs: object) -> Tensor:
        """Apply a built-in or custom op by name.

        At the top level of an equation the op's arguments and its result keep named
        adjoints, as if the author had written each on a line of its own: what is nested
        and what is staged derive the same forms.  An argument written as an expression in
        two or more values (``x + w`` in ``bce_with_logits(x + w, t)``) becomes a node.
        """
        if not self._macro_ops and op not in HELPER_OPS and (op in self.custom_ops or op in MACROS):
            args = tuple(self._user_argument(a) for a in args)
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
                ts[0] = self._argument(ts[0])  # as expand_macro would: z gets its node first
            sig = BUILTIN_OPS[op]
            if "axis" in sig.kwargs:  # softmax(f, axis=k): checked here, not inside the body
                axes_of(self, ts[0], kwargs.get("axis"), op)
            extra = [self.lift(kwargs.get(k, v)) for k, v in sig.kwargs.items()]
            first = len(self.nodes)
            out = self.expand_macro(
                op, params, [(n, P.parse_expression(s)) for n, s in stmts], ts + extra
            )
            if op == "batchnorm":
                tag_running_stats(self.node_of(ts[0]), self.nodes[first:], extra[0].expr)
            return out
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
        nested = self._is_user_expression(a)
        # tanh(W @ x), tanh(alpha * (W @ x)): g_z = g_h (1 - h²) feeds a GEMM (g_z.T @ x);
        # named once, it is not a product broadcast over (h, d, m) inside the sum
        contraction = a.expr.has(Sum, *contracted)
        feeds_gemm = contraction and not self._macro_ops and a.batched
        if node is None and (nested or contraction):
            a = self.materialize(a, PREACTIVATION)  # z = W @ x + b: its adjoint is shared
            node = self.node_of(a)
            node.meta["preactivation"] = True
            if nested or feeds_gemm:  # as if z had a line of its own
                node.meta["stage"] = True
            if variance:
                node.meta["stem"] = "var"
        elif node is not None and feeds_gemm and not node.user and node.kind == "contraction":
            node.meta["preactivation"] = node.meta["stage"] = True
        stem = "std" if variance else op if node is None else f"{op}_{node.name}"
        return self.add_node(fn(a.expr, *extra), a.dims, stem, op=op)

    def _is_user_expression(self, a: object) -> bool:
        """Whether ``a`` is an expression in two or more values the author passed to an op.

        ``x + w`` in ``sigmoid(x + w)`` is: its adjoint reaches both, so it is staged and
        named, as ``W @ x + b`` is.  A value that reads one node (``h1``, ``A.T``, ``1 - p``:
        its adjoint goes straight on), one without the batch axis and anything built inside
        an op's definition are not.
        """
        return (
            isinstance(a, Tensor)
            and not self._macro_ops
            and a.batched
            and self.view_node(a) is None
            and len(self._args_of(a.expr)) >= 2
        )

    def _user_argument(self, a: object) -> object:
        """An op's argument the author wrote as an expression, as a staged node of its own."""
        return self._argument(a) if self._is_user_expression(a) else a

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
                    node.meta["local"] = local
            env[local] = result
        assert result is not None
        return result
