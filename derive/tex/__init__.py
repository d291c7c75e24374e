"""LaTeX derivations: a derivation's recorded steps as Beamer frames, an article, a fragment
or Markdown, every displayed equality checked numerically (:mod:`derive.tex.verify`).

``tex_document(d, options)`` builds the :class:`~derive.tex.document.Document` (the walk in
backprop order); ``render(doc, style)`` writes it through the templates in ``templates/``.
"""

from __future__ import annotations

from derive.tex.document import Document, Options, Walker
from derive.tex.render import STYLES, compile_pdf, render


def tex_document(d, options: Options | None = None) -> Document:
    """The document of derivation ``d`` (see :class:`~derive.tex.document.Walker`)."""
    return Walker(d, options or Options()).document()


def markdown(d) -> str:
    """The derivation as Markdown with ``$$`` math (what Jupyter shows for a Derivation)."""
    return render(tex_document(d), "markdown")


def latex(d) -> str:
    """The displayed equations only, one ``$$ ... $$`` block each (Jupyter's LaTeX view)."""
    blocks = markdown(d).split("$$")[1::2]
    return "\n".join(f"$${b.strip()}$$" for b in blocks)


__all__ = [
    "STYLES",
    "Document",
    "Options",
    "compile_pdf",
    "latex",
    "markdown",
    "render",
    "tex_document",
]
