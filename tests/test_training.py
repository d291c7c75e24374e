"""derive train: data loading and refusal of bad data, the loop, early stopping, the command."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from derive.cli import main
from derive.errors import SpecError
from derive.train.datasets import Roles, load_data
from derive.train.fit import Settings, fit
from derive.train.optim import Optimizer
from derive.train.progress import LineProgress
from derive.train.schedules import Schedule
from derive.verify.module import load_module

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "examples" / "mlp_softmax.toml"  # d = 4, k = 3
BLOBS = ROOT / "derive" / "data" / "blobs.csv"


@pytest.fixture(scope="module")
def mlp():
    return load_module(ROOT / "generated" / "mlp_softmax.py")


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------------------------
# data


def test_csv_with_and_without_header(mlp, tmp_path) -> None:
    rows = "0.5,1,2,3,2\n-1,0,0,1e-3,0\n"
    for text in ("a,b,c,d,label\n" + rows, rows):
        data = load_data(_write(tmp_path, "d.csv", text), mlp, "spec")
        assert data.X.shape == (2, 4) and data.T.shape == (2, 3)
        np.testing.assert_array_equal(data.T, [[0, 0, 1], [1, 0, 0]])
        assert data.dims == {"d": 4, "k": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x1,x2,x3,x4,l\n1,2,3,4,0\n1,2,3,0\n", r"d\.csv:3: .*row 2 has 4 columns, expected 5"),
        ("1,2,3,4,0\n1,nan,3,4,1\n", r"d\.csv:2: .*row 2, column 2: nan is not a finite number"),
        ("1,2,3,4,0\n1,2,3,inf,1\n", r"row 2, column 4: inf is not a finite number"),
        ("1,2,x,4,0\n", r"d\.csv:1: .*row 1, column 3: 'x' is not a number"),
        ("1,2,3,4,0\n\n1,2,3,4,3\n", r"d\.csv:3: .*row 2, column 5: label 3 is outside 0\.\.2"),
        ("1,2,3,4,-1\n", r"row 1, column 5: label -1 is outside"),
        ("1,2,3,4,0.5\n", r"row 1, column 5: label 0.5 is not a whole number"),
        ("1,2,3,0\n1,2,3,1\n", r"row 1 has 4 columns, expected 5 \(4 features for 'x'"),
        ("a,b\n", r"no data rows"),
    ],
)
def test_bad_csv_is_refused_naming_row_and_column(mlp, tmp_path, text, message) -> None:
    with pytest.raises(SpecError, match=message):
        load_data(_write(tmp_path, "d.csv", text), mlp, "spec")


def test_bad_data_through_the_command_exits_2_and_writes_nothing(tmp_path, capsys) -> None:
    bad = _write(tmp_path, "bad.csv", "1,2,3,4,0\n1,2,3,4,7\n")
    save = tmp_path / "w.npz"
    assert main(["train", str(SPEC), "--data", bad, "--save", str(save)]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:2: error: row 2, column 5: label 7 is outside 0..2" in err
    assert "Traceback" not in err and not save.exists()


def test_npz_inputs_labels_and_refusals(mlp, tmp_path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "a.npz", x=X, t=y)
    np.savez(tmp_path / "b.npz", X=X, y=np.eye(3)[y])
    for name in ("a.npz", "b.npz"):
        data = load_data(str(tmp_path / name), mlp, "spec")
        np.testing.assert_array_equal(data.T, np.eye(3)[y])
    X[4, 2] = np.nan
    np.savez(tmp_path / "c.npz", x=X, t=y)
    with pytest.raises(SpecError, match=r"row 5, column 3 of 'x' is nan"):
        load_data(str(tmp_path / "c.npz"), mlp, "spec")
    np.savez(tmp_path / "d.npz", x=np.ones((3, 5)), t=np.zeros(3, dtype=int))
    with pytest.raises(SpecError, match="5 feature columns of 'x' but the spec declares d = 4"):
        load_data(str(tmp_path / "d.npz"), mlp, "spec")
    np.savez(tmp_path / "e.npz", features=np.ones((3, 4)))
    with pytest.raises(SpecError, match="no arrays named 'x' and 't'"):
        load_data(str(tmp_path / "e.npz"), mlp, "spec")
    with pytest.raises(SpecError, match="no such data file"):
        load_data(str(tmp_path / "missing.csv"), mlp, "spec")


def test_digits_ship_with_their_licence() -> None:
    digits = load_module(ROOT / "generated" / "digits_mlp.py")
    data = load_data("digits", digits, "spec")
    assert data.X.shape == (1797, 64) and data.T.shape == (1797, 10)
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    counts = data.T.sum(axis=0)
    assert counts.sum() == 1797 and counts.min() >= 170
    licence = (ROOT / "derive" / "data" / "DIGITS_LICENSE.txt").read_text(encoding="utf-8")
    assert "BSD 3-Clause License" in licence and "UCI" in licence


def test_split_is_seeded_and_disjoint(mlp) -> None:
    data = load_data(str(BLOBS), mlp, "spec")
    a_train, a_val = data.split(0.2, seed=3)
    _b_train, b_val = data.split(0.2, seed=3)
    assert len(a_val) == 60 and len(a_train) == 240
    np.testing.assert_array_equal(a_val.X, b_val.X)
    rows = {tuple(r) for r in a_train.X} & {tuple(r) for r in a_val.X}
    assert not rows
    assert data.split(0.0, seed=0)[1] is None


# ---------------------------------------------------------------------------------------------
# the loop


class Pull:
    """L = (w - t)^2 per example: training pulls w towards the training targets."""

    NAME, LOSS, DIMS = "pull", "L", {"d": 1, "k": 1}
    INPUTS = {"x": (("d",), "real"), "t": (("k",), "real")}  # noqa: RUF012
    PARAMS = {"w": ()}  # noqa: RUF012

    def forward(self, params, batch):
        L = (params["w"] - batch["t"][:, 0]) ** 2
        return L.mean(), {"L": L}

    def loss_and_grad(self, params, batch):
        loss, _cache = self.forward(params, batch)
        return loss, {"w": np.mean(2 * (params["w"] - batch["t"][:, 0]))}


def _pull_data(target: float, n: int):
    from derive.train.datasets import Dataset

    return Dataset(np.zeros((n, 1)), np.full((n, 1), target), {"d": 1, "k": 1}, "pull")


def test_early_stopping_keeps_the_best_weights() -> None:
    module = Pull()
    roles = Roles.of(module, "pull")
    train, val = _pull_data(1.0, 8), _pull_data(0.5, 4)
    opt = Optimizer.make("sgd", epsilon=0.05)
    sched = Schedule.make("constant", 0.05, 100)
    history = fit(module, {"w": np.array(0.0)}, train, val, roles, opt, sched, Settings(50, 4, 3))
    w_best = float(history.params["w"])
    val_losses = [r.val_loss for r in history.records]
    assert history.stopped_early and len(history.records) == history.best_epoch + 3
    assert history.best_epoch == int(np.argmin(val_losses)) + 1
    assert val_losses[-1] > val_losses[history.best_epoch - 1]
    assert abs(w_best - 0.5) < 0.05
    assert history.best.val_acc is None  # real-valued targets: no accuracy


def test_training_is_seeded(mlp) -> None:
    data = load_data(str(BLOBS), mlp, "spec")
    roles = Roles.of(mlp, "spec")
    runs = []
    for seed in (0, 0, 1):
        train, val = data.split(0.2, seed=0)
        opt, sched = Optimizer.make("momentum"), Schedule.make("cosine", 0.05, 40)
        h = fit(mlp, mlp.init_params(), train, val, roles, opt, sched, Settings(3, 16, 5, seed))
        runs.append([r.train_loss for r in h.records])
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert runs[0][-1] < runs[0][0]


def test_progress_plain_lines_and_terminal_bar(mlp) -> None:
    data = load_data(str(BLOBS), mlp, "spec")
    roles = Roles.of(mlp, "spec")
    for tty in (False, True):
        out = io.StringIO()
        opt, sched = Optimizer.make("adam"), Schedule.make("constant", 0.01, 10)
        fit(
            mlp,
            mlp.init_params(),
            data,
            None,
            roles,
            opt,
            sched,
            Settings(2, 100),
            LineProgress(out, 2, tty),
        )
        text = out.getvalue()
        assert ("\r" in text) == tty and ("[####" in text) == tty
        lines = [ln.split("\r\033[K")[-1] for ln in text.split("\n") if ln]
        assert lines[0].startswith("epoch 1/2  loss ") and "acc " in lines[0]
        assert lines[0].endswith("*") and len(lines) == 2


# ---------------------------------------------------------------------------------------------
# the command


def test_train_command_json_save_and_plot(tmp_path, mlp, capsys) -> None:
    save, plot = tmp_path / "w.npz", tmp_path / "curves.png"
    argv = ["train", str(SPEC), "--data", str(BLOBS), "--epochs", "8", "--lr", "0.02"]
    argv += ["--save", str(save), "--plot", str(plot), "--json", "--seed", "1"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "epoch 1/8" in captured.err  # progress goes to stderr with --json
    assert result["examples"] == {"train": 240, "validation": 60}
    assert len(result["history"]) == result["epochs_run"] == 8
    assert result["val_accuracy"] > 0.8
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    params = dict(np.load(save))
    assert set(params) == {"W1", "b1", "W2", "b2"}
    data = load_data(str(BLOBS), mlp, "spec")
    _, val = data.split(0.2, seed=1)
    _loss, cache = mlp.forward(params, {"x": val.X, "t": val.T})
    acc = np.mean(np.argmax(cache["p"], 1) == np.argmax(val.T, 1))
    assert acc == pytest.approx(result["val_accuracy"])
    assert float(np.mean(cache["L"])) == pytest.approx(result["val_loss"])


def test_plot_without_matplotlib_exits_2_before_training(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    save, plot = tmp_path / "w.npz", tmp_path / "c.png"
    argv = ["train", str(SPEC), "--data", str(BLOBS), "--save", str(save), "--plot", str(plot)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install 'derive[plot]'" in err
    assert not save.exists() and not plot.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
        (["--schedule", "exp"], "unknown schedule 'exp'"),
        (["--val-split", "1.5"], "--val-split must lie in"),
        (["--dim", "m"], "expected NAME=SIZE"),
        (["--save", "/nonexistent/dir/w.npz"], "cannot write a file there"),
    ],
)
def test_bad_options_exit_2(extra, message, capsys) -> None:
    assert main(["train", str(SPEC), "--data", str(BLOBS), *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_digits_reach_95_percent_validation_accuracy(capsys) -> None:
    spec = ROOT / "examples" / "digits_mlp.toml"
    argv = ["train", str(spec), "--data", "digits", "--epochs", "30", "--seed", "0", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["examples"] == {"train": 1438, "validation": 359}
    assert result["val_accuracy"] >= 0.95
