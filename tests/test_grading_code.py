"""derive verify code: per-gradient verdicts and hints on hand-written backprop code."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from grading_samples import GOOD

from derive.cli import main
from derive.grading.code import parse_records, verify_code
from derive.grading.reference import load_reference
from derive.grading.verdicts import Verdict, judge

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"

RETURN = '    return {"W1": gz.T @ x, "b1": gz.sum(0), "W2": gf.T @ h, "b2": gf.sum(0)}'


def variant(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


@pytest.fixture(scope="module")
def ref():
    return load_reference(MLP)


@pytest.fixture(scope="module")
def cases(ref):
    return ref.cases(3, seed=0)


def grade(ref, cases, tmp_path: Path, source: str, **kw):
    path = tmp_path / "hw.py"
    path.write_text(source, encoding="utf-8")
    report = verify_code(ref, cases, path, **kw)
    return report, {r.name: r for r in report.results}


def test_right_code_passes_and_exits_0(tmp_path, capsys):
    (tmp_path / "hw.py").write_text(GOOD, encoding="utf-8")
    code = main(["verify", "code", "--spec", str(MLP), "--submission", str(tmp_path / "hw.py")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "bubblewrap" in out


def test_batches_are_weighted_non_uniformly_and_sizes_avoid_dims(ref, cases):
    sizes = [c.m for c in cases]
    assert len(set(sizes)) == len(sizes)
    assert not set(sizes) & set(ref.dims.values())
    for c in cases:
        assert c.counts.min() >= 1 and c.counts.max() > 1 and len(set(c.counts)) > 1
        # the mean-loss gradient on the duplicated batch is the weighted one on distinct rows
        x = c.batch["x"]
        uniq, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
        w = np.bincount(inverse.ravel()) / c.m
        distinct = {n: a[first] for n, a in c.batch.items()}
        _loss, cache = ref.module.forward(c.params, distinct)
        g = ref.module.backward(c.params, distinct, cache, g_loss=w)
        assert len(uniq) == len(c.counts)
        for n in ref.params:
            np.testing.assert_allclose(g[n], c.grads[n], rtol=1e-12, atol=1e-14)


MISTAKES = [
    # (old, new, {param: (verdict, hint or None)})
    (
        "gf = (p - t) / m",
        "gf = p - t",
        {n: (Verdict.WRONG_VALUES, "off by a factor of m") for n in ("W1", "b1", "W2", "b2")},
    ),
    ('"b2": gf.sum(0)', '"b2": -gf.sum(0)', {"b2": (Verdict.WRONG_VALUES, "sign flipped")}),
    (
        '"W2": gf.T @ h',
        '"W2": h.T @ gf',
        {"W2": (Verdict.WRONG_SHAPE, "equals the reference transposed")},
    ),
    (
        '"b1": gz.sum(0)',
        '"b1": gz * m',
        {"b1": (Verdict.WRONG_SHAPE, "looks like per-example gradients")},
    ),
    (
        "gz = gh * h * (1 - h)",
        "gz = gh",
        {n: (Verdict.WRONG_VALUES, "uses dL/dh1 where dL/dz1 was meant") for n in ("W1", "b1")},
    ),
    (
        '"W1": gz.T @ x',
        '"W1": gz.T @ (x + 1)',
        {"W1": (Verdict.WRONG_VALUES, None)},
    ),
    (
        "gh = gf @ W2",
        "gh = gf @ W2 / m",
        {n: (Verdict.WRONG_VALUES, "off by a factor of 1/m") for n in ("W1", "b1")},
    ),
    (', "b2": gf.sum(0)}', "}", {"b2": (Verdict.MISSING, "no 'b2' in the returned dict")}),
]


@pytest.mark.parametrize(("old", "new", "expect"), MISTAKES, ids=lambda v: str(v)[:18])
def test_each_mistake_gets_its_verdict_and_hint(ref, cases, tmp_path, old, new, expect):
    report, by = grade(ref, cases, tmp_path, variant(old, new))
    assert not report.ok
    for name, r in by.items():
        if name not in expect:
            assert r.verdict is Verdict.OK, (name, r)
            continue
        verdict, hint = expect[name]
        assert r.verdict is verdict, (name, r)
        if hint is None:
            assert r.hints == [], r.hints
        elif verdict is Verdict.MISSING:
            assert hint in r.detail
        else:
            assert any(hint in h for h in r.hints), (name, r.hints)
    wrong = (
        next(r for r in report.results if r.verdict is Verdict.WRONG_VALUES)
        if any(r.verdict is Verdict.WRONG_VALUES for r in report.results)
        else None
    )
    if wrong is not None:
        assert wrong.max_rel_err > 1e-3 and wrong.where.startswith(wrong.name + "[")


def test_tuple_and_prefixed_names_are_accepted(ref, cases, tmp_path):
    tup = variant(RETURN, "    return gz.T @ x, gz.sum(0), gf.T @ h, gf.sum(0)")
    assert grade(ref, cases, tmp_path, tup)[0].ok
    named = variant(
        RETURN,
        '    return {"dW1": gz.T @ x, "g_b1": gz.sum(0), "grad_W2": gf.T @ h,'
        ' "b2_grad": gf.sum(0)}',
    )
    assert grade(ref, cases, tmp_path, named)[0].ok
    short = variant(RETURN, "    return gz.T @ x, gz.sum(0)")
    _report, by = grade(ref, cases, tmp_path, short)
    assert by["W1"].ok and by["W2"].verdict is Verdict.MISSING


def test_map_renames_arguments(ref, cases, tmp_path):
    renamed = variant(
        "def backward(x, t, W1, b1, W2, b2):\n",
        "def backward(X, Y, W1, b1, W2, b2):\n    x, t = X, Y\n",
    )
    report, _ = grade(ref, cases, tmp_path, renamed)
    assert report.results[0].verdict is Verdict.CRASHED
    assert "--map" in report.results[0].detail
    assert grade(ref, cases, tmp_path, renamed, mapping={"x": "X", "t": "Y"})[0].ok


def test_params_and_batch_dicts_like_the_generated_module(ref, cases, tmp_path):
    dicts = variant(
        "def backward(x, t, W1, b1, W2, b2):\n",
        "def backward(params, batch):\n    x, t = batch['x'], batch['t']\n"
        "    W1, b1, W2, b2 = (params[n] for n in ('W1', 'b1', 'W2', 'b2'))\n",
    )
    assert grade(ref, cases, tmp_path, dicts)[0].ok


def test_crash_shows_the_last_traceback_lines(ref, cases, tmp_path):
    _report, by = grade(ref, cases, tmp_path, variant("gh = gf @ W2", "gh = gf @ W2.T"))
    assert {r.verdict for r in by.values()} == {Verdict.CRASHED}
    assert "gh = gf @ W2.T" in by["W1"].detail and "ValueError" in by["W1"].detail
    assert "runner.py" not in by["W1"].detail


def test_entry_not_found_and_syntax_error_are_verdicts(ref, cases, tmp_path, capsys):
    (tmp_path / "hw.py").write_text(GOOD.replace("def backward", "def grads"), encoding="utf-8")
    args = ["verify", "code", "--spec", str(MLP), "--submission", str(tmp_path / "hw.py")]
    assert main(args) == 1
    assert "no function 'backward' (defines: grads, sigmoid)" in capsys.readouterr().out
    assert main([*args, "--entry", "grads"]) == 0
    _r, by = grade(ref, cases, tmp_path, GOOD.replace("def sigmoid(z):", "def sigmoid(z)"))
    assert by["W1"].verdict is Verdict.CRASHED and "SyntaxError" in by["W1"].detail


def test_folder_submission_picks_the_file_defining_the_entry(ref, cases, tmp_path):
    sub = tmp_path / "alice"
    sub.mkdir()
    (sub / "helpers.py").write_text(GOOD.split("def backward")[0], encoding="utf-8")
    body = (
        "from helpers import sigmoid\nimport numpy as np\n\n\ndef backward"
        + GOOD.split("def backward")[1]
    )
    (sub / "main.py").write_text(body, encoding="utf-8")
    report = verify_code(ref, cases, sub)
    assert report.ok and report.file == "main.py"
    (sub / "main.py").write_text(body.replace("def backward", "def other"), encoding="utf-8")
    report = verify_code(ref, cases, sub)
    assert {r.verdict for r in report.results} == {Verdict.MISSING}


def test_bad_input_exits_2(tmp_path, capsys):
    (tmp_path / "hw.py").write_text(GOOD, encoding="utf-8")
    base = ["verify", "code", "--spec", str(MLP)]
    assert main([*base, "--submission", str(tmp_path / "none.py")]) == 2
    assert main([*base, "--submission", str(tmp_path / "hw.py"), "--map", "q=x"]) == 2
    assert main([*base, "--submission", str(tmp_path / "hw.py"), "--map", "x"]) == 2
    bad_spec = ["verify", "code", "--spec", str(tmp_path / "no.toml")]
    assert main([*bad_spec, "--submission", str(tmp_path / "hw.py")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such file" in err


def test_json_output(tmp_path, capsys):
    (tmp_path / "hw.py").write_text(variant('"b2": gf.sum(0)', '"b2": -gf.sum(0)'))
    args = ["verify", "code", "--spec", str(MLP), "--submission", str(tmp_path / "hw.py")]
    assert main([*args, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    verdicts = {g["name"]: (g["verdict"], g["hints"]) for g in data["gradients"]}
    assert verdicts["b2"] == ("wrong values", ["sign flipped"])
    assert verdicts["W1"] == ("ok", [])


def test_judge_hints_without_a_sandbox(cases):
    case = cases[0]
    r = case.grads["W1"]
    assert judge("W1", r.copy(), case, 0).ok
    assert judge("W1", 2.5 * r, case, 0).hints == ["off by a factor of 2.5"]
    assert "reshape" in judge("b1", case.grads["b1"][:, None], case, 0).hints[0]
    bumped = r.copy()
    bumped[1, 2] += 1.0
    res = judge("W1", bumped, case, 0)
    assert res.verdict is Verdict.WRONG_VALUES and res.where == "W1[1, 2]"
    assert res.detail.startswith("1 of 20 entries wrong")
    assert judge("W1", r + 1e-13 * np.abs(r).max(), case, 0).ok
    g, v = case.adjoints, case.values
    assert judge("W2", g["f"].T @ g["h1"], case, 0).hints == ["uses dL/dh1 where h1 was meant"]
    assert judge("W2", g["f"].T @ v["z1"], case, 0).hints == ["uses z1 where h1 was meant"]
    assert judge("W2", 0 * r[:3, :5], case, 0).hints == []
    assert not judge("W1", np.full_like(r, np.nan), case, 0).ok


def test_factor_hints_follow_the_reduction():
    toy = load_reference(ROOT / "examples" / "toy_sum_product.toml")
    assert toy.reduction == "sum"
    case = toy.cases(1)[0]
    r = case.grads["y"]
    (hint,) = judge("y", r / case.m, case, 0).hints
    assert hint.startswith("off by a factor of 1/m") and "not a mean" in hint
    (hint,) = judge("y", r * case.m, case, 0).hints
    assert hint.startswith("off by a factor of m") and "already a sum" in hint


def test_results_are_read_without_unpickling():
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(b'{"stage": "start"}', dtype=np.uint8))
    good = buf.getvalue()
    evil = io.BytesIO()
    np.savez(evil, meta=np.array([object()], dtype=object))
    framed = [b"DRV1" + len(d).to_bytes(8, "big") + d for d in (good, evil.getvalue(), good)]
    records = parse_records(b"".join(framed))
    assert len(records) == 1 and records[0][0] == {"stage": "start"}
