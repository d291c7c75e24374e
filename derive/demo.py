"""``derive demo``: the bundled classifier from spec to trained network."""

from __future__ import annotations

from pathlib import Path

from derive.autodiff.adjoint import adjoint_name
from derive.autodiff.steps import StepKind
from derive.lang.naming import gradient_of
from derive.pipeline import generate
from derive.show import show_json, shown_steps
from derive.train.data import load_blobs, one_hot
from derive.train.loop import train
from derive.verify.module import load_module
from derive.verify.run import check_spec

EXAMPLE = Path(__file__).resolve().parent / "data" / "mlp_softmax.toml"


def run_demo(out: Path, epochs: int = 30) -> int:
    print(f"1. Spec {EXAMPLE.name}: one sigmoid hidden layer, softmax cross-entropy\n")
    print(EXAMPLE.read_text(encoding="utf-8"))
    gen = generate(EXAMPLE, out)
    d = gen.derivation
    shown = show_json(d, parsable=False, full=False)["nodes"]
    print("2. Derivation (per-example adjoints, each step recorded)\n")
    for name in ("f", "z1"):
        print(f"   dL/d{name}, staged as {adjoint_name(name)}:")
        for step, s in shown_steps(d, name, parsable=False):
            note = f"   [{s['note']}]" if s["note"] else ""
            if step.kind is StepKind.LOCAL_DERIVATIVE:
                print(f"     {s['rule']}:\n         {s['before']}  =  {s['after']}")
            else:
                print(f"     {s['rule']}:\n         {s['after']}{note}")
        print(f"     => dL/d{name} = {shown[name]['staged']}\n")
    print(f"3. Emitted {gen.path}\n")
    for line in gen.text.splitlines():
        target, eq, _ = line.partition(" = ")
        if eq and target.startswith("    ") and gradient_of(target.removeprefix("    ")):
            print("  " + line.strip())
    print("\n4. Numeric proof\n")
    report = check_spec(EXAMPLE)
    print(report.table())
    if not report.ok:
        return 1
    print("\n5. Training on the bundled blobs data set (300 examples, 4 features, 3 classes)\n")
    module = load_module(gen.path)
    X, labels = load_blobs()
    result = train(module, X, one_hot(labels, 3), epochs=epochs, lr=0.5, seed=0)
    first, last = result.losses[0], result.losses[-1]
    print(f"\nloss {first:.4f} -> {last:.4f}, final accuracy {result.final_accuracy:.3f}")
    return 0 if last < first else 1
