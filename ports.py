"""Ports on this machine: a free one, whether one is free, and who holds one that is not, so a stack that
cannot start says which port, what it was for, who has it and how to move it. Standard library only."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .engine.errors import TaskSchedulerError

LISTEN = "0A"  # the state column of /proc/net/tcp for a listening socket


class PortTaken(TaskSchedulerError):
    """A port this stack needs is in use."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, ip: str = "127.0.0.1") -> bool:
    try:
        bound(port, ip).close()
    except OSError:
        return False
    return True


def bound(port: int, ip: str = "127.0.0.1") -> socket.socket:
    """A socket bound to `ip`:`port`, as a server binds it (SO_REUSEADDR: connections in TIME_WAIT after
    a kill do not count); OSError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.close()
        raise
    return sock


def taken(port: int, ip: str, what: str, move: str) -> PortTaken:
    """The error for `port`, needed by `what` and moved by `move` (a flag or a variable)."""
    holder = listener(port)
    by = f" by {holder}" if holder else ""
    return PortTaken(
        f"port {port} on {ip} ({what}) is already in use{by}: stop that, or move {what} ({move})"
    )


def listener(port: int) -> str | None:
    """Who listens on TCP `port` here, e.g. 'pid 4242 (python3 -m http.server 8000)', as far as this user
    may see (Linux's /proc); None when unknown."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid in _pids():
        if _holds(pid, inodes):
            return f"pid {pid} ({_cmdline(pid)})"
    return "another user's process"


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _holds(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # gone, or not ours to read
        return False
    return any(_link(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds)


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return None


def _cmdline(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(word.decode(errors="replace") for word in words if word)
    return text if len(text) <= 80 else text[:77] + "..."
