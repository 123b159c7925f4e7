"""A private, throwaway PostgreSQL server: for tests, benchmarks and trying KME replicas.

:class:`TemporaryPostgres` runs ``initdb`` on a fresh temporary directory and starts
``postgres`` on it, listening on a unix socket in that directory only (no TCP port, so
nothing else on the machine can reach it and no port can clash), and removes everything on
:meth:`TemporaryPostgres.stop`. It needs the server binaries (Debian: ``postgresql-15``,
found in ``/usr/lib/postgresql/*/bin``, or set ``QKD_PG_BINDIR``).

PostgreSQL refuses to run as root. Run as root, the server runs as an unprivileged user
(``postgres``, which Debian's package creates), through ``runuser``; the temporary
directory is then owned by that user. Example::

    with TemporaryPostgres() as server:
        url = server.create_database("kme")
        store = open_store(url)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from qkd.delivery.store import KeyStoreError

__all__ = ["TemporaryPostgres", "find_bindir"]

_SUPERUSER = "qkd"
_PORT = 5432  # only names the socket file: the server listens on no TCP port


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None when there is none."""
    candidates: list[Path] = []
    if os.environ.get("QKD_PG_BINDIR"):
        candidates.append(Path(os.environ["QKD_PG_BINDIR"]))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()),
            key=lambda p: (p.name != "15", -int(p.name)),
        )
        candidates += [p / "bin" for p in versions]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


class TemporaryPostgres:
    """One PostgreSQL server in a temporary directory (see the module docstring)."""

    def __init__(self, *, bindir: Path | None = None, user: str = "postgres") -> None:
        found = bindir or find_bindir()
        if found is None:
            raise KeyStoreError(
                "no PostgreSQL server binaries (initdb, postgres) found: install Debian's"
                " postgresql-15 or set QKD_PG_BINDIR"
            )
        self.bindir = found
        self._prefix: list[str] = []
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(user)
            except KeyError as exc:
                raise KeyStoreError(
                    f"PostgreSQL will not run as root and there is no user {user!r} to run it"
                    " as: install Debian's postgresql-15 (it creates one)"
                ) from exc
            self._prefix = ["runuser", "-u", user, "--"]
        self.directory: Path | None = None

    @property
    def socket_dir(self) -> Path:
        if self.directory is None:
            raise KeyStoreError("the PostgreSQL server is not running")
        return self.directory

    def url(self, dbname: str = "postgres") -> str:
        """A libpq URL of database ``dbname`` over the private socket."""
        return f"postgresql://{_SUPERUSER}@/{dbname}?host={self.socket_dir}&port={_PORT}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(  # noqa: S603 - fixed binaries, no shell
            [*self._prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise KeyStoreError(
                f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()[-800:]}"
            )

    def start(self) -> TemporaryPostgres:
        # Run as another user, the server must reach its directory: /tmp is open to every
        # user, where $TMPDIR may not be.
        parent = "/tmp" if self._owner is not None else None  # noqa: S108
        directory = Path(tempfile.mkdtemp(prefix="qkd-pg-", dir=parent))
        self.directory = directory
        try:
            if self._owner is not None:
                os.chown(directory, self._owner.pw_uid, self._owner.pw_gid)
            data = directory / "data"
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                _SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            )
            options = f"-k {directory} -p {_PORT} -c listen_addresses='' -c max_connections=200"
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(directory / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            self.directory = None
            raise
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def log(self) -> str:
        """The server's log so far (for a failing test's report)."""
        try:
            return (self.socket_dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server at once and remove its directory: nothing in it is kept."""
        if self.directory is None:
            return
        try:
            self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            )
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
