"""The grading commands behind ``derive verify code``, ``derive grade``, ``derive autograder``."""

from __future__ import annotations

import argparse
import json
import sys

from derive.grading import sandbox
from derive.grading.code import BadInput, parse_map, verify_code
from derive.grading.reference import load_reference


def limits_from(args: argparse.Namespace) -> sandbox.Limits:
    """Sandbox limits from ``--timeout`` (CPU time gets the same number of seconds)."""
    if args.timeout <= 0:
        raise BadInput(f"--timeout must be positive, got {args.timeout:g}")
    return sandbox.Limits(wall_seconds=args.timeout, cpu_seconds=max(1, int(args.timeout)))


def _cases(args: argparse.Namespace) -> int:
    if not 1 <= args.cases <= 20:
        raise BadInput(f"--cases must be between 1 and 20, got {args.cases}")
    return args.cases


def verify_code_command(args: argparse.Namespace) -> int:
    """Exit 0 when every gradient is right, 1 otherwise, 2 on bad input."""
    try:
        ref = load_reference(args.spec)
        mapping = parse_map(args.map, ref)
        cases = ref.cases(_cases(args), seed=args.seed)
        report = verify_code(
            ref, cases, args.submission, entry=args.entry, mapping=mapping, limits=limits_from(args)
        )
    except BadInput as err:
        print(f"derive: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.text())
    return 0 if report.ok else 1
