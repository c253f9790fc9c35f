"""The private Ray cluster (no ``--address``): reachable from this machine only, only with a token
made for it, and gone when its driver is.

What really decides the binding in the installed Ray (2.60): its gRPC servers (GCS, raylet, core
workers, the driver) and agents listen on the node's IP address. ``ray.init(_node_ip_address=
"127.0.0.1")`` does not give a loopback node: ``services.resolve_ip_for_localhost`` swaps a loopback
address for the LAN one whenever Ray's "cluster mode" is on (``ray_constants.ENABLE_RAY_CLUSTER``,
from ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``, on by default on Linux). With it off for the cluster's
start the node address is loopback and every listener follows it. Token authentication is forced
with ``RAY_AUTH_MODE=token`` and a fresh random ``RAY_AUTH_TOKEN``, whatever the user's environment
says (and without writing ``~/.ray/auth_token``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from harness.run import reaper

CLUSTER_MODE_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_warned = False  # the "cannot bind to loopback" warning, once per process


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback (how Ray's dual-stack sockets show up)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def private_environment(ray: ModuleType) -> Callable[[], None]:
    """Set what makes the next ``ray.init(address="local")`` loopback-only and token-protected, for
    this process and the cluster's processes (they inherit it). Returns an undo, for after shutdown."""
    return environment(
        ray,
        {
            CLUSTER_MODE_VAR: "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_AUTH_TOKEN_PATH": None,  # the fresh token, not a file named by the user's environment
        },
    )


def loopback_driver(ray: ModuleType) -> Callable[[], None]:
    """For ``--address 127.0.0.1:PORT`` (a head started on loopback): without this, ``ray.init``
    swaps the loopback host for the LAN address, where nothing listens, and retries for minutes."""
    return environment(ray, {CLUSTER_MODE_VAR: "0"})


def needs_loopback_driver(address: str) -> bool:
    """Whether ``--address`` names a head on loopback that does not also answer on the LAN address
    ``ray.init`` would swap in (a head whose node address is 127.0.0.1: it listens there alone)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not is_loopback(host) or not port.isdigit():
        return False
    from ray._private.services import resolve_ip_for_localhost

    lan = resolve_ip_for_localhost(host)
    if is_loopback(lan):
        return False
    try:
        socket.create_connection((lan, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


def environment(ray: ModuleType, changes: dict[str, str | None]) -> Callable[[], None]:
    """Apply ``changes`` to the environment (None: unset), with Ray's cluster mode following
    CLUSTER_MODE_VAR in this process too (Ray reads it at import); returns the undo."""
    from ray._private import ray_constants

    saved = {name: os.environ.get(name) for name in changes}
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    _apply(changes)
    if CLUSTER_MODE_VAR in changes:
        ray_constants.ENABLE_RAY_CLUSTER = False
    _reload_auth()

    def undo() -> None:
        _apply(saved)
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
        _reload_auth()

    return undo


def _apply(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _reload_auth() -> None:
    """Ray caches the authentication mode (RayConfig) and token (its loader) per process."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # a Ray without token authentication
        pass


@dataclass
class Binding:
    """Where the private cluster listens: its node address and every listening socket of the driver
    and the processes under it (GCS, raylet, agents, workers)."""

    node_ip: str
    gcs_address: str
    token_auth: bool
    listening: list[tuple[str, str, int]] = field(default_factory=list)  # (process, host, port)

    def exposed(self) -> list[tuple[str, str, int]]:
        return [s for s in self.listening if not is_loopback(s[1])]

    def line(self) -> str:
        auth = "token authentication on" if self.token_auth else "token authentication OFF"
        where = (
            "all on loopback"
            if not self.exposed()
            else "beyond loopback: " + ", ".join(f"{n} on {h}:{p}" for n, h, p in self.exposed())
        )
        return (
            f"private Ray: node {self.node_ip}, GCS {self.gcs_address}, {len(self.listening)} listening "
            f"sockets {where}; {auth}"
        )


def cluster_pids(ray: ModuleType) -> list[int]:
    """The private cluster's processes: those Ray's node started (GCS, raylet, monitors) and every
    process under them (agents, workers); not this process's other children."""
    node = ray._private.worker._global_node
    started = [
        info.process.pid
        for infos in getattr(node, "all_processes", {}).values()
        for info in infos
        if getattr(info, "process", None) is not None
    ]
    return started + [d for pid in started for d in reaper.descendants(pid)]


def binding(ray: ModuleType) -> Binding:
    """The binding of the private cluster this process started (psutil comes with Ray)."""
    import psutil  # type: ignore[import-untyped]  # Ray ships it

    node = ray._private.worker._global_node
    listening = []
    for pid in [os.getpid(), *cluster_pids(ray)]:
        try:
            proc = psutil.Process(pid)
            name = proc.name()
            conns = proc.net_connections(kind="inet")
        except (psutil.Error, OSError):
            continue
        listening += [(name, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return Binding(node.node_ip_address, node.gcs_address, token_mode(), sorted(listening))


def token_mode() -> bool:
    """Whether this process's Ray uses token authentication."""
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationMode,
            get_authentication_mode,
        )
    except ImportError:
        return False
    return bool(get_authentication_mode() == AuthenticationMode.TOKEN)


def report(ray: ModuleType, verbose: bool) -> None:
    """Print the binding with --verbose; say once, whatever the flags, when the installed Ray listens
    beyond loopback or runs without a token."""
    global _warned
    bound = binding(ray)
    if verbose:
        print(bound.line(), file=sys.stderr)
    if (bound.exposed() or not bound.token_auth) and not _warned:
        _warned = True
        print(
            f"warning: the installed Ray ({ray.__version__}) cannot keep the private cluster to this "
            f"machine: {bound.line()}",
            file=sys.stderr,
        )


def start_reaper(ray: ModuleType) -> subprocess.Popen[str] | None:
    """A reaper for the cluster's processes (Linux), ending them when this process dies."""
    if not sys.platform.startswith("linux"):
        return None
    return reaper.start(cluster_pids(ray))


def stop_reaper(proc: subprocess.Popen[str] | None) -> None:
    """Close the reaper's pipe: it ends what is left of the cluster and exits."""
    if proc is None:
        return
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
