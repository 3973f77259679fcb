"""Services the project starts itself on loopback for its tests and for trying it out (``make kafka``):
never needed by a pipeline run, which only connects to what its config names."""
from __future__ import annotations

import socket

#: the loopback address every service here listens on
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]
