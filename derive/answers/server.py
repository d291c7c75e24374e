"""``derive serve``: a local page where a student types a derivative and sees the verdict.

Standard library only (:mod:`http.server`, one thread per request).  Every question is a
URL: ``/?spec=mlp_softmax&wrt=W2`` (the adjoint of a node) or ``/?expr=...&wrt=w1&given=y=1``
(a scalar derivative); ``&answer=...`` adds the answer, so a lecturer can link to a
question or to a worked mistake.  Math is MathML from SymPy's printer (no script, no
network).  Hostile answers are judged like any other: the reader refuses them (exit-2
verdicts become a "cannot read" box) and the symbolic work is bounded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from derive.answers.command import parse_given
from derive.answers.scalar import BadQuestion, judge_scalar
from derive.answers.spec import SpecQuestion, questions
from derive.answers.verdict import Verdict, point_text, value_text
from derive.emit.templating import environment

MAX_URL = 65536  # http.server refuses longer request lines itself
MAX_CACHED = 64


@dataclass
class Site:
    """The specs a page offers, by name, and questions already prepared."""

    specs: dict[str, Path]

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.prepared: dict[tuple[str, str], SpecQuestion] = {}
        self.derivations: dict[str, Any] = {}

    def derivation(self, name: str) -> Any:
        from derive.pipeline import derive_spec

        with self.lock:
            if name not in self.derivations:
                self.derivations[name] = derive_spec(self.specs[name])
            return self.derivations[name]

    def question(self, spec: str, wrt: str) -> SpecQuestion:
        if spec not in self.specs:
            raise BadQuestion(f"no spec named {spec!r} here ({', '.join(self.specs)})")
        d = self.derivation(spec)
        with self.lock:
            key = (spec, wrt)
            if key not in self.prepared:
                if len(self.prepared) >= MAX_CACHED:
                    self.prepared.pop(next(iter(self.prepared)))
                self.prepared[key] = SpecQuestion.from_derivation(d, wrt, (), 0, spec)
            return self.prepared[key]

    def menu(self) -> list[dict[str, Any]]:
        out = []
        for name in self.specs:
            d = self.derivation(name)
            links = [
                {"wrt": w, "href": "/?" + urlencode({"spec": name, "wrt": w})} for w in questions(d)
            ]
            note = "" if links else "examples interact (batch statistics): no per-example questions"
            out.append({"name": name, "questions": links, "note": note})
        return out

    def equations(self, spec: str) -> list[str]:
        d = self.derivation(spec)
        return [
            f"{n.name} = {n.meta['text']}" for n in d.graph.nodes if n.user and "text" in n.meta
        ]


def page(site: Site, query: dict[str, str]) -> tuple[int, str]:
    """The page for one query string: status and HTML."""
    context: dict[str, Any] = {"query": query, "menu": site.menu(), "verdict": None, "error": ""}
    status = HTTPStatus.OK
    answer = query.get("answer")
    try:
        judge = None
        if query.get("spec"):
            q = site.question(query["spec"], query.get("wrt", ""))
            context["question"] = q.question
            context["equations"] = site.equations(query["spec"])
            judge = q.judge
        elif query.get("expr"):
            expr, wrt = query["expr"], query.get("wrt", "")
            given = parse_given([g for g in query.get("given", "").split(",") if g.strip()])
            context["question"] = f"∂/∂{wrt} of {expr}" + "".join(
                f", {k} = {v:g}" for k, v in given.items()
            )

            def judge(text: str) -> Verdict:
                return judge_scalar(expr, wrt, text, given)

        if judge is not None and answer is not None and answer.strip():
            context["verdict"] = judge(answer)
    except BadQuestion as err:
        status = HTTPStatus.BAD_REQUEST
        context["error"] = str(err)
    env = environment().overlay(autoescape=True)
    env.filters.update(values=value_text, point=point_text)
    return status, env.get_template("answer_page.html.j2").render(**context)


class Handler(BaseHTTPRequestHandler):
    site: Site
    server_version = "derive"

    def do_GET(self) -> None:
        if len(self.path) > MAX_URL:
            return self.send(HTTPStatus.REQUEST_URI_TOO_LONG, "the address is too long")
        parts = urlsplit(self.path)
        if parts.path != "/":
            return self.send(HTTPStatus.NOT_FOUND, "no such page; questions live at /")
        raw = parse_qs(parts.query, keep_blank_values=True, max_num_fields=20)
        query = {k: v[0] for k, v in raw.items()}
        try:
            status, html = page(self.site, query)
        except Exception as err:  # a bug in derive: report it, keep serving
            status, html = HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(err).__name__}"
            return self.send(status, html)
        return self.send(status, html, "text/html")

    def send(self, status: int, body: str, kind: str = "text/plain") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_server(
    specs: list[Path], host: str = "127.0.0.1", port: int = 8000
) -> ThreadingHTTPServer:
    site = Site({Path(s).stem: Path(s) for s in specs})
    handler = type("SiteHandler", (Handler,), {"site": site})
    return ThreadingHTTPServer((host, port), handler)


def default_specs() -> list[Path]:
    """The bundled classifier (shipped with the package)."""
    return [Path(__file__).resolve().parents[1] / "data" / "mlp_softmax.toml"]


def run_server(specs: list[str], host: str, port: int) -> int:
    """Derive every spec first (a bad one exits 2 before serving), then serve until Ctrl-C."""
    from derive.pipeline import derive_spec

    paths = [Path(s) for s in specs] or default_specs()
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        raise BadQuestion("two specs with the same file name; rename one")
    for p in paths:
        derive_spec(p)  # SpecError: exit 2 with the file and line
    try:
        server = make_server(paths, host, port)
    except OSError as err:
        raise BadQuestion(f"cannot listen on {host}:{port} ({err.strerror})") from None
    print(f"derive: serving http://{host}:{server.server_address[1]}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
