"""The program that runs inside the sandbox: import a submission, call its entry, send arrays.

It is copied into the sandbox's read-only ``/in`` and run by the sandbox's own interpreter, so
it imports nothing but the standard library and NumPy (not derive). It reads:

- ``$DERIVE_IN/job.json``: ``{"file": "hw.py", "entry": "backward", "cases": n,
  "args": {argument name: input key}, "params": [argument names that are parameters]}``;
- ``$DERIVE_IN/inputs.npz``: for case ``k``, arrays ``c{k}.{key}``;

calls ``entry(**{arg: inputs[f"c{k}.{key}"]})`` for each case (only the arguments the
function declares, unless it takes ``**kwargs``; ``entry(params, batch)`` gets two dicts),
and writes one record per case to the descriptor ``$DERIVE_RESULT_FD``: ``b"DRV1"``, an
8-byte big-endian length, then an ``.npz`` archive holding ``meta`` (JSON bytes) and the
returned arrays ``r0, r1, ...``. The returned value is turned into float64 arrays here,
inside the sandbox, so that no object of the submission ever reaches the grader. A record
with ``"stage": "import"`` or ``"entry"`` reports a submission that could not be imported or
has no such function.
"""

import importlib.util
import io
import json
import os
import sys
import traceback

MAGIC = b"DRV1"
TRACE_LINES = 8


def _send(fd, meta, arrays):
    import numpy as np

    buf = io.BytesIO()
    payload = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    payload.update({f"r{i}": a for i, a in enumerate(arrays)})
    np.savez(buf, **payload)
    data = buf.getvalue()
    os.write(fd, MAGIC + len(data).to_bytes(8, "big"))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _trace(exc):
    """The last lines of the traceback, without the runner's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    lines = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip().splitlines()
    return "\n".join(lines[-TRACE_LINES:])


def _as_array(value):
    """A float64 array, or an error string saying why the value is not one."""
    import numpy as np

    try:
        arr = np.asarray(value, dtype=np.float64)
    except BaseException as exc:
        return f"not a numeric array ({type(value).__name__}: {exc})"
    return arr


def _unpack(value):
    """(kind, keys, arrays, notes) of what the entry returned."""
    if isinstance(value, dict):
        keys = [str(k) for k in value]
        items = list(value.values())
        kind = "dict"
    elif isinstance(value, (tuple, list)):
        keys = [str(i) for i in range(len(value))]
        items = list(value)
        kind = "tuple"
    else:
        return "other", [], [], [f"returned a {type(value).__name__}, not a dict or tuple"]
    arrays, notes, kept = [], [], []
    for key, item in zip(keys, items, strict=True):
        arr = _as_array(item)
        if isinstance(arr, str):
            notes.append(f"{key}: {arr}")
        else:
            kept.append(key)
            arrays.append(arr)
    return kind, kept, arrays, notes


def _accepted(entry, kwargs, params_names):
    """The keyword arguments ``entry`` takes (all of them when it has ``**kwargs``), or, for
    ``entry(params, batch)`` in the generated module's style, the two dicts."""
    import inspect

    try:
        params = inspect.signature(entry).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    if {"params", "batch"} <= set(params) and not set(kwargs) & set(params):
        theta = {k: v for k, v in kwargs.items() if k in params_names}
        batch = {k: v for k, v in kwargs.items() if k not in params_names}
        return {"params": theta, "batch": batch}
    return {k: v for k, v in kwargs.items() if k in params}


def main():
    fd = int(os.environ["DERIVE_RESULT_FD"])
    in_dir = os.environ["DERIVE_IN"]
    lib = os.environ.get("DERIVE_LIB")
    if lib:
        sys.path.insert(0, lib)
    import numpy as np

    with open(os.path.join(in_dir, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    with np.load(os.path.join(in_dir, "inputs.npz"), allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    _send(fd, {"stage": "start"}, [])
    sys.path.insert(0, os.getcwd())
    sys.argv = [job["file"]]
    try:
        spec = importlib.util.spec_from_file_location("submission", job["file"])
        module = importlib.util.module_from_spec(spec)
        sys.modules["submission"] = module
        spec.loader.exec_module(module)
    except BaseException as exc:
        _send(fd, {"stage": "import", "error": _trace(exc)}, [])
        return
    entry = getattr(module, job["entry"], None)
    if not callable(entry):
        names = sorted(n for n, v in vars(module).items() if callable(v) and n[:1] != "_")
        _send(fd, {"stage": "entry", "defined": names[:20]}, [])
        return
    for k in range(job["cases"]):
        kwargs = {arg: inputs[f"c{k}.{key}"].copy() for arg, key in job["args"].items()}
        kwargs = _accepted(entry, kwargs, job["params"])
        try:
            value = entry(**kwargs)
        except BaseException as exc:
            _send(fd, {"stage": "call", "case": k, "error": _trace(exc)}, [])
            continue
        kind, keys, arrays, notes = _unpack(value)
        meta = {"stage": "call", "case": k, "kind": kind, "keys": keys, "notes": notes}
        _send(fd, meta, arrays)


if __name__ == "__main__":
    main()
