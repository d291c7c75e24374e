"""``derive tex``: options checked, the document built, rendered and written (or nothing).

Bad input (an unknown ``--node``, an ``--at`` name or value, an ``--expr`` that does not
parse, an unbalanced ``[latex]`` override) raises :class:`derive.errors.SpecError` before
anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from derive.errors import SpecError
from derive.show import spec_str
from derive.tex.document import Document, Options
from derive.tex.names import Names
from derive.tex.render import STYLES, compile_pdf, pdflatex, render
from derive.tex.verify import check_document

TEX_PACKAGES = "texlive-latex-recommended texlive-pictures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", metavar="SPEC", help="the network spec (or use --expr)")
    p.add_argument("-o", "--out", help="the file to write (default: standard output)")
    p.add_argument("--style", choices=sorted(STYLES), default="beamer")
    p.add_argument("--node", help="only this value's (or parameter's) gradient")
    p.add_argument("--notation", choices=["matrix", "index"], default="matrix")
    p.add_argument("--steps", choices=["full", "brief"], default="full")
    p.add_argument("--layer", choices=["paren", "sub"], default=None,
                   help="W1 as W^{(1)} (paren; specs) or W_1 (sub; --expr)")  # fmt: skip
    p.add_argument("--no-bold", action="store_true", help="vectors and matrices not in bold")
    p.add_argument("--at", help="worked example at NAME=VALUE,... (scalars)")
    p.add_argument("--graph", action="store_true", help="draw the computational graph (TikZ)")
    p.add_argument("--expr", help="a scalar expression instead of a spec")
    p.add_argument("--wrt", help="with --expr: the variables to differentiate in (comma-separated)")
    p.add_argument("--given", help="with --expr: values NAME=VALUE,... substituted in the result")
    p.add_argument("--json", action="store_true", help="print every step as JSON")
    p.add_argument("--pdf", action="store_true", help="also compile with pdflatex")


def run(args: argparse.Namespace) -> int:
    doc, d = build(args)
    if args.pdf and args.style == "markdown":
        raise SpecError("--pdf needs a LaTeX style", hint="use --style beamer or article")
    wrong = check_document(d, doc, given=doc.extra.get("given"))
    if wrong:  # a displayed equality that does not hold is a bug in derive: show nothing
        print("derive tex: internal error: a displayed step does not hold:", file=sys.stderr)
        for m in wrong[:3]:
            print(f"  {m}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(steps_json(doc), indent=2))
        return 0
    text = render(doc, args.style)
    compiled = None
    if args.pdf:
        if pdflatex() is None:
            print(
                "derive tex: no TeX engine found (pdflatex is not on PATH); nothing compiled.\n"
                f"  hint: install one, e.g. apt-get install {TEX_PACKAGES}",
                file=sys.stderr,
            )
            return 1
        src = (args.style != "fragment" and text) or _standalone(text)
        stem = Path(args.out).stem if args.out else doc.name
        compiled = compile_pdf(src, None, stem)
    if args.out:
        _write(Path(args.out), text)
        print(f"{args.out}: written", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if compiled is not None:
        if not compiled.ok:
            print("pdflatex failed:\n  " + "\n  ".join(compiled.errors[:5]), file=sys.stderr)
            return 3
        target = Path(args.out).with_suffix(".pdf") if args.out else Path(f"{doc.name}.pdf")
        compiled.pdf.replace(target)
        print(f"{target}: PDF written", file=sys.stderr)
    return 0


def build(args: argparse.Namespace) -> tuple[Document, object]:
    from derive.tex import tex_document
    from derive.tex.example import parse_point, worked_example

    if args.expr is not None:
        from derive.tex.expr import expr_document

        if args.spec:
            raise SpecError("give a spec or --expr, not both")
        opt = Options(steps=args.steps, notation="index", names=_names(args, {}, "sub"))
        doc = expr_document(args.expr, args.wrt, args.given, opt)
        return doc, doc.extra["derivation"]
    if args.wrt or args.given:
        raise SpecError("--wrt and --given go with --expr", hint="use --node with a spec")
    if not args.spec:
        raise SpecError("no spec given", hint="derive tex SPEC, or derive tex --expr EXPR")
    from derive.autodiff.reverse import derive
    from derive.graph.builder import graph_from_spec
    from derive.lang.spec import load_spec

    spec = load_spec(args.spec)
    d = derive(graph_from_spec(spec))
    shown = [n for n, a in d.adjoints.items() if a.node.user or a.node.kind in ("param", "input")]
    if args.node is not None and args.node not in shown:
        known = ", ".join(shown)
        raise SpecError(
            f"unknown --node '{args.node}': it is not a value with a gradient",
            file=args.spec,
            hint=f"choose one of: {known}",
        )
    point = parse_point(d, args.at, args.spec) if args.at else None
    names = _names(args, getattr(spec, "latex", {}))
    opt = Options(steps=args.steps, notation=args.notation, names=names, node=args.node)
    doc = tex_document(d, opt)
    if point is not None or args.graph:
        doc.extra["example"] = worked_example(d, doc, point, args.graph, names)
    return doc, d


def _names(args: argparse.Namespace, overrides: dict, layer: str = "paren") -> Names:
    return Names(layer=args.layer or layer, bold=not args.no_bold, overrides=dict(overrides))


def steps_json(doc: Document) -> dict:
    """Every displayed row as ``{kind, node, latex, sympy}`` (``sympy`` rebuilds with sympify)."""
    steps = []
    for block in doc.blocks:
        for k, disp in enumerate(block.displays):
            if disp.lhs_expr is not None:
                steps.append(_step("lhs", block.node, disp.lhs, disp.lhs_expr, k))
            for row in disp.rows:
                steps.append(_step(row.kind, block.node, row.latex, row.expr, k, row.fact))
    return {"name": doc.name, "loss": doc.loss, "steps": steps}


def _step(kind: str, node: str, latex: str, expr, display: int, fact: str = "") -> dict:
    return {
        "kind": kind,
        "node": node,
        "display": display,
        "latex": latex,
        "sympy": spec_str(expr, parsable=True),
        "fact": fact,
    }


def _standalone(fragment: str) -> str:
    return (
        "\\documentclass{article}\n\\usepackage{amsmath,amssymb,bm}\n\\begin{document}\n"
        + fragment
        + "\n\\end{document}\n"
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise SpecError(f"cannot write {path}: {err.strerror or err}") from None
