"""``derive verify formula``: one answer, a quiz's choices, or a class's answers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from derive.answers.scalar import BadQuestion, judge_scalar
from derive.answers.verdict import Verdict

Judge = Callable[[str], Verdict]


def parse_given(items: list[str]) -> dict[str, float]:
    """``--given y=1`` pairs."""
    given: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            given[name.strip()] = float(value)
        except ValueError:
            raise BadQuestion(f"--given {item!r}: expected NAME=NUMBER, e.g. y=1") from None
        if not sep or not name.strip():
            raise BadQuestion(f"--given {item!r}: expected NAME=NUMBER, e.g. y=1")
    return given


def question_judge(args: argparse.Namespace) -> Judge:
    """A function judging one answer text for the question the options describe."""
    if args.expr is None and args.spec is None:
        raise BadQuestion(
            "give the question: --expr EXPRESSION --wrt VAR, or --spec SPEC --wrt NODE"
        )
    if args.expr is not None and args.spec is not None:
        raise BadQuestion("give --expr or --spec, not both")
    if not args.wrt:
        raise BadQuestion("--wrt is required: the variable or node to differentiate by")
    if args.spec is not None:
        from derive.answers.spec import SpecQuestion

        batch = getattr(args, "batch", False)
        question = SpecQuestion.load(args.spec, args.wrt, args.define, args.seed, batch)
        return question.judge
    if getattr(args, "batch", False):
        raise BadQuestion("--batch asks about a spec's parameter: give --spec SPEC --wrt PARAM")
    given = parse_given(args.given)

    def judge(answer: str) -> Verdict:
        return judge_scalar(args.expr, args.wrt, answer, given, args.define, seed=args.seed)

    return judge


def run_formula(args: argparse.Namespace) -> int:
    try:
        judge = question_judge(args)
        modes = [args.answer is not None, bool(args.choices), args.answers is not None]
        if sum(modes) != 1:
            raise BadQuestion("give exactly one of --answer, --choices or --answers")
        rubric = None
        if args.rubric:
            from derive.answers.rubric import load_rubric

            rubric = load_rubric(args.rubric)
        if args.answer is not None:
            verdict = judge(args.answer)
            if rubric is not None:
                verdict.score = rubric.score(verdict)
            _emit(args, verdict.to_json(), verdict.text())
            return verdict.exit_code
        from derive.answers.batch import judge_choices, judge_csv

        if args.choices:
            result = judge_choices(judge, args.choices, rubric)
        else:
            result = judge_csv(judge, args.answers, rubric)
        _emit(args, result.to_json(), result.text())
        return result.exit_code
    except BadQuestion as err:
        print(f"derive verify formula: {err}", file=sys.stderr)
        return 2


def _emit(args: argparse.Namespace, data: dict, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(text, end="")
