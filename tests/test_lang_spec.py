"""Tests for the TOML spec reader: the happy path and every located error."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if importlib.util.find_spec("derive") is None:  # plain `pytest` without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from derive.errors import SpecError
from derive.lang import toml_text
from derive.lang.expr import BinOp, Call, Name, Neg
from derive.lang.records import Equation, OpDecl, Spec, TensorDecl
from derive.lang.spec import load_spec, parse_spec

EXAMPLE = """\
name = "mlp_softmax"
description = "One sigmoid hidden layer, softmax cross-entropy"

[dims]                 # concrete sizes are optional; derivation is symbolic
d = 4
m = 5
k = 3

[inputs]               # one example; generated code takes a batch (leading axis)
x = { shape = ["d"] }
t = { shape = ["k"], kind = "one_hot" }

[params]
W1 = { shape = ["m", "d"] }
b1 = { shape = ["m"] }
W2 = { shape = ["k", "m"] }
b2 = { shape = ["k"] }

[forward]              # staged equations, in order
z1 = "W1 @ x + b1"
h1 = "sigmoid(z1)"
f  = "W2 @ h1 + b2"
p  = "softmax(f)"
L  = "-sum(t * log(p))"

[loss]
output = "L"
reduction = "mean"     # over the batch; "sum" also allowed
"""

EXTRAS = """\
name = "extras"

[dims]
d = "any"
m = 3

[constants]
alpha = 0.01
scale = 2

[ops]
swish = { args = ["z"], expr = "z * sigmoid(z)" }
mix = { args = ["a", "b"], expr = "swish(a) * scale + leaky_relu(b, slope=alpha)" }

[inputs]
x = { shape = ["d"] }
y = { shape = [], kind = "binary" }

[params]
W = { shape = ["m", "d"], init = "glorot" }
v = { shape = [3], init = 0.5 }
c = { shape = [], init = 1 }

[forward]
h = "mix(W @ x, W @ x)"
s = "sum(v * h) / d + c"
L = "bce_with_logits(s, y)"

[loss]
output = "L"
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """The 1-based line holding the ``nth`` occurrence of ``needle``."""
    hits = [n for n, line in enumerate(text.split("\n"), start=1) if needle in line]
    return hits[nth - 1]


def mutate(old: str, new: str, text: str = EXAMPLE) -> str:
    """``text`` with ``old`` (which must occur once) replaced by ``new``."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def error_of(text: str) -> SpecError:
    """The SpecError raised for ``text``."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, "net.toml")
    assert info.value.file == "net.toml"
    return info.value


def strip(expr: object) -> object:
    """A parsed tree as nested tuples, without columns."""
    if isinstance(expr, Name):
        return expr.id
    if isinstance(expr, BinOp):
        return (expr.op, strip(expr.left), strip(expr.right))
    if isinstance(expr, Neg):
        return ("-", strip(expr.operand))
    if isinstance(expr, Call):
        return (expr.func, *(strip(arg) for arg in expr.args))
    return expr


# ---------------------------------------------------------------------------------------
# Happy path


def test_example_top_level() -> None:
    spec = parse_spec(EXAMPLE)
    assert isinstance(spec, Spec)
    assert spec.file == "<string>"
    assert spec.name == "mlp_softmax"
    assert spec.description == "One sigmoid hidden layer, softmax cross-entropy"
    assert spec.dims == {"d": 4, "m": 5, "k": 3}
    assert spec.constants == {}
    assert spec.ops == {}
    assert (spec.loss, spec.reduction) == ("L", "mean")
    assert spec.source == EXAMPLE
    assert spec.sha256 == hashlib.sha256(EXAMPLE.encode()).hexdigest()


def test_example_tensors() -> None:
    spec = parse_spec(EXAMPLE)
    assert spec.inputs == {
        "x": TensorDecl("x", ("d",), "real", None, 10),
        "t": TensorDecl("t", ("k",), "one_hot", None, 11),
    }
    assert list(spec.params) == ["W1", "b1", "W2", "b2"]
    assert spec.params["W1"] == TensorDecl("W1", ("m", "d"), "param", None, 14)
    assert spec.params["b2"] == TensorDecl("b2", ("k",), "param", None, 17)


def test_example_equations() -> None:
    spec = parse_spec(EXAMPLE)
    assert [(eq.name, eq.text, eq.line) for eq in spec.forward] == [
        ("z1", "W1 @ x + b1", 20),
        ("h1", "sigmoid(z1)", 21),
        ("f", "W2 @ h1 + b2", 22),
        ("p", "softmax(f)", 23),
        ("L", "-sum(t * log(p))", 24),
    ]
    assert all(isinstance(eq, Equation) for eq in spec.forward)
    shapes = [strip(eq.expr) for eq in spec.forward]
    assert shapes == [
        ("+", ("@", "W1", "x"), "b1"),
        ("sigmoid", "z1"),
        ("+", ("@", "W2", "h1"), "b2"),
        ("softmax", "f"),
        ("-", ("sum", ("*", "t", ("log", "p")))),
    ]


