"""Batch norm's train/eval switch in the generated forward pass.

Training keeps the derived lines for the centered value and the std (batch statistics) and,
when a ``state`` dict is given, moves the running statistics toward the batch's:
``run = (1 - momentum) run + momentum stat_B``, the variance unbiased
(``Σ_b z_c² / (m - 1)``), as PyTorch's ``BatchNorm``.  Evaluation reads them instead:
``z_c = z - state["z.mean"]``, ``std = sqrt(state["z.var"] + eps)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from derive.emit.printers import NumPyIndexPrinter
from derive.graph.batchnorm import RUNNING, RunningStats
from derive.graph.nodes import BATCH, Graph


@dataclass
class TrainEval:
    """The centered and std lines of one batch norm, chosen by ``train``."""

    stats: RunningStats
    train: list  # the derived Lines (batch statistics)
    centered_shape: str
    std_shape: str

    @property
    def target(self) -> str:
        return self.stats.centered

    @property
    def keys(self) -> tuple[str, str]:
        return f"{self.stats.input}.mean", f"{self.stats.input}.var"

    def source(self, indent: str = "    ", width: int = 100) -> list[str]:
        """``if train: <derived lines, running update> else: <running statistics>``."""
        inner = indent * 2
        s, (mean, var) = self.stats, self.keys
        eps = NumPyIndexPrinter(()).doprint(s.eps)
        out = [f"{indent}if train:"]
        for ln in self.train:
            out += ln.source(inner, width)
        out += [
            f"{inner}if state is not None:",
            f'{inner}    _running(state, "{s.input}", {s.input}, {s.centered}, momentum)',
            f"{indent}else:",
            f'{inner}{s.centered} = {s.input} - state["{mean}"]  # {self.centered_shape}',
            f'{inner}{s.std} = np.sqrt(state["{var}"] + {eps})  # {self.std_shape}',
        ]
        return out


def running_stats(graph: Graph) -> list[RunningStats]:
    """Every batch norm layer of ``graph``, in order."""
    return [n.meta[RUNNING] for n in graph.nodes if RUNNING in n.meta]


def state_shapes(graph: Graph) -> dict[str, tuple]:
    """Per-example dims of each batch norm's input (the running statistics' shape)."""
    nodes = {n.name: n for n in graph.nodes}
    return {
        s.input: tuple(d for d in nodes[s.input].dims if d != BATCH) for s in running_stats(graph)
    }


def switch_lines(forward: list, graph: Graph) -> list:
    """``forward`` with each batch norm's centered and std lines made one :class:`TrainEval`.

    The std line moves up to just after the centered one: it reads only that and ``eps``.
    """
    out = list(forward)
    for s in running_stats(graph):
        at = {ln.target: k for k, ln in enumerate(out)}
        if s.centered not in at or s.std not in at:
            raise RuntimeError(f"batch norm of {s.input}: no line for {s.centered} or {s.std}")
        centered, std = out[at[s.centered]], out[at[s.std]]
        block = TrainEval(s, [centered, std], centered.shape, std.shape)
        out = [ln for ln in out if ln is not std]
        out[out.index(centered)] = block
    return out
