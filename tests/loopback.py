"""A free port on loopback, for the servers that the tests start (JupyterLab, Dask, PostgreSQL)."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the server is started on it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
