"""How a spec's names are written in LaTeX, as lecturers write them.

``W1`` becomes ``W^{(1)}`` (``layer="paren"``) or ``W_{1}`` (``layer="sub"``); ``yhat``
becomes ``\\hat{y}``; Greek names (``gamma``, ``mu``) become Greek letters; other
multi-letter names become ``\\mathrm{name}``.  In matrix notation vectors and matrices
are bold (``\\mathbf{W}^{(1)}``) unless ``bold`` is off.  A spec's ``[latex]`` table
overrides any name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "eps", "zeta", "eta", "theta", "iota",
    "kappa", "lambda", "lam", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon",
    "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
    "Phi", "Psi", "Omega",
}  # fmt: skip
ALIASES = {"eps": "epsilon", "lam": "lambda"}
_SUBSCRIPTED = re.compile(r"([A-Z])([a-z]{1,2})")
_SPLIT = re.compile(r"^(?P<stem>[A-Za-z]+?)(?P<hat>hat)?_?(?P<num>\d+)?$")


@dataclass
class Names:
    """Name -> LaTeX symbol, with the course's conventions."""

    layer: str = "paren"  # "paren": W^{(1)}; "sub": W_{1}
    bold: bool = True
    overrides: dict[str, str] = field(default_factory=dict)

    def symbol(self, name: str, bold: bool = False, capital: bool = False) -> str:
        """The name's symbol; ``bold`` for a vector or matrix in matrix notation.

        ``capital`` writes a batch of vectors as a matrix (``x`` -> ``X``, rows are examples).
        """
        if name in self.overrides:
            return self.overrides[name]
        if m := _SUBSCRIPTED.fullmatch(name):  # Wq -> W_q, as attention is written
            return f"{self.symbol(m[1], bold, capital)}_{{{m[2]}}}"
        m = _SPLIT.match(name)
        if m is None and "_" in name.strip("_"):
            stem, rest = name.split("_", 1)
            return f"{self.symbol(stem, bold, capital)}_{{{self.symbol(rest)}}}"
        if m is None:
            return _roman(name)
        stem, hat, num = m["stem"], m["hat"], m["num"]
        if stem.endswith("hat") and len(stem) > 3 and not hat:
            stem, hat = stem[:-3], "hat"
        if capital:
            stem = stem[0].upper() + stem[1:]
        base = _stem(stem, bold and self.bold)
        if hat:
            base = rf"\hat{{{base}}}"
        if num:
            base = rf"{base}^{{({num})}}" if self.layer == "paren" else rf"{base}_{{{num}}}"
        return base

    def has_sub(self, name: str) -> bool:
        """Whether the symbol already carries a subscript (indices then go in parentheses)."""
        return self.layer == "sub" and bool(re.search(r"\d$", name)) and name not in self.overrides


def _stem(stem: str, bold: bool) -> str:
    if stem in GREEK:
        g = "\\" + ALIASES.get(stem, stem)
        return rf"\boldsymbol{{{g}}}" if bold else g
    if len(stem) == 1:
        return rf"\mathbf{{{stem}}}" if bold else stem
    return _roman(stem)


def _roman(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_") + "}"
