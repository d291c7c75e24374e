"""Names derive gives things: gradients (``g_X`` is ``∂L/∂X``) and the generated module's API.

The one place that writes or reads the gradient prefix, and the one place the module's
function and constant names are written; a spec may declare none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ModuleAPI:
    """The names a generated NumPy module defines and its functions take.

    The template writes them from here, the spec reader reserves them
    (:data:`MODULE_NAMES`), and the checks read modules through them
    (:class:`derive.verify.module.GradModule`).
    """

    forward: str = "forward"
    backward: str = "backward"
    loss_and_grad: str = "loss_and_grad"
    init_params: str = "init_params"
    name: str = "NAME"
    loss: str = "LOSS"
    reduction: str = "REDUCTION"
    dims: str = "DIMS"
    inputs: str = "INPUTS"
    params_table: str = "PARAMS"
    params: str = "params"
    batch: str = "batch"
    cache: str = "cache"
    seed: str = "g_loss"
    dropout_table: str = "DROPOUT"  # modules with dropout only
    with_dropout: str = "with_dropout"
    train: str = "train"  # forward's mode arguments in modules with dropout
    dropout_seed: str = "seed"
    init_state: str = "init_state"  # modules with batch norm only
    state: str = "state"  # forward's running statistics and their update rate
    momentum: str = "momentum"

    @property
    def functions(self) -> tuple[str, ...]:
        return (self.forward, self.backward, self.loss_and_grad, self.init_params)

    @property
    def dropout_names(self) -> tuple[str, ...]:
        return (self.dropout_table, self.with_dropout, self.train, self.dropout_seed)

    @property
    def batchnorm_names(self) -> tuple[str, ...]:
        return (self.init_state, self.state, self.momentum)

    @property
    def constants(self) -> tuple[str, ...]:
        return (self.name, self.loss, self.reduction, self.dims, self.inputs, self.params_table)

    @property
    def arguments(self) -> tuple[str, ...]:
        return (self.params, self.batch, self.cache, self.seed)


API = ModuleAPI()

PYTHON_NAMES = ("np", "ValueError", "bool", "dict", "isinstance", "len", "next", "str", "zip")
"""The module's NumPy import and the Python built-ins it reads (a spec name would shadow them)."""

MODULE_NAMES = frozenset(
    {
        *API.functions,
        *API.constants,
        *API.arguments,
        *API.dropout_names,
        *API.batchnorm_names,
        *PYTHON_NAMES,
    }
)
"""Every name a generated module binds or reads at module level: a spec may not declare one."""