def test_example_lines() -> None:
    spec = parse_spec(EXAMPLE)
    assert spec.lines == {
        "d": 5,
        "m": 6,
        "k": 7,
        "x": 10,
        "t": 11,
        "W1": 14,
        "b1": 15,
        "W2": 16,
        "b2": 17,
        "z1": 20,
        "h1": 21,
        "f": 22,
        "p": 23,
        "L": 24,
        "loss": 27,
    }


def test_extras_constants_ops_inits_and_defaults() -> None:
    spec = parse_spec(EXTRAS)
    assert spec.dims == {"d": None, "m": 3}
    assert spec.constants == {"alpha": 0.01, "scale": 2.0}
    assert type(spec.constants["scale"]) is float
    assert spec.ops["swish"] == OpDecl(
        "swish", ("z",), spec.ops["swish"].expr, "z * sigmoid(z)", line_of(EXTRAS, "swish =")
    )
    assert spec.ops["mix"].args == ("a", "b")
    assert strip(spec.ops["swish"].expr) == ("*", "z", ("sigmoid", "z"))
    assert spec.inputs["y"] == TensorDecl("y", (), "binary", None, line_of(EXTRAS, "y = {"))
    assert spec.params["W"].init == "glorot"
    assert spec.params["v"].shape == (3,)
    assert spec.params["v"].init == 0.5
    assert spec.params["c"].init == 1.0
    assert type(spec.params["c"].init) is float
    assert spec.reduction == "mean"
    assert spec.description == ""
    assert spec.lines["alpha"] == line_of(EXTRAS, "alpha =")
    assert spec.lines["mix"] == line_of(EXTRAS, "mix =")
    assert spec.lines["loss"] == line_of(EXTRAS, "output =")


def test_sum_reduction() -> None:
    spec = parse_spec(mutate('reduction = "mean"', 'reduction = "sum"'))
    assert spec.reduction == "sum"


def test_table_style_entries_are_located() -> None:
    text = mutate('W1 = { shape = ["m", "d"] }\n', "").replace(
        "[forward]", '[params.W1]\nshape = ["m", "d"]\ninit = "normal"\n\n[forward]'
    )
    spec = parse_spec(text)
    assert spec.params["W1"].line == line_of(text, "[params.W1]")
    assert spec.params["W1"].init == "normal"
    bad = text.replace('shape = ["m", "d"]', 'shape = ["m", "dd"]')
    err = error_of(bad)
    assert err.line == line_of(bad, '"dd"')
    assert err.hint == "did you mean 'd'?"


def test_locator_skips_multiline_strings_and_arrays() -> None:
    text = mutate(
        'description = "One sigmoid hidden layer, softmax cross-entropy"',
        'description = """\n[forward]\nh1 = 3\n"""',
    )
    text = mutate('b1 = { shape = ["m"] }', 'b1 = { shape = [\n  "m",\n] }', text)
    spec = parse_spec(text)
    assert spec.forward[1].line == line_of(text, 'h1 = "sigmoid')
    assert spec.params["b1"].line == line_of(text, "b1 = {")
    assert spec.params["W2"].line == line_of(text, "W2 = {")


def test_locator_ignores_equals_inside_strings_and_comments() -> None:
    text = mutate("[inputs]", "[constants]\nalpha = 0.1  # slope = 0.1\n\n[inputs]")
    text = mutate('h1 = "sigmoid(z1)"', 'h1 = "leaky_relu(z1, slope=alpha)"', text)
    spec = parse_spec(text)
    assert spec.lines["alpha"] == line_of(text, "alpha =")
    assert spec.forward[1].line == line_of(text, "h1 =")


def test_locator_is_not_fooled_by_comments() -> None:
    text = mutate("[inputs]               #", '[inputs]  # [x] is "one" example; see """ below #')
    spec = parse_spec(text)
    assert spec.inputs["x"].line == 10
    assert spec.lines["t"] == 11


def test_locator_skips_string_contents_that_look_like_keys() -> None:
    text = mutate('h1 = "sigmoid(z1)"', 'h1 = """leaky_relu(z1,\nslope = 0.1)"""')
    text = mutate('L  = "-sum(t * log(p))"', 'L  = "-sum(t * log(p))"\nslope = "2 * b1"', text)
    spec = parse_spec(text)
    assert spec.lines["slope"] == line_of(text, 'slope = "2')
    assert spec.lines["h1"] == 21


@pytest.mark.parametrize(
    ("text", "path", "line"),
    [
        ("a = [\n  [1]\n]\nb = 2\n", ("b",), 4),
        ('d = """\nx = 1\n"""\nx = 2\n', ("x",), 4),
        ("d = '" + "''\n[t]\n''" + "'\n[u]\nk = 1\n", ("u", "k"), 5),
        ('[t]\n"a b".c = 1\n', ("t", "a b", "c"), 2),
        ("[t]\nv = 1\n", ("t", "v", "deeper"), 2),
        ("[t]\nv = 1\n", ("t", "w"), 1),
        ("[t]\nv = 1\n", ("u",), None),
    ],
)
def test_locator_paths(text: str, path: tuple[str, ...], line: int | None) -> None:
    assert toml_text._Locator(text).line(*path) == line


