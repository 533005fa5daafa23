"""A throw-away PostgreSQL server for gradebook tests: ``initdb`` in a temporary folder, on loopback.

PostgreSQL refuses to run as root, so as root the server's files belong to ``nobody`` and its commands
run through ``runuser``. The binaries are found on PATH, else in Debian's /usr/lib/postgresql/<N>/bin.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loopback import free_port


def bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or None where PostgreSQL is not installed."""
    if shutil.which("initdb") and shutil.which("pg_ctl"):
        return Path(shutil.which("initdb")).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


@contextmanager
def postgres_server(database: str = "gradebook") -> Iterator[str]:
    """Start a server with one empty database; yield its SQLAlchemy URL; stop it and delete everything."""
    import psycopg

    binaries = bindir()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (initdb, pg_ctl): apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="gradebook-postgres-"))
    prefix = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    data, port = folder / "data", free_port()

    def pg(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    try:
        pg(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "start",
           "-o", f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off")
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as db:
                db.execute(f'CREATE DATABASE "{database}"')
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{database}"
        finally:
            pg(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
