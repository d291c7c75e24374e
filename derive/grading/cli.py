"""The grading commands behind ``derive verify code``, ``derive grade``, ``derive autograder``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from derive.grading import sandbox
from derive.grading.code import BadInput, parse_map, verify_code
from derive.grading.grade import (
    default_jobs,
    find_submissions,
    grade_class,
    gradescope_json,
    stderr_progress,
    write_json,
)
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
    if args.results:
        write_json(Path(args.results), gradescope_json(report))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.text())
    return 0 if report.ok else 1


def grade_command(args: argparse.Namespace) -> int:
    """Grade a folder of submissions; exit 0 when all were graded, 2 on bad input."""
    try:
        folder, out = Path(args.submissions), Path(args.out)
        subs = find_submissions(folder)
        if out.resolve().is_relative_to(folder.resolve()):
            raise BadInput(f"--out {out}: inside the submissions folder; write it elsewhere")
        if out.exists() and not out.is_dir():
            raise BadInput(f"--out {out}: not a folder")
        ref = load_reference(args.spec)
        mapping = parse_map(args.map, ref)
        cases = ref.cases(_cases(args), seed=args.seed)
        limits = limits_from(args)
    except BadInput as err:
        print(f"derive: error: {err}", file=sys.stderr)
        return 2
    jobs = args.jobs or default_jobs()
    print(
        f"derive grade: {len(subs)} submissions, {jobs} jobs; {sandbox.protection()}",
        file=sys.stderr,
    )
    result = grade_class(
        ref,
        cases,
        subs,
        out,
        entry=args.entry,
        mapping=mapping,
        limits=limits,
        jobs=jobs,
        progress=stderr_progress(len(subs)),
    )
    rate = len(subs) / result.seconds if result.seconds > 0 else float("inf")
    print(
        f"graded {len(subs)} submissions in {result.seconds:.1f} s ({rate:.1f}/s, {jobs} jobs); "
        f"{result.full_marks} with full marks; results in {out}/students/, summary in "
        f"{out / 'summary.csv'}"
    )
    return 0


def autograder_command(args: argparse.Namespace) -> int:
    """Write the Gradescope bundle; exit 2 on bad input (the spec and --map are checked)."""
    from derive.grading.autograder import write_bundle

    try:
        ref = load_reference(args.spec)
        parse_map(args.map, ref)
        _cases(args)
        limits_from(args)
        out = Path(args.out)
        if out.suffix != ".zip" or (out.exists() and out.is_dir()):
            raise BadInput(f"-o {out}: give a file name ending in .zip")
        names = write_bundle(
            Path(args.spec),
            out,
            entry=args.entry,
            mapping=args.map,
            cases=args.cases,
            seed=args.seed,
            timeout=args.timeout,
            wheel=Path(args.wheel) if args.wheel else None,
        )
    except BadInput as err:
        print(f"derive: error: {err}", file=sys.stderr)
        return 2
    print(f"{out}: written ({', '.join(names)})")
    return 0
