"""``derive gen | check | show | tex | demo | train | analyze``: the command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from derive import __version__
from derive.errors import SpecError


class UsageError(Exception):
    """A bad command line (an option value, an output folder): exit 2, like argparse."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SpecError as err:
        print(str(err), file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"derive: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (derive show | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as err:  # a bug in derive, not in the spec
        if os.environ.get("DERIVE_DEBUG"):
            raise
        print(
            f"derive: internal error ({type(err).__name__}: {err}); this is a bug in derive, "
            "not in your spec\n  hint: rerun with DERIVE_DEBUG=1 to see the traceback",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:  # pragma: no cover
        return 130


class _CommandParser(argparse.ArgumentParser):
    """A command's parser; ``arguments_from`` names a module whose ``add_arguments`` it runs
    when the command is the one given (``derive gen`` need not import LaTeX and NumPy)."""

    arguments_from: str | None = None

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self.arguments_from:
            import importlib

            module, self.arguments_from = self.arguments_from, None
            importlib.import_module(module).add_arguments(self)
        return super().parse_known_args(args, namespace)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="derive",
        description="Derive neural-network gradients symbolically, emit NumPy, check it.",
    )
    p.add_argument("--version", action="version", version=f"derive {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND", parser_class=_CommandParser)
    gen = sub.add_parser("gen", help="write generated/NAME.py for each spec")
    gen.add_argument("specs", nargs="+", metavar="SPEC")
    gen.add_argument("-o", "--out", default="generated", help="output folder (default generated/)")
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is missing or stale"
    )
    gen.set_defaults(run=cmd_gen)
    chk = sub.add_parser("check", help="prove the generated code right numerically")
    chk.add_argument("spec", metavar="SPEC")
    chk.add_argument("--json", action="store_true", help="print the result as JSON")
    chk.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    chk.add_argument("--no-symbolic", action="store_true", help="skip the SymPy cross-check")
    chk.add_argument(
        "--budget",
        type=_seconds,
        default=60.0,
        help="seconds the SymPy cross-check may take before it is skipped (default 60)",
    )
    chk.set_defaults(run=cmd_check)
    show = sub.add_parser("show", help="print every derived adjoint and the steps taken")
    show.add_argument("spec", metavar="SPEC")
    show.add_argument("--json", action="store_true", help="print the result as JSON")
    show.add_argument(
        "--full",
        action="store_true",
        help="also write every adjoint out in forward values (grows with depth; see --budget)",
    )
    show.add_argument(
        "--budget",
        type=_seconds,
        default=10.0,
        help="seconds --full may spend before it leaves the remaining adjoints staged (default 10)",
    )
    show.set_defaults(run=cmd_show)
    tex = sub.add_parser("tex", help="write the derivation as LaTeX (Beamer, article, Markdown)")
    tex.set_defaults(run=cmd_tex)
    tex.arguments_from = "derive.tex.command"  # its options load only when tex is the command
    demo = sub.add_parser("demo", help="derive, emit, check and train the bundled classifier")
    demo.add_argument("-o", "--out", default=None, help="keep the generated module in this folder")
    demo.add_argument("--epochs", type=_count(1), default=30, help="training epochs (default 30)")
    demo.set_defaults(run=cmd_demo)
    verify = sub.add_parser("verify", help="check a student's work against the derivation")
    vsub = verify.add_subparsers(required=True, metavar="WHAT")
    vcode = vsub.add_parser("code", help="run hand-written gradient code in a sandbox, judge it")
    vcode.add_argument("--spec", required=True, metavar="SPEC")
    vcode.add_argument("--submission", required=True, help="a .py file or a folder")
    _grading_options(vcode)
    vcode.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    vcode.add_argument("--results", metavar="FILE", help="also write Gradescope's results.json")
    vcode.set_defaults(run=cmd_verify_code)
    formula = vsub.add_parser(
        "formula",
        help="is a formula (LaTeX or plain math) the right derivative?",
        description="Judge a derivative typed as LaTeX or plain math. Exit 0: equivalent; "
        "1: not equivalent (or right only up to transpose); 2: unreadable answer or bad input.",
    )
    formula.add_argument("--expr", help="the expression to differentiate (scalar questions)")
    formula.add_argument("--spec", help="a spec: the question is the adjoint of a node")
    formula.add_argument("--wrt", help="the variable (with --expr) or node (with --spec)")
    formula.add_argument(
        "--given", action="append", default=[], metavar="NAME=NUMBER", help="fix a variable"
    )
    formula.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME=FORMULA",
        help="a name the answer may use, e.g. \\hat{y}=sigmoid(w1*x1)",
    )
    formula.add_argument(
        "--batch", action="store_true", help="with --spec: a parameter's gradient for a batch"
    )
    formula.add_argument("--answer", help="the answer to judge")
    formula.add_argument("--choices", nargs="+", metavar="LABEL: FORMULA", help="quiz options")
    formula.add_argument("--answers", metavar="CSV", help="a class export: columns student, answer")
    formula.add_argument("--rubric", metavar="TOML", help="marks: full and per recognised mistake")
    formula.add_argument("--json", action="store_true")
    formula.add_argument("--seed", type=int, default=0)
    formula.set_defaults(run=cmd_verify_formula)
    serve = sub.add_parser("serve", help="a local page where students check their derivatives")
    serve.add_argument(
        "--spec", action="append", default=[], metavar="SPEC", help="offer this spec's nodes"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.set_defaults(run=cmd_serve)
    train = sub.add_parser("train", help="train the generated module on a data set")
    train.add_argument("spec", metavar="SPEC")
    train.add_argument("--data", required=True, help="FILE.csv, FILE.npz or digits")
    train.add_argument(
        "--optimizer",
        default="adam",
        help="sgd, momentum, nesterov, adagrad, rmsprop, adam (default) or adamw",
    )
    train.add_argument("--epochs", type=_count(1), default=30, help="at most this many (30)")
    train.add_argument("--batch-size", type=_count(1), default=32, help="mini-batch size (32)")
    train.add_argument("--lr", type=_seconds, default=None, help="learning rate epsilon_0")
    train.add_argument(
        "--schedule", default="constant", help="constant (default), step, linear or cosine"
    )
    train.add_argument(
        "--val-split", type=float, default=0.2, help="fraction held out for validation (0.2)"
    )
    train.add_argument(
        "--patience", type=_count(1), default=10, help="epochs without a better validation loss"
    )
    train.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    train.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=SIZE",
        help="a size the spec leaves open",
    )
    train.add_argument("--plot", metavar="PNG", help="write the learning curves here")
    train.add_argument("--save", metavar="NPZ", help="write the best weights here")
    train.add_argument("--json", action="store_true", help="print the final figures as JSON")
    train.set_defaults(run=cmd_train)
    analyze = sub.add_parser("analyze", help="parameter count and gradient flow at initialization")
    analyze.add_argument("specs", nargs="+", metavar="SPEC")
    analyze.add_argument("--plot", metavar="PNG", help="write the gradient-flow plot here")
    analyze.add_argument("--json", action="store_true")
    analyze.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    analyze.add_argument("--batch", type=_count(2), default=64, help="random batch size (64)")
    analyze.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE")
    analyze.set_defaults(run=cmd_analyze)
    grade = sub.add_parser("grade", help="grade a class of gradient-code submissions")
    grade.add_argument("spec", metavar="SPEC")
    grade.add_argument("submissions", help="a folder: one folder or one .py file per student")
    grade.add_argument("--out", required=True, help="folder for results.json files and the CSV")
    grade.add_argument("--jobs", type=_count(1), default=None, help="parallel sandboxes")
    _grading_options(grade)
    grade.set_defaults(run=cmd_grade)
    bundle = sub.add_parser("autograder", help="write a Gradescope autograder bundle (.zip)")
    bundle.add_argument("spec", metavar="SPEC")
    bundle.add_argument("-o", "--out", default="autograder.zip", help="(default autograder.zip)")
    bundle.add_argument("--wheel", default=None, help="derive's wheel (default: build one)")
    _grading_options(bundle)
    bundle.set_defaults(run=cmd_autograder)
    return p


