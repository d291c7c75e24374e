"""``derive serve``: the page over HTTP, hostile input, and headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from derive.answers.server import make_server
from derive.cli import main

SPEC = Path("examples/mlp_softmax.toml")
RIGHT = r"h_1 \odot (1 - h_1) \odot W_2^T (p - t)"
WRONG = r"h_1 \odot (1 - h_1) \odot W_2 (p - t)"
UNREADABLE = r"\input{/etc/passwd}"


@pytest.fixture(scope="module")
def base_url():
    server = make_server([SPEC, Path("examples/mlp_batchnorm.toml")], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def url(base: str, **query: str) -> str:
    return f"{base}/?{urlencode(query)}"


def get(address: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(address, timeout=60) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8")


def test_questions_are_links(base_url) -> None:
    status, html = get(base_url + "/")
    assert status == 200
    assert 'href="/?spec=mlp_softmax&amp;wrt=W2"' in html
    assert "examples interact (batch statistics)" in html
    status, html = get(url(base_url, spec="mlp_softmax", wrt="W2"))
    assert status == 200 and "∂L/∂W2 for one example of mlp_softmax" in html
    assert "<code>p = softmax(f)</code>" in html


def test_verdicts_and_reading_on_the_page(base_url) -> None:
    _, html = get(url(base_url, spec="mlp_softmax", wrt="z1", answer=RIGHT))
    assert 'data-verdict="equivalent"' in html and "<math" in html
    _, html = get(url(base_url, spec="mlp_softmax", wrt="z1", answer=WRONG))
    assert 'data-verdict="not equivalent"' in html and "a transpose is missing on W2" in html
    _, html = get(url(base_url, spec="mlp_softmax", wrt="W2", answer="(p - t) z_1^T"))
    assert "z1 is used where h1" in html and "expected =" in html
    _, html = get(url(base_url, expr="x^2 y", wrt="x", answer="2xy"))
    assert 'data-verdict="equivalent"' in html


HOSTILE = [
    "__import__('os').system('touch /tmp/derive-hacked')",
    "().__class__.__base__.__subclasses__()",
    UNREADABLE,
    r"\def\x{1}",
    "10^{10^{10}}",
    "(" * 5000 + "x" + ")" * 5000,
    "<script>alert(1)</script>",
]


@pytest.mark.parametrize("answer", HOSTILE, ids=range(len(HOSTILE)))
def test_page_survives_hostile_answers(base_url, answer: str) -> None:
    status, html = get(url(base_url, spec="mlp_softmax", wrt="f", answer=answer))
    assert status == 200
    assert 'data-verdict="cannot read"' in html
    assert "<script>" not in html
    assert not Path("/tmp/derive-hacked").exists()


def test_page_refuses_bad_requests(base_url) -> None:
    assert get(base_url + "/?answer=" + "x" * 100_000)[0] == 414
    assert get(base_url + "/etc/passwd")[0] == 404
    status, html = get(url(base_url, spec="nope", wrt="f", answer="p"))
    assert status == 400 and "no spec named" in html
    status, html = get(url(base_url, spec="mlp_softmax", wrt="zz", answer="p"))
    assert status == 400 and "not a value of the spec" in html
    assert get(base_url + "/")[0] == 200  # still serving


def test_serve_refuses_a_bad_spec(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 1\n")
    assert main(["serve", "--spec", str(bad), "--port", "0"]) == 2


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed")
    return found


def _browser(chromium: str, *args: str) -> str:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, check=False
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "verdict", "words"),
    [
        (RIGHT, "equivalent", "Equivalent"),
        (WRONG, "not equivalent", "a transpose is missing on W2"),
        (UNREADABLE, "cannot read", "Cannot read the answer"),
    ],
    ids=["right", "wrong", "unreadable"],
)
def test_page_in_chromium(base_url, tmp_path, answer, verdict, words) -> None:
    chromium = _chromium()
    address = url(base_url, spec="mlp_softmax", wrt="z1", answer=answer)
    dom = _browser(chromium, "--dump-dom", address)
    assert f'data-verdict="{verdict}"' in dom and words in dom
    if verdict != "cannot read":
        assert "<math" in dom and "<msub>" in dom
    shot = tmp_path / f"{verdict.replace(' ', '_')}.png"
    _browser(chromium, f"--screenshot={shot}", "--window-size=1100,800", address)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
