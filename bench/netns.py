"""Hosts as Linux network namespaces of this machine: one private network on a bridge, point-to-point links, cuts.

bench/cluster.py's rehearsal builds its hosts here. Each host is a network namespace with an address of its own;
the hosts on the private network hang off one bridge in this machine's own namespace, which gets the network's
first address (this script's vantage: the participants' side of the proxy, and the operator's). A host can also
be linked to exactly one other host and nothing else (a worker that reaches only the proxy): two namespaces joined
by a veth pair on a /30 of their own, routing nowhere but to the peer (its link address and its own). `cut` takes
such a link down at the far end, so the packets of the host behind it go nowhere (a partition: connections hang,
nothing is refused), and `restore` brings it back.

Nothing outlives the run: `close()` kills every process left in each namespace, deletes the namespaces (which
deletes their veths) and the bridge, and is registered with atexit; names carry this process's id, and a later
run deletes what a run that was killed outright left behind (its process id no longer alive). Needs root and
iproute2 (`ip netns`); `unavailable()` says why namespaces cannot be made here, or None.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

PREFIX = "pa"  # namespaces pa<pid>-<host>, links pa<pid>l<n>, the bridge pa<pid>br
# Addresses from the range set aside for benchmarks (RFC 2544): never anyone's network, here or outside.
PRIVATE_RANGE = ipaddress.IPv4Network("198.18.0.0/16")
LINK_RANGE = ipaddress.IPv4Network("198.19.0.0/16")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why network namespaces cannot be made on this machine (not root, no iproute2, refused), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    try:
        probe = f"{PREFIX}{os.getpid()}-probe"
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns add failed: {made.stderr.strip()}"
        bridge = ip("-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1", check=False)
        ip("netns", "del", probe, check=False)
        if bridge.returncode != 0:
            return f"veth pairs cannot be made: {bridge.stderr.strip()}"
    except FileNotFoundError:
        return "iproute2's ip command is not installed"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespace_pids(namespace: str) -> list[int]:
    listed = ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in listed.stdout.split()]


def kill_namespace_processes(namespace: str, sig: int = signal.SIGKILL, timeout_s: float = 10) -> int:
    """Send `sig` to every process in the namespace; with SIGKILL, wait until none is left. How many were sent it."""
    pids = namespace_pids(namespace)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + timeout_s
        while namespace_pids(namespace) and time.monotonic() < deadline:
            time.sleep(0.02)
    return len(pids)


def remove_leftovers() -> list[str]:
    """Delete namespaces, bridges and veths that an earlier run left (its process is gone); what was deleted."""
    removed = []
    listed = ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({PREFIX}(\d+)-\S+)", listed, flags=re.MULTILINE):
        namespace, pid = name
        if not _alive(int(pid)):
            kill_namespace_processes(namespace)
            ip("netns", "del", namespace, check=False)
            removed.append(namespace)
    links = ip("-o", "link", "show", check=False).stdout
    for link, pid in re.findall(rf"^\d+: ({PREFIX}(\d+)(?:br|h\d+))[:@]", links, flags=re.MULTILINE):
        if not _alive(int(pid)):
            ip("link", "del", link, check=False)
            removed.append(link)
    return removed


@dataclass
class Host:
    """One namespace: its name, its address on the private network (or on its only link), its links' far ends."""

    name: str
    namespace: str
    address: str
    links: dict[str, str] = field(default_factory=dict)  # peer host name -> the peer's address on the link

    def command(self, *argv: str) -> list[str]:
        """argv run inside this host's namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def pids(self) -> list[int]:
        return namespace_pids(self.namespace)


class Network:
    """A private network of namespaces on one bridge, plus point-to-point links; everything removed by close()."""

    def __init__(self) -> None:
        remove_leftovers()
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}br"
        self.hosts: dict[str, Host] = {}
        self._links = 0
        self._link_devices: dict[str, tuple[Host, str]] = {}  # linked host -> (its peer, the link's device there)
        self._closed = False
        self.subnet = self._free_subnet(PRIVATE_RANGE)
        self.link_subnet = self._free_subnet(LINK_RANGE)
        atexit.register(self.close)
        addresses = list(self.subnet.hosts())
        self.gateway = str(addresses[0])
        self._next_address = 1
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    @staticmethod
    def _free_subnet(within: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        """A /24 of `within` that no interface of this machine has an address in (another run may hold one)."""
        taken = ip("-o", "-4", "addr", "show", check=False).stdout
        subnets = list(within.subnets(new_prefix=24))
        # Start from one of our own (by process id), so that two runs starting at once rarely pick the same one.
        start = os.getpid() % len(subnets)
        for subnet in subnets[start:] + subnets[:start]:
            prefix = str(subnet.network_address).rsplit(".", 1)[0] + "."
            if f" {prefix}" not in taken:
                return subnet
        raise RuntimeError(f"every /24 of {within} is in use on this machine")

    def _namespace(self, name: str) -> str:
        namespace = f"{self.tag}-{name}"
        ip("netns", "add", namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def add_host(self, name: str) -> Host:
        """A host on the private network, with the next free address."""
        namespace = self._namespace(name)
        self._next_address += 1
        address = str(list(self.subnet.hosts())[self._next_address - 1])
        outside, inside = f"{self.tag}h{len(self.hosts)}", "eth0"
        ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
        ip("link", "set", outside, "master", self.bridge, "up")
        ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", inside)
        ip("-n", namespace, "link", "set", inside, "up")
        host = self.hosts[name] = Host(name, namespace, address)
        return host

    def add_linked_host(self, name: str, peer: Host) -> Host:
        """A host whose only network is a link to `peer` (no bridge, no route beyond the peer)."""
        namespace = self._namespace(name)
        block = list(self.link_subnet.subnets(new_prefix=30))[self._links]
        self._links += 1
        peer_address, own_address = (str(a) for a in block.hosts())
        far, near = f"{self.tag}l{self._links}", "eth0"
        ip("link", "add", far, "netns", peer.namespace, "type", "veth", "peer", "name", near, "netns", namespace)
        ip("-n", peer.namespace, "addr", "add", f"{peer_address}/30", "dev", far)
        ip("-n", namespace, "addr", "add", f"{own_address}/30", "dev", near)
        ip("-n", peer.namespace, "link", "set", far, "up")
        ip("-n", namespace, "link", "set", near, "up")
        # The peer's own address is reached over the link too (a host route, nothing beyond it), so the linked
        # host uses the address everyone else uses for the peer: the public name a worker is configured with.
        ip("-n", namespace, "route", "add", f"{peer.address}/32", "via", peer_address)
        host = self.hosts[name] = Host(name, namespace, own_address, links={peer.name: peer_address})
        peer.links[name] = own_address
        self._link_devices[name] = (peer, far)
        return host

    def cut(self, host: Host) -> None:
        """Partition a linked host: its link goes down at the far end; what it sends is lost, nothing is refused."""
        peer, device = self._link_devices[host.name]
        ip("-n", peer.namespace, "link", "set", device, "down")

    def restore(self, host: Host) -> None:
        peer, device = self._link_devices[host.name]
        ip("-n", peer.namespace, "link", "set", device, "up")

    def close(self, first: Sequence[str] = ()) -> None:
        """Kill every process in every namespace (the hosts named in `first` before the others), delete the
        namespaces, their links and the bridge.

        Clients first, servers last: a killed client's connections then close with their server still there to
        answer. A socket left retransmitting to a peer that is gone keeps its namespace alive in the kernel (for
        minutes, unnamed and without processes); its veth is deleted here all the same.
        """
        if self._closed:
            return
        self._closed = True
        order = [self.hosts[name] for name in first if name in self.hosts]
        for host in order + [h for h in self.hosts.values() if h not in order]:
            kill_namespace_processes(host.namespace)
        for host in self.hosts.values():
            ip("netns", "del", host.namespace, check=False)
        for index in range(len(self.hosts)):
            ip("link", "del", f"{self.tag}h{index}", check=False)
        ip("link", "del", self.bridge, check=False)
        # The kernel removes a deleted namespace's veths in the background: wait until none is listed.
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def leftovers(self) -> list[str]:
        """Namespaces or links of this network that still exist (empty after close())."""
        names = ip("netns", "list", check=False).stdout
        links = ip("-o", "link", "show", check=False).stdout
        return re.findall(rf"^{self.tag}-\S+", names, flags=re.MULTILINE) + re.findall(
            rf"^\d+: ({self.tag}\w*)[:@]", links, flags=re.MULTILINE
        )
