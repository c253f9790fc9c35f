"""Issue 20: nothing runs that the user did not ask for, nothing mixes that should not, and every
failure is one line. Fast tests; the CLI ones run `python -m harness.study` on tiny inputs."""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from harness.run.backends import BackendError, check_address
from helpers import study_cli


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


# --------------------------------------------------------------------------- item 2: --address

@pytest.fixture
def http_server():
    """A local web server: accepts TCP like a Ray head would, but speaks HTTP/1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_http_server_is_not_a_ray_head(http_server):
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"not a Ray head: an HTTP/1 \(web\) server answered"):
        check_address(http_server)
    assert time.monotonic() - t0 < 30


def test_a_silent_listener_is_not_a_ray_head():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="accepted the connection but sent nothing back"):
            check_address(f"127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        assert time.monotonic() - t0 < 5


def test_the_cli_refuses_an_http_server_in_one_line_in_under_30s(http_server, tmp_path):
    t0 = time.monotonic()
    r = study_cli("tta_variance", "--seeds", "1", "--preset", "smoke", "--address", http_server,
                  "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s"), "--data", str(tmp_path / "none"))
    assert "not a Ray head: an HTTP/1 (web) server answered" in one_error_line(r)
    assert time.monotonic() - t0 < 30 and not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- item 4: numbers

def test_set_lr_nan_exits_2_and_writes_nothing(tmp_path):
    item = "lr=nan"      # the other values: test_studyfile.py (same parse_set)
    r = study_cli("tta_variance", "--seeds", "1", "--preset", "smoke", "--set", item, "--backend", "local",
                  "--out", str(tmp_path / "o"), "--store", str(tmp_path / "s"))
    assert f"--set {item.split('=')[0]}: expected" in one_error_line(r)
    assert not list(tmp_path.iterdir())