def _count(least: int):
    """An argparse type: an integer of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, zero or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def _writable_folder(out: Path) -> None:
    """Raise :class:`UsageError` unless files can be written into ``out`` (created if missing)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: not a folder; give the folder to write NAME.py into")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise UsageError(
            f"-o {out}: cannot write there ({err.strerror}); pick another folder"
        ) from None


def _grading_options(p: argparse.ArgumentParser) -> None:
    """--entry, --map, --cases, --seed, --timeout: shared by verify code, grade, autograder."""
    p.add_argument("--entry", default="backward", help="the function to call (default backward)")
    p.add_argument(
        "--map",
        default=None,
        metavar="SPEC=SUB,...",
        help="names the submission uses for inputs/parameters, e.g. x=X,t=Y",
    )
    p.add_argument(
        "--cases", type=_count(1), default=3, help="random batches to test on (default 3)"
    )
    p.add_argument("--seed", type=_count(0), default=0, help="random seed (default 0)")
    p.add_argument(
        "--timeout", type=_seconds, default=20.0, help="seconds per submission (default 20)"
    )


def cmd_gen(args: argparse.Namespace) -> int:
    from derive.emit.templating import write_atomic
    from derive.pipeline import generate

    stale = 0
    done = [generate(spec, args.out, write=False) for spec in args.specs]  # all or nothing
    seen: dict[Path, str] = {}
    for spec, g in zip(args.specs, done, strict=True):
        if g.path in seen:
            raise UsageError(
                f'{seen[g.path]} and {spec} both have name = "{g.derivation.graph.name}", '
                f"so both would write {g.path}; give each spec its own name"
            )
        seen[g.path] = spec
    if not args.check and any(g.changed for g in done):
        _writable_folder(Path(args.out))
    for spec, g in zip(args.specs, done, strict=True):
        for name in g.derivation.unused_params:
            print(f"{spec}: warning: the loss does not depend on '{name}'", file=sys.stderr)
        if not args.check and g.changed:
            try:
                write_atomic(g.path, g.text)
            except OSError as err:
                raise UsageError(f"cannot write {g.path} ({err.strerror})") from None
        if args.check:
            if g.changed:
                stale += 1
                print(f"{g.path}: stale (regenerate with: derive gen {spec})", file=sys.stderr)
            else:
                print(f"{g.path}: up to date")
        else:
            print(f"{g.path}: {'written' if g.changed else 'unchanged'}")
    return 1 if stale else 0


