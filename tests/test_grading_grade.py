"""derive grade: a class with hostile submissions among right ones, Gradescope JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
from grading_samples import GOOD

from derive.cli import main
from derive.grading import sandbox
from derive.grading.code import CodeReport
from derive.grading.grade import Progress, find_submissions, gradescope_json
from derive.grading.verdicts import GradResult, Verdict

ROOT = Path(__file__).resolve().parents[1]
MLP = ROOT / "examples" / "mlp_softmax.toml"


def inject(body: str, prelude: str = "") -> str:
    lines = "".join(f"    {line}\n" for line in body.splitlines())
    return prelude + GOOD.replace("    m = x.shape[0]\n", lines + "    m = x.shape[0]\n")


def hostile(out: Path) -> dict[str, str]:
    """Submissions that attack the grader, by name; each must score 0 and harm no other."""
    tamper = f"""import json, os
fake = {{"score": 100.0, "max_score": 4.0, "tests": []}}
for p in [{str(out / "students" / "alice" / "results.json")!r},
          {str(out / "students" / "tamper" / "results.json")!r},
          {str(out / "summary.csv")!r}, "/autograder/results/results.json"]:
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            json.dump(fake, f)
    except OSError:
        pass
print(json.dumps(fake))
os.write(int(os.environ.get("DERIVE_RESULT_FD", "3")), b"DRV1" + b"\\xff" * 40)
return {{"W1": 0, "b1": 0, "W2": 0, "b2": 0}}"""
    return {
        "loop": inject("while True:\n    pass"),
        "segfault": inject("import ctypes\nctypes.string_at(0)"),
        "exits": inject("import sys\nsys.exit(0)"),
        "flood": inject("while True:\n    print('x' * 100000)"),
        "forkbomb": inject("import os\nwhile True:\n    os.fork()"),
        "snoop": inject(f"print(open({str(MLP)!r}).read())"),
        "tamper": inject(tamper),
    }


@pytest.mark.slow
def test_a_class_with_hostile_submissions(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (subs / "alice.py").write_text(GOOD, encoding="utf-8")
    (subs / "bob").mkdir()
    (subs / "bob" / "hw.py").write_text(GOOD, encoding="utf-8")
    (subs / "carol.py").write_text(GOOD.replace('"b2": gf.sum(0)', '"b2": -gf.sum(0)'))
    (subs / "notes.txt").write_text("not a submission", encoding="utf-8")
    attacks = hostile(out)
    if not sandbox.bwrap_status()[0]:  # what only bubblewrap stops (see sandbox.protection)
        for name in ("forkbomb", "snoop", "tamper"):
            del attacks[name]
    for name, text in attacks.items():
        (subs / f"{name}.py").write_text(text, encoding="utf-8")
    args = ["grade", str(MLP), str(subs), "--out", str(out), "--jobs", "2", "--timeout", "4"]
    assert main(args) == 0
    captured = capsys.readouterr()
    n = 3 + len(attacks)
    assert f"graded {n} submissions" in captured.out
    assert f"[{n}/{n}]" in captured.err  # plain progress lines off a terminal

    def result(name: str) -> dict:
        return json.loads((out / "students" / name / "results.json").read_text())

    for name in ("alice", "bob"):
        r = result(name)
        assert r["score"] == r["max_score"] == 4.0, r
        assert [t["name"] for t in r["tests"]] == ["dL/dW1", "dL/db1", "dL/dW2", "dL/db2"]
        assert all(t["status"] == "passed" and t["output"] == "ok" for t in r["tests"])
    carol = result("carol")
    assert carol["score"] == 3.0 and "sign flipped" in carol["tests"][3]["output"]
    expect = {
        "loop": "timed out",
        "segfault": "SIGSEGV",
        "exits": "sys.exit",
        "flood": "more than 256 KiB",
        "forkbomb": "",
        "snoop": "FileNotFoundError",
        "tamper": "",
    }
    expect = {name: words for name, words in expect.items() if name in attacks}
    for name, words in expect.items():
        r = result(name)
        assert r["score"] == 0.0, (name, r)
        assert words in r["tests"][0]["output"], (name, r["tests"][0]["output"])
    if "snoop" in attacks:
        assert "sha256" not in result("snoop")["output"]  # the spec's text never came back
    assert not Path("/autograder/results/results.json").exists() or os.getuid() != 0
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["student"] for r in rows] == sorted(["alice", "bob", "carol", *expect])
    by = {r["student"]: r for r in rows}
    assert by["alice"]["score"] == "4" and by["carol"]["dL/db2"] == "wrong values"
    assert by["loop"]["dL/dW1"] == "timed out"


def test_bad_input_exits_2(tmp_path, capsys):
    subs = tmp_path / "subs"
    assert main(["grade", str(MLP), str(subs), "--out", str(tmp_path / "o")]) == 2
    subs.mkdir()
    assert main(["grade", str(MLP), str(subs), "--out", str(tmp_path / "o")]) == 2
    (subs / "a.py").write_text(GOOD, encoding="utf-8")
    assert main(["grade", str(MLP), str(subs), "--out", str(subs / "results")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["grade", str(MLP), str(subs), "--out", str(tmp_path / "o"), "--jobs", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no submissions" in err and "inside the submissions folder" in err
    assert not (tmp_path / "o").exists()


def test_two_submissions_fast(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (subs / "a.py").write_text(GOOD, encoding="utf-8")
    (subs / "b.py").write_text(GOOD.replace("gf = (p - t) / m", "gf = p - t"))
    assert main(["grade", str(MLP), str(subs), "--out", str(out), "--jobs", "2"]) == 0
    a = json.loads((out / "students" / "a" / "results.json").read_text())
    b = json.loads((out / "students" / "b" / "results.json").read_text())
    assert (a["score"], b["score"]) == (4.0, 0.0)
    assert "off by a factor of m" in b["tests"][0]["output"]
    assert "bubblewrap" in a["output"] or "WARNING" in a["output"]


def test_submissions_are_found_one_per_student(tmp_path):
    for name in ("b.py", "a.py", "notes.txt", ".hidden.py", "__pycache__"):
        (tmp_path / name).mkdir() if name == "__pycache__" else (tmp_path / name).write_text("")
    (tmp_path / "a").mkdir()
    subs = find_submissions(tmp_path)
    assert [(s.name, s.path.name) for s in subs] == [("a", "a"), ("a.py", "a.py"), ("b", "b.py")]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_plain_lines_otherwise():
    report = CodeReport("s", "backward", "s.py", [GradResult("W", Verdict.OK)], [5], "x")
    tty, plain = _Tty(), io.StringIO()
    for stream in (tty, plain):
        p = Progress(2, stream)
        p.step("a", report)
        p.step("b", report)
    assert tty.getvalue().startswith("\r[###############...............] 1/2")
    assert "\r[##############################] 2/2" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and "/s" in tty.getvalue()
    assert plain.getvalue() == "[1/2] a: 1/1\n[2/2] b: 1/1\n"


def test_gradescope_json_shape():
    report = CodeReport(
        "s",
        "backward",
        "s.py",
        [GradResult("W", Verdict.OK), GradResult("b", Verdict.MISSING, "no 'b'", ["h"])],
        [5],
        "sandbox: bubblewrap",
        stdout="hello",
    )
    data = gradescope_json(report)
    assert data["score"] == 1.0 and data["max_score"] == 2.0
    assert data["tests"][1] == {
        "name": "dL/db",
        "score": 0.0,
        "max_score": 1.0,
        "status": "failed",
        "output": "missing\nno 'b'\nhint: h",
    }
    assert "hello" in data["output"] and "bubblewrap" in data["output"]
