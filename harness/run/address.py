"""Is there a Ray head at ``--address``? Answered in seconds, before torch or a Ray driver starts,
where ``ray.init`` would retry for half a minute or hang: nothing listening, something that is not
a gRPC server, a gRPC server that is not Ray's GCS, a cluster that wants a token this driver lacks."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class BackendError(Exception):
    """The cluster or device cannot run this campaign; one line for the user."""


CONNECT_TIMEOUT_S = 5.0
# Ray's GCS answers its cluster-id call in milliseconds; a gRPC server that is not Ray never does.
GCS_DEADLINE_S = 3.0
# A Ray head's address is its GCS, a gRPC server: HTTP/2, which answers a client's connection preface
# with its own SETTINGS frame. Anything else that accepts the connection is not a Ray head.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def check_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse what cannot work before Ray spends minutes retrying it: ray:// client addresses (they
    need ray[client]; use ``ray job submit``), a HOST:PORT that nothing answers on, and one where
    something other than a Ray head (a gRPC server) answers. Takes at most about 2 x ``timeout``."""
    if address.startswith("ray://"):
        raise BackendError(
            f"--address {address}: ray:// client addresses are not supported; run the campaign "
            f"on a cluster node with --address auto, or submit it with `ray job submit`"
        )
    if address == "auto":
        probe_auto(min(timeout, GCS_DEADLINE_S))
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"--address {address}: expected 'auto' or HOST:PORT of a Ray head node")
    try:
        conn = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
    except OSError as exc:
        raise BackendError(
            f"--address {address}: no Ray head answers there ({exc.strerror or type(exc).__name__})"
        ) from None
    with conn:
        answer = _first_bytes(conn, timeout)
    what = answered(answer)
    if what is not None:
        raise BackendError(f"--address {address}: not a Ray head: {what}")
    probe_gcs(address, address, min(timeout, GCS_DEADLINE_S))


TOKEN_HINT = (
    "set RAY_AUTH_MODE=token and give this driver the cluster's token: RAY_AUTH_TOKEN=<token> or "
    "RAY_AUTH_TOKEN_PATH=<file> (`ray get-auth-token` on the head node prints it)"
)


def probe_gcs(address: str, gcs: str, timeout: float, only_auth: bool = False) -> None:
    """One real call to Ray's GCS at ``gcs`` (its cluster id) with a deadline: a gRPC server that is
    not Ray never answers it, and a cluster that wants a token this driver lacks refuses it at once,
    where ``ray.init`` would retry for half a minute. Ray's own log line about it is kept off stderr.
    ``only_auth``: report the token refusal only."""
    try:
        from ray._raylet import InnerGcsClient  # type: ignore[attr-defined]
        from ray.exceptions import AuthenticationError
    except ImportError:  # a Ray without these: ray.init will tell
        return
    with stderr_silenced():
        try:
            InnerGcsClient.standalone(gcs, None, int(timeout * 1000))
        except AuthenticationError:
            raise BackendError(
                f"--address {address}: the cluster wants an authentication token that this driver "
                f"lacks or that does not match: {TOKEN_HINT}"
            ) from None
        except Exception as exc:
            if only_auth:
                return
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise BackendError(
                f"--address {address}: not a Ray head: its gRPC server did not answer Ray's GCS call "
                f"within {timeout:g} s ({first})"
            ) from None


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """File descriptor 2 on /dev/null for the block (Ray's C++ logging writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def probe_auto(timeout: float) -> None:
    """``--address auto``: the token check on the cluster Ray would pick (RAY_ADDRESS or the last one
    ``ray start`` began on this machine), with the token mode ``ray.init`` would take for it (on when
    a token file exists). Other failures are left to ray.init, which resolves "auto" its own way."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
        from ray._private.services import canonicalize_bootstrap_address

        gcs = canonicalize_bootstrap_address("auto")
        if gcs:
            maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    except Exception:
        return
    if gcs:
        probe_gcs("auto", gcs, timeout, only_auth=True)


def _first_bytes(conn: socket.socket, timeout: float) -> bytes:
    """What the server says (at most 256 bytes) after an HTTP/2 client preface, within ``timeout``."""
    conn.settimeout(timeout)
    try:
        conn.sendall(HTTP2_PREFACE)
        return conn.recv(256)
    except TimeoutError:
        return b"<silent>"
    except OSError:
        return b""


def answered(reply: bytes) -> str | None:
    """None when ``reply`` is what a gRPC (HTTP/2) server or a TLS one (Ray with RAY_USE_TLS) sends
    first; otherwise what answered instead, in words."""
    if len(reply) >= 9 and reply[3] == 0x04 and reply[4] in (0, 1):  # an HTTP/2 SETTINGS frame
        return None
    if reply[:1] in (b"\x15", b"\x16") and reply[1:2] == b"\x03":  # a TLS record (alert or handshake)
        return None
    if reply == b"<silent>":
        return "something accepted the connection but sent nothing back (not a gRPC server)"
    if not reply:
        return "something accepted the connection and closed it without a word (not a gRPC server)"
    first = reply.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("ascii", "replace")
    printable = "".join(c if c.isprintable() else "?" for c in first)[:80]
    if reply.startswith(b"HTTP/") or b"<html" in reply.lower() or b"<!doctype html" in reply.lower():
        return f"an HTTP/1 (web) server answered ({printable!r})"
    if reply.startswith(b"SSH-"):
        return f"an SSH server answered ({printable!r})"
    return f"a server that does not speak gRPC answered ({printable!r})"


def auth_hint(exc: BaseException) -> str:
    """What to do when Ray refused us for want of its authentication token (Ray >= 2.5x turns token
    authentication on in ``ray start``)."""
    text = f"{type(exc).__name__} {exc}"
    if "AuthToken" in text or "authentication" in text.lower() or "UNAUTHENTICATED" in text:
        return f"; the cluster uses token authentication: {TOKEN_HINT}"
    return ""