def cmd_check(args: argparse.Namespace) -> int:
    from derive.verify.run import check_spec

    report = check_spec(
        args.spec, seed=args.seed, symbolic=not args.no_symbolic, budget=args.budget
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.table())
    return 0 if report.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    from derive.pipeline import derive_spec
    from derive.show import show_json, show_text

    d = derive_spec(args.spec)
    if args.json:
        print(json.dumps(show_json(d, full=args.full, budget=args.budget), indent=2))
    else:
        print(show_text(d, full=args.full, budget=args.budget), end="")
    return 0


def cmd_verify_formula(args: argparse.Namespace) -> int:
    from derive.answers.command import run_formula

    return run_formula(args)


def cmd_tex(args: argparse.Namespace) -> int:
    from derive.tex.command import run

    return run(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from derive.answers.scalar import BadQuestion
    from derive.answers.server import run_server

    try:
        return run_server(args.spec, args.host, args.port)
    except BadQuestion as err:
        print(f"derive serve: {err}", file=sys.stderr)
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from derive.demo import run_demo

    if args.out:
        _writable_folder(Path(args.out))
        return run_demo(Path(args.out), epochs=args.epochs)
    with tempfile.TemporaryDirectory(prefix="derive-demo-") as tmp:
        return run_demo(Path(tmp), epochs=args.epochs)


def cmd_autograder(args: argparse.Namespace) -> int:
    from derive.grading.cli import autograder_command

    return autograder_command(args)


def cmd_grade(args: argparse.Namespace) -> int:
    from derive.grading.cli import grade_command

    return grade_command(args)


def cmd_verify_code(args: argparse.Namespace) -> int:
    from derive.grading.cli import verify_code_command

    return verify_code_command(args)


def cmd_train(args: argparse.Namespace) -> int:
    from derive.train.command import TrainOptions, parse_dims, run_train

    opts = TrainOptions(
        data=args.data,
        optimizer=args.optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        val_split=args.val_split,
        patience=args.patience,
        seed=args.seed,
        dims=parse_dims(args.dim),
        plot=args.plot,
        save=args.save,
        json=args.json,
    )
    run_train(args.spec, opts)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from derive.train.command import parse_dims, run_analyze

    run_analyze(args.specs, parse_dims(args.dim), args.seed, args.batch, args.plot, args.json)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
