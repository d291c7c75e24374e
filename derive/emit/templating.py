"""The one Jinja2 environment every output file is rendered through.

Templates live in the repository's ``templates/`` folder, which the wheel ships as the
package ``derive.templates``; :func:`templates_dir` finds whichever is present.  Filters
shared by all templates are registered here (``py``: a Python literal; ``gradient``:
the name of a value's gradient, ``g_X``); :func:`write_atomic` writes a rendered file.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

import jinja2

from derive.emit.layout import layout
from derive.lang.naming import gradient_name


def templates_dir() -> Path:
    """``derive/templates`` in an installed wheel, the repository's ``templates/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


@cache
def environment() -> jinja2.Environment:
    """The shared environment: strict undefined names, block tags trimmed, final newline kept."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["py"] = py_literal
    env.filters["gradient"] = gradient_name
    env.globals["laid_out"] = laid_out
    return env


def render_template(name: str, **context: object) -> str:
    """Render the template file ``name`` with ``context``."""
    return environment().get_template(name).render(**context)


def py_literal(v: object) -> str:
    """Python source for a literal of dicts, tuples, strings, numbers and None (double quotes)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{py_literal(k)}: {py_literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, tuple):
        inner = ", ".join(py_literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a generated module is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def laid_out(prefix: str, code: str, indent: str, suffix: str = ",") -> str:
    """``prefix + code + suffix`` at ``indent``, broken as ruff format breaks a long line."""
    return "\n".join(layout(code, indent, 100, prefix, suffix))
