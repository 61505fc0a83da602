"""Network namespaces standing in for boxes on one LAN: `Lan` is a bridge in the test's own
namespace (where the phones are) and one veth into each box's namespace.

Each box is an `ip netns` with its own loopback, ports and an ``eth0`` on the LAN, so its
PostgreSQL, keepalived and engine bind what they would on a real box (5432, 5060) and keepalived
moves a real address between two real interfaces. `Netns.entered()` runs the calling thread inside
the namespace (setns(2) is per thread), so the test reaches a box's loopback-only control API and
database without a subprocess. `Netns.kill_all()` is a power cut: every process in the namespace
gets SIGKILL. Names and the /24 are random, so xdist workers never meet.
"""
from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import random
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.peers.polling import wait_until

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str) -> str:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


class Netns:
    """One named network namespace (a box)."""

    def __init__(self, name: str) -> None:
        self.name = name
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")

    def argv(self, argv: list[str]) -> list[str]:
        """`argv` run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def addresses(self, dev: str = "eth0") -> list[str]:
        """The IPv4 addresses on `dev`, without prefix."""
        out = _ip("-n", self.name, "-o", "-4", "addr", "show", "dev", dev)
        return [line.split()[3].split("/")[0] for line in out.splitlines()]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _ip("netns", "pids", self.name).split()]
        except RuntimeError:
            return []

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the calling thread in this namespace (sockets it opens meanwhile stay there)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(there)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(there)
            os.close(home)

    def kill_all(self) -> None:
        """SIGKILL every process in the namespace, as a power cut would; wait until none is left."""
        def gone() -> bool:
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not pids
        wait_until(gone, timeout=15.0, what=f"every process of {self.name} killed")

    def delete(self) -> None:
        self.kill_all()
        with contextlib.suppress(RuntimeError):
            _ip("netns", "del", self.name)


class Lan:
    """A bridge in this namespace, its /24, and boxes (namespaces) plugged into it as eth0."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.tag = tag
        self.bridge = f"pbr{tag}"
        self.network = self._free_network()
        hosts = list(self.network.hosts())
        self.gateway = hosts[0]  # the phones' address, in the test's own namespace
        self._next = 10
        self.boxes: list[Netns] = []
        self._veths: list[str] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    @staticmethod
    def _free_network() -> ipaddress.IPv4Network:
        used = _ip("-4", "route", "show", "table", "all")
        for _ in range(100):
            net = ipaddress.IPv4Network(f"10.{random.randrange(200, 250)}.{random.randrange(256)}.0/24")
            if str(net.network_address)[:-2] not in used:
                return net
        raise RuntimeError("no free 10.x.y.0/24 for the test LAN")

    def host(self, n: int) -> ipaddress.IPv4Address:
        return self.network.network_address + n

    def add_box(self, name: str, address: ipaddress.IPv4Address) -> Netns:
        """A namespace `<name><tag>` with eth0 at `address` on the bridge."""
        ns = Netns(f"{name}{self.tag}")
        self.boxes.append(ns)
        veth = f"pv{name[:3]}{self.tag}"
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
        self._veths.append(veth)
        _ip("link", "set", veth, "master", self.bridge, "up")
        _ip("-n", ns.name, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        _ip("-n", ns.name, "link", "set", "eth0", "up")
        return ns

    def close(self) -> None:
        """Kill every process of every box, delete the namespaces, the veths and the bridge."""
        for ns in self.boxes:
            ns.delete()
        for veth in self._veths:
            with contextlib.suppress(RuntimeError):
                _ip("link", "del", veth)  # usually gone with its namespace
        with contextlib.suppress(RuntimeError):
            _ip("link", "del", self.bridge)


def write_wrapper(path: Path, ns: Netns, program: str) -> Path:
    """An executable that runs `program` inside `ns` with the same arguments."""
    path.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {program} "$@"\n')
    path.chmod(0o755)
    return path
