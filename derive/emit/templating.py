"""The one Jinja2 environment every output file is rendered through.

Templates live in the repository's ``templates/`` folder, which the wheel ships as the
package ``derive.templates``; :func:`templates_dir` finds whichever is present.  Filters
shared by all templates are registered here (``py``: a Python literal; ``gradient``:
the name of a value's gradient, ``g_X``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

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
