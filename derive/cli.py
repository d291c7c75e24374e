"""``derive gen | check | show | demo``: the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from derive.errors import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SpecError as err:
        print(str(err), file=sys.stderr)
        return 2
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="derive",
        description="Derive neural-network gradients symbolically, emit NumPy, check it.",
    )
    sub = p.add_subparsers(required=True, metavar="COMMAND")
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
    chk.add_argument("--seed", type=int, default=0)
    chk.add_argument("--no-symbolic", action="store_true", help="skip the SymPy cross-check")
    chk.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds the SymPy cross-check may take before it is skipped (default 60)",
    )
    chk.set_defaults(run=cmd_check)
    show = sub.add_parser("show", help="print every derived adjoint and the steps taken")
    show.add_argument("spec", metavar="SPEC")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_show)
    demo = sub.add_parser("demo", help="derive, emit, check and train the bundled classifier")
    demo.add_argument("-o", "--out", default=None, help="where to write the generated module")
    demo.add_argument("--epochs", type=int, default=30)
    demo.set_defaults(run=cmd_demo)
    return p


def cmd_gen(args: argparse.Namespace) -> int:
    from derive.emit_numpy import write_atomic
    from derive.pipeline import generate

    stale = 0
    done = [generate(spec, args.out, write=False) for spec in args.specs]  # all or nothing
    for spec, g in zip(args.specs, done, strict=True):
        for name in g.derivation.unused_params:
            print(f"{spec}: warning: the loss does not depend on '{name}'", file=sys.stderr)
        if not args.check and g.changed:
            write_atomic(g.path, g.text)
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
    from derive.check import check_spec

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
        print(json.dumps(show_json(d), indent=2))
    else:
        print(show_text(d))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from derive.demo import run_demo

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="derive-demo-"))
    return run_demo(out, epochs=args.epochs)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
