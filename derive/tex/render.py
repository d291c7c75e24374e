"""Documents into files: Beamer, article, fragment or Markdown, through Jinja2 templates.

The templates (``templates/tex_*.j2``) use LaTeX-safe delimiters, ``((* *))`` for
statements, ``((( )))`` for values and ``((# #))`` for comments, so TeX's braces
never clash with Jinja's.  :func:`compile_pdf` runs ``pdflatex`` and reads its log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2

from derive.emit.templating import environment as shared_environment
from derive.tex.document import Block, Display, Document

STYLES = {
    "beamer": "tex_beamer.tex.j2",
    "article": "tex_article.tex.j2",
    "fragment": "tex_fragment.tex.j2",
    "markdown": "tex_markdown.md.j2",
}
FRAME_ROWS = 5
"""Rows of equations on one Beamer frame before the block continues on the next."""


@cache
def environment() -> jinja2.Environment:
    """The shared environment (``derive.emit.templating``) with TeX-safe delimiters."""
    return shared_environment().overlay(
        block_start_string="((*",
        block_end_string="*))",
        variable_start_string="(((",
        variable_end_string=")))",
        comment_start_string="((#",
        comment_end_string="#))",
    )


@dataclass
class Frame:
    title: str
    equation: str
    displays: list[Display]
    where: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    room: str = "0.8"  # the share of the frame's height its equations may take


def frames(blocks: list[Block]) -> list[Frame]:
    """Blocks on frames: short ones share a frame, a long one continues on the next."""
    out: list[Frame] = []
    for block in blocks:
        parts = _split(block)
        last = out[-1] if out else None
        rows = sum(len(d.rows) for d in parts[0].displays)
        if (
            len(parts) == 1
            and last is not None
            and last.blocks
            and sum(len(d.rows) for d in last.displays) + rows <= FRAME_ROWS - 2
            and len(last.displays) + len(parts[0].displays) <= 3
        ):
            last.displays += parts[0].displays
            last.where += [w for w in block.where if w not in last.where]
            last.blocks.append(block)
            continue
        out += parts
    for f in out:
        if f.blocks:
            f.title = "Backward: " + ", ".join(f"${_slash(b.title)}$" for b in f.blocks)
            if len(f.blocks) > 1:
                f.equation = ""
        f.room = "0.72" if f.equation or f.where else "0.8"
    return out


def _split(block: Block) -> list[Frame]:
    """One block as frames of at most :data:`FRAME_ROWS` rows; a display is cut only when it
    alone is longer than a frame."""
    out: list[Frame] = []
    current: list[Display] = []
    used = 0
    for disp in block.displays:
        if current and used + len(disp.rows) > FRAME_ROWS:
            out.append(Frame("", "", current))
            current, used = [], 0
        rows = disp.rows
        while rows:
            take = rows[:FRAME_ROWS]
            rows = rows[len(take) :]
            lhs = disp.lhs if take[0] is disp.rows[0] else ""
            current.append(Display(lhs, take, disp.boxed and not rows, disp.lhs_expr))
            used += len(take)
            if rows:
                out.append(Frame("", "", current))
                current, used = [], 0
    if current or not out:
        out.append(Frame("", "", current))
    out[0].equation = block.equation
    out[0].blocks = [block]
    for f in out[1:]:
        f.title = f"Backward: ${_slash(block.title)}$ (continued)"
    out[-1].where = list(block.where)
    return out


def _slash(title: str) -> str:
    """Every ``\\frac{\\partial L}{\\partial W}`` as ``\\partial L / \\partial W`` (for titles)."""
    out, k = "", 0
    while (start := title.find(r"\frac{\partial", k)) >= 0:
        top_end = _closing(title, start + 5)
        bottom_end = _closing(title, top_end + 1)
        top, bottom = title[start + 6 : top_end], title[top_end + 2 : bottom_end]
        out += title[k:start] + f"{top} / {bottom}"
        k = bottom_end + 1
    return out + title[k:]


def _closing(text: str, opening: int) -> int:
    depth = 0
    for i in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise ValueError(text)


def render(doc: Document, style: str = "beamer") -> str:
    """The document as the text of a ``.tex`` (or ``.md``) file."""
    view = {
        "name": _escape(doc.name),
        "title": _escape(doc.name.replace("_", " ")),
        "title_text": doc.name,
        "subtitle": _escape(doc.description) if doc.description else "",
        "forward": doc.forward,
        "loss_note": _loss_note(doc),
        "blocks": doc.blocks,
        "headings": {b.node: _slash(b.title) for b in doc.blocks},
        "frames": frames(doc.blocks),
        "example": doc.extra.get("example"),
        "loss_symbol": doc.extra.get("loss_symbol", doc.loss),
    }
    return environment().get_template(STYLES[style]).render(doc=view)


def _loss_note(doc: Document) -> str:
    loss = doc.extra.get("loss_symbol", doc.loss)
    how = "the mean" if doc.reduction == "mean" else "the sum"
    scale = f" (times $1/{doc.batch_size}$ for the mean)" if how == "the mean" else ""
    return (
        f"{{\\footnotesize ${loss}$ is one example's loss; the batch loss is {how} over "
        "the examples. Gradients below are of one example's loss; a parameter's gradient "
        f"sums over the examples $b${scale}.}}"
    )


_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "^": r"\^{}", "~": r"\~{}", "²": r"$^2$", "³": r"$^3$",
    "Σ": r"$\Sigma$", "σ": r"$\sigma$", "μ": r"$\mu$", "∂": r"$\partial$", "×": r"$\times$",
    "⊙": r"$\odot$", "→": r"$\to$", "≥": r"$\geq$", "≤": r"$\leq$", "−": "-", "·": r"$\cdot$",
    "ᵀ": r"$^\top$", "β": r"$\beta$", "γ": r"$\gamma$", "ε": r"$\varepsilon$", "λ": r"$\lambda$",
}  # fmt: skip


def _escape(text: str) -> str:
    """Plain text for LaTeX: special characters escaped, common math symbols as math,
    anything else outside Latin-1 dropped (pdflatex cannot typeset it)."""
    out = []
    for ch in text:
        if ch in _TEXT_ESCAPES:
            out.append(_TEXT_ESCAPES[ch])
        elif ord(ch) < 256:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out)


# ----- compiling -----------------------------------------------------------------------------
@dataclass
class Compiled:
    """What ``pdflatex`` said: the PDF (when written) and the problems found in its log."""

    ok: bool
    pdf: Path | None
    errors: list[str]
    overfull: list[float]
    log: str


def pdflatex() -> str | None:
    return shutil.which("pdflatex")


_OVERFULL = re.compile(r"Overfull \\hbox \(([\d.]+)pt too wide\)")


def compile_pdf(
    tex: str, out_dir: Path | None = None, name: str = "derivation", passes: int = 2
) -> Compiled:
    """Compile ``tex`` with ``pdflatex`` (twice for Beamer's page refs) in ``out_dir``.

    ``ok`` is False on an error, an undefined control sequence or a missing file.
    """
    exe = pdflatex()
    if exe is None:
        raise FileNotFoundError("pdflatex")
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="derive-tex-"))
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{name}.tex"
    src.write_text(tex, encoding="utf-8")
    cmd = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", src.name]
    for _ in range(passes):
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, timeout=120, check=False)
        if proc.returncode != 0:
            break
    log_path = folder / f"{name}.log"
    log = log_path.read_text(encoding="latin-1") if log_path.exists() else proc.stdout.decode()
    errors = [line for line in log.splitlines() if line.startswith("!")]
    if proc.returncode != 0 and not errors:
        errors.append(f"pdflatex exited with {proc.returncode}")
    overfull = [float(m) for m in _OVERFULL.findall(log)]
    pdf = folder / f"{name}.pdf"
    return Compiled(not errors, pdf if pdf.exists() else None, errors, overfull, log)