def test_quoted_keys_and_crlf() -> None:
    text = mutate('z1 = "W1', '"z1" = "W1').replace("\n", "\r\n")
    spec = parse_spec(text)
    assert spec.forward[0].name == "z1"
    assert spec.forward[0].line == 20


def test_load_spec_reads_bytes(tmp_path: Path) -> None:
    path = tmp_path / "net.toml"
    raw = EXAMPLE.replace("cross-entropy", "cross-entropy \u2014 \u00e9").encode()
    path.write_bytes(raw)
    spec = load_spec(path)
    assert spec.file == str(path)
    assert spec.sha256 == hashlib.sha256(raw).hexdigest()
    assert load_spec(str(path)).name == "mlp_softmax"


def test_load_spec_with_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode())
    assert load_spec(path).forward[0].line == 20


def test_load_spec_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.file == str(path)
    assert "cannot read the spec file" in info.value.message
    assert info.value.hint and "check the path" in info.value.hint


def test_load_spec_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "a"\n\ndescription = "\xff"\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.line == 3
    assert "UTF-8" in info.value.message


def test_reading_a_spec_never_imports_sympy_or_numpy() -> None:
    code = (
        "import sys; from derive.lang.spec import parse_spec; "
        "parse_spec(open(sys.argv[1]).read()); "
        "print(sorted({'sympy', 'numpy'} & set(sys.modules)))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code, str(root / "examples" / "mlp_softmax.toml")],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------
# TOML-level errors


def test_malformed_toml_points_at_the_line() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', "h1 = sigmoid(z1)"))
    assert err.line == 21
    assert err.message.startswith("invalid TOML: Invalid value")
    assert err.hint == 'strings need quotes, e.g. h1 = "sigmoid(z1)"'


def test_malformed_toml_generic_hint() -> None:
    err = error_of(mutate("[params]", "[params"))
    assert err.line == 13
    assert err.hint == toml_text.GENERIC_TOML_HINT


def test_unterminated_string_at_end_of_document() -> None:
    err = error_of(EXAMPLE + 'extra = "oops\n')
    assert err.line == line_of(EXAMPLE + 'extra = "oops\n', "extra")
    assert "invalid TOML" in err.message


@pytest.mark.parametrize("value", ["[" * 5000, "{ a = " * 3000])
def test_deeply_nested_toml(value: str) -> None:
    err = error_of(EXAMPLE + f"junk = {value}\n")
    assert err.message == "invalid TOML: values are nested too deeply"
    assert err.hint


def test_duplicate_key_is_located() -> None:
    text = mutate("k = 3", "k = 3\nk = 4")
    err = error_of(text)
    assert err.line == 8
    assert err.message == "invalid TOML: 'dims.k' is given twice"
    assert err.hint == "remove or rename one of them"


# ---------------------------------------------------------------------------------------
# Sections and keys


@pytest.mark.parametrize(
    ("old", "new", "line_needle", "message", "hint"),
    [
        (
            "[forward]",
            "[forwrd]",
            "[forwrd]",
            "unknown top-level key or section [forwrd]",
            "did you mean 'forward'?",
        ),
        (
            'name = "mlp_softmax"',
            'nme = "mlp_softmax"',
            "nme",
            "unknown top-level key or section 'nme'",
            "did you mean 'name'?",
        ),
        (
            'x = { shape = ["d"] }',
            'x = { shap = ["d"] }',
            "x = {",
            "unknown key 'shap' in inputs.x",
            "did you mean 'shape'?",
        ),
        (
            'W1 = { shape = ["m", "d"] }',
            'W1 = { shape = ["m", "d"], kind = "real" }',
            "W1 =",
            "unknown key 'kind' in params.W1",
            "allowed keys: shape, init, l1, l2",
        ),
        (
            'output = "L"',
            'outptu = "L"',
            "outptu",
            "unknown key 'outptu' in loss",
            "did you mean 'output'?",
        ),
    ],
)
def test_unknown_keys(old: str, new: str, line_needle: str, message: str, hint: str) -> None:
    text = mutate(old, new)
    err = error_of(text)
    assert err.line == line_of(text, line_needle)
    assert err.message == message
    assert err.hint == hint


@pytest.mark.parametrize(
    ("section", "hint"),
    [
        ("inputs", 'add:\n[inputs]\nx = { shape = ["d"] }'),
        ("params", 'add:\n[params]\nW = { shape = ["h", "d"] }'),
        ("forward", 'add:\n[forward]\nz = "W @ x"'),
        ("loss", 'add:\n[loss]\noutput = "L"\nreduction = "mean"'),
    ],
)
def test_missing_sections(section: str, hint: str) -> None:
    blocks = EXAMPLE.split("\n\n")
    text = "\n\n".join(b for b in blocks if not b.startswith(f"[{section}]"))
    err = error_of(text)
    assert err.message == f"the [{section}] section is missing"
    assert err.hint == hint
    assert err.line is None


def test_missing_name() -> None:
    err = error_of(EXAMPLE.replace('name = "mlp_softmax"\n', ""))
    assert err.message == "the 'name' key is missing"
    assert err.hint and 'name = "my_model"' in err.hint


def test_loss_hint_names_the_last_equation() -> None:
    text = EXAMPLE.split("[loss]")[0].replace('L  = "-sum', 'cost = "-sum')
    assert error_of(text).hint == 'add:\n[loss]\noutput = "cost"\nreduction = "mean"'


def test_section_of_the_wrong_type() -> None:
    blocks = EXAMPLE.split("\n\n")
    text = "dims = 3\n" + "\n\n".join(b for b in blocks if not b.startswith("[dims]"))
    err = error_of(text)
    assert err.message == "'dims' must be a table (a [dims] section), not an integer"
    assert err.line == 1
    assert err.hint and err.hint.startswith("write it as a section:\n[dims]")


def test_empty_forward() -> None:
    blocks = EXAMPLE.split("\n\n")
    text = "\n\n".join("[forward]" if b.startswith("[forward]") else b for b in blocks)
    err = error_of(text)
    assert err.message == "the [forward] section is empty"
    assert err.line == line_of(text, "[forward]")
    assert err.hint and 'z = "W @ x"' in err.hint


@pytest.mark.parametrize(
    ("new", "message"),
    [
        ('name = "my model"', "invalid spec name 'my model'"),
        ("name = 3", "'name' must be a string, not an integer"),
    ],
)
def test_bad_spec_name(new: str, message: str) -> None:
    err = error_of(mutate('name = "mlp_softmax"', new))
    assert err.message == message
    assert err.line == 1
    assert err.hint


def test_description_must_be_a_string() -> None:
    err = error_of(
        mutate(
            'description = "One sigmoid hidden layer, softmax cross-entropy"', "description = [1]"
        )
    )
    assert err.message == "'description' must be a string, not a list"
    assert err.line == 2


# ---------------------------------------------------------------------------------------
# Dims, constants, tensors


@pytest.mark.parametrize("value", ["0", "-1", "2.5", "true", '"many"', "[4]"])
def test_bad_dim_values(value: str) -> None:
    err = error_of(mutate("m = 5", f"m = {value}"))
    assert err.line == 6
    assert err.message.startswith('dims.m must be an integer >= 1 or "any"')
    assert err.hint == 'e.g. m = 4, or m = "any" to leave the size open'


@pytest.mark.parametrize(
    ("new", "hint"),
    [
        ('x = { shape = "d" }', 'e.g. shape = ["h", "d"], or shape = [] for a scalar'),
        ('x = { shape = ["dd"] }', "did you mean 'd'?"),
        ('x = { shape = ["n"] }', "declare it under [dims], e.g.\n[dims]\nn = 4"),
        ("x = { shape = [0] }", 'e.g. shape = ["h", "d"] or shape = [3]'),
        ("x = { shape = [1.5] }", 'e.g. shape = ["h", "d"] or shape = [3]'),
        ("x = { shape = [true] }", 'e.g. shape = ["h", "d"] or shape = [3]'),
        ('x = { kind = "real" }', 'e.g. x = { shape = ["d"] }'),
        ('x = ["d"]', 'e.g. x = { shape = ["d"] }'),
    ],
)
def test_bad_shapes(new: str, hint: str) -> None:
    err = error_of(mutate('x = { shape = ["d"] }', new))
    assert err.line == 10
    assert err.message.startswith("inputs.x")
    assert err.hint == hint


def test_unknown_dim_message() -> None:
    err = error_of(mutate('W2 = { shape = ["k", "m"] }', 'W2 = { shape = ["k", "mm"] }'))
    assert err.message == "params.W2.shape uses the unknown dim 'mm'"
    assert err.line == 16
    assert err.hint == "did you mean 'm'?"


@pytest.mark.parametrize(
    ("new", "hint"),
    [
        ('t = { shape = ["k"], kind = "onehot" }', "did you mean 'one_hot'?"),
        ('t = { shape = ["k"], kind = "label" }', "kinds: real, one_hot, probability, binary"),
        ('t = { shape = ["k"], kind = 1 }', "kinds: real, one_hot, probability, binary"),
    ],
)
def test_bad_input_kind(new: str, hint: str) -> None:
    err = error_of(mutate('t = { shape = ["k"], kind = "one_hot" }', new))
    assert err.line == 11
    assert err.message.startswith("inputs.t.kind must be one of")
    assert err.hint == hint


@pytest.mark.parametrize(
    ("init", "hint"),
    [
        ('"glorrot"', "did you mean 'glorot'?"),
        ('"he"', "inits: zeros, ones, normal, glorot"),
        ("true", "inits: zeros, ones, normal, glorot"),
        ("nan", "inits: zeros, ones, normal, glorot"),
    ],
)
def test_bad_param_init(init: str, hint: str) -> None:
    text = mutate('b1 = { shape = ["m"] }', f'b1 = {{ shape = ["m"], init = {init} }}')
    err = error_of(text)
    assert err.line == 15
    assert err.message.startswith("params.b1.init must be one of zeros, ones, normal, glorot")
    assert err.hint == hint


@pytest.mark.parametrize("value", ['"small"', "true", "inf", "[1]"])
def test_bad_constants(value: str) -> None:
    text = mutate("[inputs]", f"[constants]\nalpha = {value}\n\n[inputs]")
    err = error_of(text)
    assert err.line == line_of(text, "alpha =")
    assert err.message.startswith("constants.alpha must be a finite number")
    assert err.hint == "e.g. alpha = 0.01"


@pytest.mark.parametrize(
    ("old", "new", "message", "hint"),
    [
        ("m = 5", '"2m" = 5', "invalid name '2m' in [dims]", "names start with a letter"),
        ("m = 5", "_m = 5", "invalid name '_m' in [dims]", "names start with a letter"),
        (
            'h1 = "sigmoid(z1)"',
            'lambda = "sigmoid(z1)"',
            "'lambda' in [forward] is a Python keyword",
            "pick another name",
        ),
        (
            'p  = "softmax(f)"',
            'exp = "softmax(f)"',
            "'exp' in [forward] is the name of a built-in op",
            "pick another name, e.g. 'exp_'",
        ),
        (
            'b1 = { shape = ["m"] }',
            'sum = { shape = ["m"] }',
            "'sum' in [params] is the name of a built-in op",
            "pick another name",
        ),
    ],
)
def test_invalid_names(old: str, new: str, message: str, hint: str) -> None:
    err = error_of(mutate(old, new))
    assert err.line == line_of(EXAMPLE, old)
    assert err.message == message
    assert err.hint and err.hint.startswith(hint)


@pytest.mark.parametrize(
    ("old", "new", "first", "second", "later"),
    [
        ("k = 3", "k = 3\nx = 2", "a dim (line 8)", "an input", 'x = { shape = ["d"] }'),
        (
            'b2 = { shape = ["k"] }',
            'b2 = { shape = ["k"] }\nx = { shape = ["k"] }',
            "an input (line 10)",
            "a param",
            'x = { shape = ["k"] }',
        ),
        (
            'p  = "softmax(f)"',
            'p  = "softmax(f)"\nW1 = "p"',
            "a param (line 14)",
            "a forward equation",
            'W1 = "p"',
        ),
        ("[inputs]", "[constants]\nm = 1.0\n\n[inputs]", "a dim (line 6)", "a constant", "m = 1.0"),
    ],
)
def test_duplicate_names_across_sections(
    old: str, new: str, first: str, second: str, later: str
) -> None:
    text = mutate(old, new)
    err = error_of(text)
    assert "is declared twice" in err.message
    assert f"as {first} and as {second}" in err.message
    assert err.line == line_of(text, later)
    assert err.hint and "names must be unique" in err.hint


def test_duplicate_across_sections_reports_the_later_line() -> None:
    text = mutate("[inputs]", "[constants]\nL = 1\n\n[inputs]")
    err = error_of(text)
    assert err.line == line_of(text, 'L  = "-sum')
    assert err.message.startswith("'L' is declared twice: as a constant (line 10)")


# ---------------------------------------------------------------------------------------
# Forward expressions


def test_expression_syntax_error_has_column_text_and_caret() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(z1"'))
    assert err.line == 21
    assert err.message == (
        "forward.h1: '(' was never closed at column 8\n    sigmoid(z1\n           ^"
    )
    assert err.hint and err.hint.startswith("allowed:")


def test_expression_invalid_syntax_message() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "z1 z1"'))
    assert err.message.splitlines()[0] == "forward.h1: invalid syntax at column 4"
    assert err.message.splitlines()[2] == "       ^"


def test_forbidden_construct_in_expression() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "z1.__class__"'))
    assert err.line == 21
    assert err.message.startswith("forward.h1: the attribute .__class__ is not allowed")
    assert err.hint == "the only attribute is .T (transpose), e.g. W.T @ d"


def test_long_expression_is_clipped_around_the_caret() -> None:
    text = "z1 + " * 100 + "z1 z1"
    err = error_of(mutate('h1 = "sigmoid(z1)"', f'h1 = "{text}"'))
    first, shown, caret = err.message.splitlines()
    assert first == f"forward.h1: invalid syntax at column {len(text) - 1}"
    assert shown.startswith("    ...")
    assert len(shown) < 140
    assert shown[caret.index("^") :].startswith("z1")


def test_equation_must_be_a_string() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', "h1 = 3"))
    assert err.line == 21
    assert err.message == "forward.h1 must be a quoted expression string, not an integer"
    assert err.hint == 'e.g. h1 = "W @ x + b"'


def test_name_used_before_it_is_defined() -> None:
    text = mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(z1) + g"').replace(
        'L  = "-sum(t * log(p))"', 'L  = "-sum(t * log(p))"\ng = "2 * b1"'
    )
    err = error_of(text)
    assert err.line == 21
    assert err.message.startswith(
        "forward.h1: 'g' is used before it is defined: forward equations run in order"
    )
    assert err.hint == "move the equation for 'g' (line 25) above 'h1' (line 21)"


def test_self_reference_is_a_cycle() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(h1)"'))
    assert err.line == 21
    assert "cycle" in err.message
    assert err.message.startswith("forward.h1: 'h1' refers to itself")
    assert err.hint and "defined above it" in err.hint


def test_mutual_reference_is_a_cycle() -> None:
    err = error_of(mutate('z1 = "W1 @ x + b1"', 'z1 = "W1 @ x + f"'))
    assert err.line == 20
    assert "cycle z1 -> f -> h1 -> z1" in err.message
    assert "used before it is defined" in err.message


def test_unknown_name_with_suggestion() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(z11)"'))
    assert err.line == 21
    assert err.message.startswith("forward.h1: unknown name 'z11' at column 9")
    assert err.hint == "did you mean 'z1'?"


def test_unknown_name_without_suggestion() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(qqq)"'))
    assert err.hint and err.hint.startswith("declare it under [inputs], [params]")


def test_dims_and_constants_are_values() -> None:
    text = mutate("[inputs]", "[constants]\ngain = 2\n\n[inputs]")
    text = mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid(z1) * gain / d"', text)
    assert strip(parse_spec(text).forward[1].expr) == (
        "/",
        ("*", ("sigmoid", "z1"), "gain"),
        "d",
    )


def test_op_used_as_a_value() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmoid"'))
    assert err.message.startswith("forward.h1: 'sigmoid' is an op, not a value")
    assert err.hint == "call it, e.g. sigmoid(...)"


# ---------------------------------------------------------------------------------------
# Calls


def test_misspelt_op() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "sigmod(z1)"'))
    assert err.line == 21
    assert err.message.startswith("forward.h1: unknown op 'sigmod' at column 1")
    assert err.hint == "did you mean 'sigmoid'?"


def test_unknown_op_without_suggestion_lists_ops() -> None:
    err = error_of(mutate('h1 = "sigmoid(z1)"', 'h1 = "qqqq(z1)"'))
    assert err.hint and err.hint.startswith("built-in ops: exp, log")
    assert err.hint.endswith("declare your own under [ops]")


def test_calling_a_tensor() -> None:
    err = error_of(mutate('z1 = "W1 @ x + b1"', 'z1 = "W1(x) + b1"'))
    assert err.message.startswith("forward.z1: 'W1' is a param, not an op")
    assert err.hint and "@" in err.hint


@pytest.mark.parametrize(
    ("expr", "message", "hint"),
    [
        (
            "sigmoid(f, f)",
            "sigmoid() takes 1 positional argument (z), got 2",
            "call it as sigmoid(z)",
        ),
        (
            "softmax(f, f)",
            "the parameter axis of softmax() must be a number or a constant, not 'f'",
            "e.g. axis=-1, or declare 'f' under [constants]",
        ),
        (
            "cross_entropy(f)",
            "cross_entropy() takes 2 positional arguments (p, t), got 1",
            "call it as cross_entropy(p, t)",
        ),
        ("exp(f, base=2)", "exp() has no keyword 'base'", "call it as exp(z)"),
        (
            "leaky_relu(f, slop=0.1)",
            "leaky_relu() has no keyword 'slop'",
            "did you mean 'slope'?; the signature is leaky_relu(z, slope=0.01, at_zero=1)",
        ),
        ("relu(f, k=1)", "relu() has no keyword 'k'", "call it as relu(z, at_zero=0)"),
        (
            "leaky_relu(f, 0.1, 1, 2)",
            "leaky_relu() takes 1 positional argument (z) and 2 parameters (slope, at_zero), got 4",
            "call it as leaky_relu(z, slope=0.01, at_zero=1)",
        ),
        (
            "leaky_relu(f, 0.1, slope=0.2)",
            "leaky_relu() got 'slope' twice (by position and by keyword)",
            "call it as leaky_relu(z, slope=0.01, at_zero=1)",
        ),
        (
            "leaky_relu(f, x)",
            "the parameter slope of leaky_relu() must be a number or a constant, not 'x'",
            "e.g. slope=0.1, or declare 'x' under [constants]",
        ),
        (
            "leaky_relu(f, slope=x)",
            "the keyword slope= of leaky_relu() must be a number or a constant, not 'x'",
            "e.g. slope=0.1, or declare 'x' under [constants]",
        ),
        (
            "leaky_relu(f, slope=exp(1))",
            "the keyword slope= of leaky_relu() must be a number or a constant",
            "e.g. slope=0.1",
        ),
    ],
)
def test_bad_builtin_calls(expr: str, message: str, hint: str) -> None:
    err = error_of(mutate('p  = "softmax(f)"', f'p  = "{expr}"'))
    assert err.line == 23
    assert err.message.startswith(f"forward.p: {message} at column ")
    assert err.hint == hint


def test_keyword_values_may_use_numbers_constants_and_dims() -> None:
    text = mutate("[inputs]", "[constants]\nalpha = 0.2\n\n[inputs]")
    text = mutate('h1 = "sigmoid(z1)"', 'h1 = "leaky_relu(z1, slope=alpha / d, at_zero=0)"', text)
    call = parse_spec(text).forward[1].expr
    assert isinstance(call, Call)
    assert [key for key, _ in call.kwargs] == ["slope", "at_zero"]


# ---------------------------------------------------------------------------------------
# Custom ops


def with_ops(ops: str, h1: str = "sigmoid(z1)") -> str:
    """EXAMPLE with an [ops] section and a replacement body for h1."""
    text = mutate("[inputs]", f"[constants]\nbeta = 1.5\n\n[ops]\n{ops}\n\n[inputs]")
    return mutate('h1 = "sigmoid(z1)"', f'h1 = "{h1}"', text)


def test_custom_ops_are_callable() -> None:
    spec = parse_spec(
        with_ops(
            'swish = { args = ["z"], expr = "z * sigmoid(beta * z)" }\n'
            'twice = { args = ["a", "b"], expr = "swish(a) + swish(b)" }',
            "twice(z1, swish(z1))",
        )
    )
    assert list(spec.ops) == ["swish", "twice"]
    assert strip(spec.forward[1].expr) == ("twice", "z1", ("swish", "z1"))


@pytest.mark.parametrize(
    ("ops", "message", "hint"),
    [
        (
            'swish = { args = ["z"], expr = "z * sigmoid(y)" }',
            "ops.swish.expr: 'y' is not an argument of 'swish' or a constant at column 13",
            'add it to args, e.g. args = ["z", "y"], or declare it under [constants]',
        ),
        (
            'swish = { args = ["z"], expr = "z * sigmoid(bta)" }',
            "ops.swish.expr: 'bta' is not an argument",
            "did you mean 'beta'?",
        ),
        (
            'swish = { args = ["z"], expr = "z * sigmoid(x)" }',
            "ops.swish.expr: 'x' is not an argument of 'swish' or a constant (it is an input; "
            "custom ops see only their args and [constants])",
            "add it to args",
        ),
        (
            'swish = { args = ["z"], expr = "z * swish(z)" }',
            "ops.swish.expr: 'swish' calls itself: custom ops cannot be recursive",
            "write the body with built-in ops and ops declared above it",
        ),
        (
            'a = { args = ["z"], expr = "b(z)" }\nb = { args = ["z"], expr = "a(z)" }',
            "ops.a.expr: 'a' calls 'b', which is declared below it",
            "declare 'b' above 'a'; an op may call only ops declared above it (no recursion)",
        ),
        (
            'swish = { args = ["z"], expr = "z * sigmod(z)" }',
            "ops.swish.expr: unknown op 'sigmod'",
            "did you mean 'sigmoid'?",
        ),
        (
            'swish = { args = ["z"], expr = "z * sigmoid(z" }',
            "ops.swish.expr: '(' was never closed",
            "allowed:",
        ),
        (
            'swish = { args = ["z"], expr = "leaky_relu(z, slope=exp(z))" }',
            "ops.swish.expr: the keyword slope= of leaky_relu() must be a number or a constant",
            "e.g. slope=0.1",
        ),
    ],
)
def test_bad_op_bodies(ops: str, message: str, hint: str) -> None:
    text = with_ops(ops)
    err = error_of(text)
    assert err.line == line_of(text, ops.split(" ")[0] + " = {")
    assert err.message.startswith(message)
    assert err.hint and err.hint.startswith(hint)


def test_op_keyword_values_may_use_its_args() -> None:
    spec = parse_spec(with_ops('lr = { args = ["z", "a"], expr = "leaky_relu(z, slope=a)" }'))
    assert spec.ops["lr"].args == ("z", "a")


@pytest.mark.parametrize(
    ("ops", "message", "hint"),
    [
        (
            'swish = ["z"]',
            "ops.swish must be a table, not a list",
            'e.g. swish = { args = ["z"], expr = "z * sigmoid(z)" }',
        ),
        ('swish = { args = ["z"] }', "ops.swish has no expr", "e.g. swish = {"),
        ('swish = { expr = "z" }', "ops.swish has no args", "e.g. swish = {"),
        (
            'swish = { args = [], expr = "1" }',
            "ops.swish.args must be a non-empty list",
            'e.g. args = ["z"]',
        ),
        (
            'swish = { args = "z", expr = "z" }',
            "ops.swish.args must be a non-empty list",
            'e.g. args = ["z"]',
        ),
        (
            'swish = { args = ["z", "z"], expr = "z" }',
            "ops.swish.args lists 'z' twice",
            "give each argument once",
        ),
        (
            'swish = { args = ["_z"], expr = "z" }',
            "ops.swish.args: invalid argument name '_z'",
            "argument names start with a letter",
        ),
        (
            'swish = { args = ["z"], expr = 3 }',
            "ops.swish.expr must be a quoted expression string, not an integer",
            'e.g. expr = "z * sigmoid(z)"',
        ),
        (
            'swish = { args = ["z"], exp = "z" }',
            "unknown key 'exp' in ops.swish",
            "did you mean 'expr'?",
        ),
    ],
)
def test_bad_op_declarations(ops: str, message: str, hint: str) -> None:
    text = with_ops(ops)
    err = error_of(text)
    assert err.line == line_of(text, "swish = ")
    assert err.message.startswith(message)
    assert err.hint and err.hint.startswith(hint)


@pytest.mark.parametrize(
    ("call", "message", "hint"),
    [
        ("swish(z1, z1)", "swish() takes 1 positional argument (z), got 2", "call it as swish(z)"),
        ("swish(z1, k=1)", "swish() has no keyword 'k'", "call it as swish(z)"),
        (
            "swish(z1, z=z1)",
            "swish() got 'z' twice (by position and by keyword)",
            "call it as swish(z)",
        ),
    ],
)
def test_bad_custom_op_calls(call: str, message: str, hint: str) -> None:
    text = with_ops('swish = { args = ["z"], expr = "z * sigmoid(z)" }', call)
    err = error_of(text)
    assert err.line == line_of(text, "h1 =")
    assert err.message.startswith(f"forward.h1: {message}")
    assert err.hint == hint


# ---------------------------------------------------------------------------------------
# Loss


@pytest.mark.parametrize(
    ("loss", "line_needle", "message", "hint"),
    [
        (
            'output = "LL"',
            "output",
            "loss.output names an unknown equation 'LL'",
            "did you mean 'L'?",
        ),
        (
            'output = "qqq"',
            "output",
            "loss.output names an unknown equation 'qqq'",
            "forward equations: z1, h1, f, p, L",
        ),
        (
            'output = "x"',
            "output",
            "loss.output must name a forward equation, but 'x' is an input",
            "forward equations: z1, h1, f, p, L",
        ),
        (
            "output = 3",
            "output",
            "loss.output must be a string, not an integer",
            'e.g. output = "L"',
        ),
        (
            'output = "L"\nreduction = "summ"',
            "reduction",
            'loss.reduction must be "mean" or "sum", not \'summ\'',
            "did you mean 'sum'?",
        ),
        (
            'output = "L"\nreduction = "avg"',
            "reduction",
            'loss.reduction must be "mean" or "sum", not \'avg\'',
            "reductions: mean, sum",
        ),
        ('reduction = "sum"', "[loss]", "[loss] has no output", 'add: output = "L"'),
    ],
)
def test_bad_loss(loss: str, line_needle: str, message: str, hint: str) -> None:
    text = mutate('output = "L"\nreduction = "mean"     # over the batch; "sum" also allowed', loss)
    err = error_of(text)
    assert err.line == line_of(text, line_needle)
    assert err.message == message
    assert err.hint == hint


def test_loss_may_be_named_loss() -> None:
    text = mutate('L  = "-sum(t * log(p))"', 'loss = "-sum(t * log(p))"')
    spec = parse_spec(mutate('output = "L"', 'output = "loss"', text))
    assert spec.loss == "loss"
    assert spec.lines["loss"] == 24


# ---------------------------------------------------------------------------------------
# Properties


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_spec_errors(text: str) -> None:
    try:
        parse_spec(text)
    except SpecError as err:
        assert err.message
        assert err.line is None or 1 <= err.line <= text.count("\n") + 2


EXAMPLE_LINES = EXAMPLE.split("\n")


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, len(EXAMPLE_LINES) - 1),
    st.text(alphabet='abxz1[]{}="#,. ', max_size=20),
)
def test_one_corrupted_line_gives_a_located_error_or_a_spec(index: int, junk: str) -> None:
    lines = list(EXAMPLE_LINES)
    lines[index] = junk
    text = "\n".join(lines)
    try:
        spec = parse_spec(text)
    except SpecError as err:
        assert err.message
        assert err.line is None or 1 <= err.line <= len(lines)
        return
    assert spec.forward
    assert all(eq.line is not None for eq in spec.forward)


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("z1 = ", "g_z1 = ", "reserved for gradients"),
        ('x = { shape = ["d"] }', 'batch = { shape = ["d"] }', "generated module"),
        ('b2 = { shape = ["k"] }', 'np = { shape = ["k"] }', "generated module"),
    ],
)
def test_names_the_generated_code_needs_are_reserved(old: str, new: str, says: str) -> None:
    err = error_of(EXAMPLE.replace(old, new, 1))
    assert "reserved" in err.message and says in err.message
    assert err.line is not None
