"""Cluster mode: several Zope instances serving one Plone site from RelStorage on PostgreSQL.

    .venv/bin/python scripts/cluster.py start [--instances 2] [--port 8080]     (make start-cluster)
    .venv/bin/python scripts/cluster.py instance ZOPE_CONF [--port P] [--create-site] [--demo-case]

``start`` runs, each as its own OS process and in this order:

* a PostgreSQL server of our own from Debian's binaries (``/usr/lib/postgresql/*/bin``): its data
  directory is ``var/cluster/pg``, it listens on 127.0.0.1 only (``ESIGN_PG_PORT``, default 15432)
  with ``trust`` authentication for the loopback, and holds the database ``esign``. PostgreSQL
  refuses to run as root: run as root, we run it as the ``postgres`` user (``nobody`` if there
  is none) and give that user the data directory;
* the project's BankID RP API test server, SITHS OIDC test IdP and mail catcher, on the ports
  ``make start`` uses (``ESIGN_BANKID_API_PORT`` ... as in ``scripts/servers.sh``);
* Zope instance 1 on port 8080, which creates the Plone site with esign.plone, the officer and
  the demo case (only what is missing, as ``scripts/create_site.py`` does), then instance 2 on
  8081 (and so on). Each instance is ``cluster.py instance``: Zope started from its own
  ``zope.conf`` with a ``<relstorage>`` section and served by waitress.

It prints the addresses and runs until Ctrl-C (or until one of them stops), then stops them
all: the instances first, PostgreSQL last. Every child also gets a parent-death signal, so
none outlives this process. Logs: ``var/cluster/log/``.

Storage choices: history-free RelStorage (``keep-history false``: no undo, no packing of old
revisions; the audit trail of a case is its own hash chain, not the ZODB history), and
``shared-blob-dir false``: the blobs (the PDFs) are stored in PostgreSQL with the objects that
name them, in the same transaction, and each instance keeps only a cache of them
(``blob-cache-size``). Nothing but the database is shared for the documents, so instances can
run on different hosts; a backup of the database is a backup of every document.

What the instances must share besides the database (README, "Deployment"): the CA and TSA
key files (``ESIGN_PKI_DIR``) and the mail queue (``ESIGN_MAIL_QUEUE``; each instance runs a
queue processor on it, and a mail is taken by one of them only). Signer sessions, login flows
and BankID orders are in the ZODB, so a BankID order started through one instance can be
collected through another.

The :class:`Cluster` class does the same for tests (``tests/cluster/``): everything under a
temporary folder, on free ports, with PostgreSQL's ``fsync`` off.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
LOOPBACK = "127.0.0.1"
#: The database and its (superuser) role; PostgreSQL trusts the loopback, so no password.
DATABASE = "esign"
DB_USER = "esign"
SITE_ID = "Plone"
#: What an instance prints on stdout when it serves; the orchestrator waits for it.
READY = "esign-cluster: serving "
#: Zope's default number of ConflictError retries (zope.conf ``max-conflict-retries``).
CONFLICT_RETRIES = 3

__all__ = [
    "Cluster",
    "ClusterError",
    "ClusterSettings",
    "PostgreSQL",
    "free_port",
    "main",
    "postgres_bindir",
    "zope_conf_text",
]


class ClusterError(RuntimeError):
    """Something the cluster needs is missing or did not start; the message says what to do."""


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback that is free now (the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def _pdeathsig(signame: str, *, as_user: str | None = None) -> list[str]:
    """A ``setpriv`` prefix: the child gets ``signame`` when we die, and runs as ``as_user``.

    util-linux's setpriv is on every Debian; without it the child runs as it is (and must then
    be run as that user already).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if as_user is not None:
            raise ClusterError(f"setpriv (util-linux) is needed to run PostgreSQL as {as_user!r}")
        return []
    prefix = [setpriv, "--pdeathsig", signame]
    if as_user is not None:
        prefix += ["--reuid", as_user, "--regid", str(pwd.getpwnam(as_user).pw_gid), "--clear-groups"]
    return [*prefix, "--"]


@dataclass
class Child:
    """A process we started: its own session (Ctrl-C reaches only us), output in ``log``."""

    name: str
    popen: subprocess.Popen
    log: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"cluster: {self.name} did not stop in {timeout:.0f} s; killing it", file=sys.stderr)
            self.popen.kill()
            self.popen.wait(10)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    as_user: str | None = None,
    cwd: Path | None = None,
    base_env: dict[str, str] | None = None,
) -> Child:
    """Start ``argv`` in a session of its own, stdout and stderr to ``log`` (the old one kept as .1).

    The child's environment is ``base_env`` (default: ours) with ``env`` on top.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists():
        log.replace(log.with_name(log.name + ".1"))
    signame = signal.Signals(stop_signal).name.removeprefix("SIG")
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [*_pdeathsig(signame, as_user=as_user), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**(os.environ if base_env is None else base_env), "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Child(name, popen, log, stop_signal)


def wait_for(child: Child, predicate, *, timeout: float, what: str) -> None:
    """Poll ``predicate()`` until true; fail with the child's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if not child.alive():
            raise ClusterError(
                f"{child.name} exited (code {child.popen.returncode}) before {what}; "
                f"{child.log} ends with:\n{child.tail()}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{child.name}: no {what} after {timeout:.0f} s; {child.log} ends with:\n{child.tail()}"
            )
        time.sleep(0.1)


# -- PostgreSQL ----------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$ESIGN_PG_BINDIR``, Debian's newest version, or PATH."""
    env = os.environ.get("ESIGN_PG_BINDIR")
    candidates = [Path(env)] if env else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise ClusterError(
        "PostgreSQL's initdb and postgres were not found (Debian: /usr/lib/postgresql/*/bin). "
        "Install them with 'make system-deps' (package postgresql) or set ESIGN_PG_BINDIR."
    )


def _server_user() -> str | None:
    """The user PostgreSQL runs as: ourselves, or when we are root an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ClusterError(
        "Running as root, but there is neither a 'postgres' nor a 'nobody' user to run PostgreSQL."
    )


class PostgreSQL:
    """A PostgreSQL server of our own: its data directory, 127.0.0.1 and a port, no unix socket.

    :param data_dir: created by ``initdb`` on first start (superuser ``esign``, ``trust`` on
        the loopback); kept afterwards.
    :param port: the TCP port; 0 picks a free one.
    :param durable: ``False`` turns ``fsync`` and ``synchronous_commit`` off (tests: faster,
        and a crashed test database is thrown away anyway).
    """

    def __init__(self, data_dir: Path, *, port: int = 0, log: Path, durable: bool = True) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.log = log
        self.durable = durable
        self.user = _server_user()
        self.child: Child | None = None

    @property
    def dsn(self) -> str:
        return f"host='{LOOPBACK}' port='{self.port}' dbname='{DATABASE}' user='{DB_USER}'"

    def _give_to_server_user(self) -> None:
        if self.user is None:
            return
        entry = pwd.getpwnam(self.user)
        for path in [self.data_dir, *self.data_dir.rglob("*")] if self.data_dir.exists() else []:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
        # Every folder above the data directory must let that user pass.
        for parent in self.data_dir.parents:
            if not os.stat(parent).st_mode & 0o001:
                raise ClusterError(
                    f"PostgreSQL runs as {self.user!r}, who cannot enter {parent} (mode "
                    f"{oct(os.stat(parent).st_mode & 0o777)}); put the data directory elsewhere."
                )

    def initdb(self) -> bool:
        """Create the data directory unless it holds a cluster. Returns True when it made one."""
        if (self.data_dir / "PG_VERSION").exists():
            self._give_to_server_user()
            return False
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._give_to_server_user()
        bindir = postgres_bindir()
        command = [
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            DB_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        if not self.durable:
            command.append("--no-sync")
        done = subprocess.run(
            [*_pdeathsig("TERM", as_user=self.user), *command],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"},
            cwd="/",
        )
        if done.returncode != 0:
            raise ClusterError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return True

    def start(self, timeout: float = 60.0) -> PostgreSQL:
        self.initdb()
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": "",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "logging_collector": "off",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        argv = [str(postgres_bindir() / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected, data is flushed.
        self.child = spawn(
            "postgresql",
            argv,
            log=self.log,
            stop_signal=signal.SIGINT,
            as_user=self.user,
            cwd=Path("/"),
            env={"LANG": "C", "LC_ALL": "C"},
        )
        wait_for(self.child, self._accepts, timeout=timeout, what="connections accepted")
        self._ensure_database()
        return self

    def _connect(self, dbname: str):
        import psycopg2

        return psycopg2.connect(host=LOOPBACK, port=self.port, dbname=dbname, user=DB_USER, connect_timeout=3)

    def _accepts(self) -> bool:
        try:
            self._connect("postgres").close()
        except Exception:
            return False
        return True

    def _ensure_database(self) -> None:
        connection = self._connect("postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            connection.close()

    def stop(self) -> None:
        """Fast shutdown: the clients are disconnected, the data flushed; :meth:`start` serves it again."""
        if self.child is not None:
            self.child.stop(timeout=60)

    def restart(self, timeout: float = 60.0) -> PostgreSQL:
        """Fast shutdown, then the same data on the same port again, as ``systemctl restart`` does:
        every client's connections are cut (the tests' fault of a database that went away)."""
        self.stop()
        return self.start(timeout)


# -- Zope instances ---------------------------------------------------------------------------


def zope_conf_text(
    *,
    home: Path,
    dsn: str,
    blob_cache: Path,
    blob_cache_size: str = "512mb",
    max_conflict_retries: int | None = None,
) -> str:
    """The zope.conf of one instance: the shared RelStorage database, the instance's own blob cache.

    :param max_conflict_retries: how often Zope retries a request after a ConflictError
        (``None``: Zope's default, 3; Zope reads 0 as the default too).
    """
    retries = "" if max_conflict_retries is None else f"max-conflict-retries {max_conflict_retries}\n"
    return f"""\
%define INSTANCE {home}
instancehome $INSTANCE
{retries}%import relstorage
<zodb_db main>
  mount-point /
  cache-size 30000
  <relstorage>
    name esign
    # History-free: no undo and no packing of old revisions.
    keep-history false
    # Blobs live in PostgreSQL; this instance keeps a cache of them.
    shared-blob-dir false
    blob-dir {blob_cache}
    blob-cache-size {blob_cache_size}
    <postgresql>
      dsn {dsn}
    </postgresql>
  </relstorage>
</zodb_db>
"""


def _log_retries() -> None:
    """Log each request the publisher retries after a ConflictError, and each one it gives up on."""
    import logging

    from ZODB.POSException import ConflictError
    from zope.component import provideHandler
    from ZPublisher.interfaces import IPubFailure

    log = logging.getLogger("esign.cluster")

    def failed(event) -> None:
        exc = event.exc_info[1]
        if not isinstance(exc, ConflictError):
            return
        path = event.request.get("PATH_INFO", "")
        attempt = getattr(event.request, "retry_count", 0) + 1
        if event.retry:
            log.info("conflict-retry attempt %s of %s: %s", attempt, path, type(exc).__name__)
        else:
            log.warning("conflict-gave-up after attempt %s of %s: %s", attempt, path, exc)

    provideHandler(failed, (IPubFailure,))


def run_instance(args: argparse.Namespace) -> int:
    """``cluster.py instance``: one Zope process on the shared database, served by waitress."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s", stream=sys.stderr
    )
    import waitress
    from ZPublisher.WSGIPublisher import publish_module

    sys.path.insert(0, str(SCRIPTS))
    import esign_site

    from esign.plone.database import database_guard

    # Listen first: the site's addresses (the CA's OCSP/CRL URLs, mail links) name the port.
    # database_guard: while PostgreSQL is away, a Swedish 503 instead of waitress's own 500.
    server = waitress.create_server(
        database_guard(publish_module),
        host=args.host,
        port=args.port,
        threads=args.threads,
        ident="esign-cluster",
    )
    port = int(server.effective_port)
    public_host = args.public_host or args.host
    app = esign_site.open_zope_app(args.zope_conf)
    _log_retries()
    if args.create_site:
        _prepare_site(app, esign_site, host=public_host, port=port, demo_case=args.demo_case)
    import transaction
    from AccessControl.SecurityManagement import noSecurityManager
    from zope.globalrequest import clearRequest

    transaction.abort()
    app._p_jar.close()
    noSecurityManager()
    clearRequest()

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{READY}http://{public_host}:{port}/{SITE_ID}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        _shut_down(server)
    return 0


def _prepare_site(app, esign_site, *, host: str, port: int, demo_case: bool) -> None:
    """What ``create_site.py`` does, only what is missing: site, esign.plone, officer (demo case)."""
    import transaction
    from plone import api

    app.REQUEST.setServerURL(protocol="http", hostname=host, port=port)
    site, created = esign_site.ensure_site(app)
    print(f"Site /{site.getId()}: {'created' if created else 'exists'}", flush=True)
    esign_site.ensure_mail_sender(site)
    esign_site.ensure_language(site)
    if esign_site.ensure_installed(site):
        print("esign.plone: installed", flush=True)
    esign_site.ensure_upgraded(site)
    esign_site.ensure_registry_records(site)
    officer = esign_site.ensure_officer()
    print(f"Officer {officer.getId()!r}: roles {sorted(officer.getRoles())}", flush=True)
    if demo_case:
        case, made = esign_site.ensure_demo_case(site)
        print(f"Demo case {case.absolute_url_path()}: {'created' if made else 'exists'}", flush=True)
    mailhost = api.portal.get_tool("MailHost")
    print(f"Mail: to {mailhost.smtp_host}:{mailhost.smtp_port}, queue {mailhost.smtp_queue_directory}")
    transaction.commit()


def _shut_down(server) -> None:
    from Products.MailHost.MailHost import queue_threads

    with contextlib.suppress(Exception):
        server.close()
    for thread in list(queue_threads.values()):
        with contextlib.suppress(Exception):
            thread.stop()
    import Zope2

    db = getattr(Zope2, "DB", None)
    if db is not None:
        with contextlib.suppress(Exception):
            db.close()


# -- the cluster -----------------------------------------------------------------------------------


@dataclass
class ClusterSettings:
    """Where a cluster lives and which ports it takes (0: a free one)."""

    base: Path
    instances: int = 2
    #: Port of each instance, in order; missing ones are free ports.
    ports: Sequence[int] = ()
    #: The host name in the site's addresses (links in mails, the CA's URLs).
    public_host: str = LOOPBACK
    pg_port: int = 0
    bankid_api_port: int = 0
    bankid_page_port: int = 0
    smtp_port: int = 0
    mail_page_port: int = 0
    #: None: no SITHS test IdP.
    oidc_port: int | None = None
    durable: bool = True
    threads: int = 4
    demo_case: bool = False
    officer_password: str = "officer"
    admin_password: str = "admin"
    startup_timeout: float = 300.0
    #: Variables for the instances, on top of what the cluster sets.
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Do not hand this process's ``ESIGN_*`` variables (and ``MAILHOST_QUEUE_ONLY``) to the
    #: instances: a test session sets its own for its in-process site.
    isolated: bool = False


class Cluster:
    """PostgreSQL, the test servers and N Zope instances on one RelStorage database.

    Example (what ``tests/cluster/conftest.py`` does)::

        cluster = Cluster(ClusterSettings(base=tmp, durable=False)).start()
        try:
            print(cluster.urls)          # ["http://127.0.0.1:41001/Plone", "http://127.0.0.1:41002/Plone"]
        finally:
            cluster.stop()
    """

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.base = Path(settings.base).absolute()
        self.log_dir = self.base / "log"
        self.pki_dir = self.base / "esign-pki"
        self.mail_queue = self.base / "mail-queue"
        self.mail_dir = self.base / "mail"
        self.bankid_dir = self.base / "bankid-test"
        self.oidc_dir = self.base / "oidc-test"
        self.postgres = PostgreSQL(
            self.base / "pg",
            port=settings.pg_port,
            log=self.log_dir / "postgresql.log",
            durable=settings.durable,
        )
        self.servers: dict[str, Child] = {}
        self.instances: list[Child] = []
        self.urls: list[str] = []
        self.environment: dict[str, str] = {}
        self.bankid_page_url = ""
        self.mail_page_url = ""
        self.oidc_issuer = ""
        self.timings: dict[str, float] = {}

    # -- start -----------------------------------------------------------------------------

    def start(self) -> Cluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 1)

    def _start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self.postgres.user is not None:
            # PostgreSQL's user must pass through (not read) our folder to reach its data (pg/).
            os.chmod(self.base, os.stat(self.base).st_mode | 0o011)  # noqa: S103 - search, not read
        for folder in (self.log_dir, self.mail_dir, self.mail_queue):
            folder.mkdir(parents=True, exist_ok=True)
        for folder in (self.pki_dir, self.bankid_dir, self.oidc_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.postgres.start()
        self._timed("postgresql", t0)
        t0 = time.monotonic()
        self._start_servers()
        self._timed("servers", t0)
        ports = list(self.settings.ports)[: self.settings.instances]
        ports += [0] * (self.settings.instances - len(ports))
        for number, port in enumerate(ports, start=1):
            # One after the other: Zope commits at every start (the initial user), and two
            # first starts on an empty database would both try to create the application root.
            t0 = time.monotonic()
            self._start_instance(number, port, create_site=number == 1)
            self._timed(f"instance {number}", t0)

    def _bin(self, name: str) -> str:
        path = Path(sys.executable).parent / name
        if not path.exists():
            raise ClusterError(f"{path} is missing; run 'make venv'")
        return str(path)

    def _start_servers(self) -> None:
        s = self.settings
        api_port, page_port = s.bankid_api_port or free_port(), s.bankid_page_port or free_port()
        smtp_port, mail_page_port = s.smtp_port or free_port(), s.mail_page_port or free_port()
        self.servers["bankid"] = spawn(
            "bankid",
            [
                self._bin("esign-bankid-test-server"),
                "--dir",
                str(self.bankid_dir),
                "--api-port",
                str(api_port),
                "--page-port",
                str(page_port),
            ],
            log=self.log_dir / "bankid.log",
        )
        self.servers["mail"] = spawn(
            "mail",
            [
                self._bin("esign-mail-catcher"),
                "--dir",
                str(self.mail_dir),
                "--smtp-port",
                str(smtp_port),
                "--http-port",
                str(mail_page_port),
            ],
            log=self.log_dir / "mail.log",
        )
        if s.oidc_port is not None:
            oidc_port = s.oidc_port or free_port()
            redirects = []
            for port in s.ports:
                redirects += ["--redirect-uri", f"http://localhost:{port}/*"]
                redirects += ["--redirect-uri", f"http://{LOOPBACK}:{port}/*"]
            self.servers["oidc"] = spawn(
                "oidc",
                [
                    self._bin("esign-oidc-test-server"),
                    "--port",
                    str(oidc_port),
                    "--client-id",
                    "esign-plone",
                    "--client-secret",
                    "esign-plone-secret",
                    "--key-dir",
                    str(self.oidc_dir),
                    *redirects,
                ],
                log=self.log_dir / "oidc.log",
            )
        # The servers print the ESIGN_* variables esign.plone needs (as scripts/servers.sh reads them).
        wanted = {
            "bankid": ("ESIGN_BANKID_URL", "ESIGN_BANKID_CERT", "ESIGN_BANKID_KEY", "ESIGN_BANKID_CA"),
            "oidc": ("ESIGN_OIDC_ISSUER", "ESIGN_OIDC_CLIENT_ID", "ESIGN_OIDC_CLIENT_SECRET"),
        }
        for name, child in self.servers.items():
            names = wanted.get(name, ())
            wait_for(
                child,
                lambda c=child, n=names: (
                    all(f"{v}=" in c.log_text() for v in n)
                    and (c.name != "mail" or "E-post (lokal):" in c.log_text())
                ),
                timeout=60,
                what="its start message",
            )
            for line in child.log_text().splitlines():
                match = re.match(r"^\s*(?:export\s+)?(ESIGN_[A-Z_]+)=(.+)$", line)
                if match and match.group(1) in names:
                    self.environment[match.group(1)] = match.group(2).strip()
        self.environment["ESIGN_SMTP_HOST"] = LOOPBACK
        self.environment["ESIGN_SMTP_PORT"] = str(smtp_port)
        self.bankid_page_url = f"http://{LOOPBACK}:{page_port}/"
        self.mail_page_url = f"http://{LOOPBACK}:{mail_page_port}/"
        self.oidc_issuer = self.environment.get("ESIGN_OIDC_ISSUER", "")

    def instance_environment(self) -> dict[str, str]:
        env = {
            **self.environment,
            "ESIGN_PKI_DIR": str(self.pki_dir),
            "ESIGN_MAIL_QUEUE": str(self.mail_queue),
            "ESIGN_OFFICER_PASSWORD": self.settings.officer_password,
            **self.settings.extra_env,
        }
        # Loopback servers only: never through a proxy from the environment.
        no_proxy = ",".join(filter(None, (os.environ.get("no_proxy"), LOOPBACK, "localhost")))
        env["no_proxy"] = env["NO_PROXY"] = no_proxy
        return env

    def add_instance(
        self, *, port: int = 0, max_conflict_retries: int | None = None, env: dict[str, str] | None = None
    ) -> str:
        """One more instance on the running cluster (the site exists). Returns its site URL.

        :param env: variables for this instance only, on top of :meth:`instance_environment`
            (a test points one instance at a fault proxy with ``ESIGN_BANKID_URL``).
        """
        number = len(self.instances) + 1
        t0 = time.monotonic()
        self._start_instance(
            number, port, create_site=False, max_conflict_retries=max_conflict_retries, env=env
        )
        self._timed(f"instance {number}", t0)
        return self.urls[-1]

    def _start_instance(
        self,
        number: int,
        port: int,
        *,
        create_site: bool,
        max_conflict_retries: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        from Zope2.utilities.mkwsgiinstance import write_inituser

        home = self.base / "instances" / str(number)
        blob_cache = home / "blobcache"
        blob_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        conf = home / "zope.conf"
        text = zope_conf_text(
            home=home, dsn=self.postgres.dsn, blob_cache=blob_cache, max_conflict_retries=max_conflict_retries
        )
        conf.write_text(text, encoding="utf-8")
        if create_site and not (home / "inituser").exists():
            # Zope makes the "admin" user from this file when its user folder is empty.
            write_inituser(str(home / "inituser"), "admin", self.settings.admin_password)
        argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "instance",
            str(conf),
            "--port",
            str(port),
            "--threads",
            str(self.settings.threads),
            "--public-host",
            self.settings.public_host,
        ]
        if create_site:
            argv.append("--create-site")
            if self.settings.demo_case:
                argv.append("--demo-case")
        inherited = dict(os.environ)
        if self.settings.isolated:
            inherited = {
                k: v
                for k, v in inherited.items()
                if not k.startswith("ESIGN_") and k != "MAILHOST_QUEUE_ONLY"
            }
        child = spawn(
            f"instance {number}",
            argv,
            log=self.log_dir / f"instance{number}.log",
            env={**self.instance_environment(), **(env or {})},
            cwd=home,
            base_env=inherited,
        )
        self.instances.append(child)
        wait_for(
            child, lambda: READY in child.log_text(), timeout=self.settings.startup_timeout, what="serving"
        )
        url = re.search(re.escape(READY) + r"(\S+)", child.log_text()).group(1)
        self.urls.append(url)
        return child

    # -- running -----------------------------------------------------------------------------

    def children(self) -> Iterator[Child]:
        yield from self.instances
        yield from self.servers.values()
        if self.postgres.child is not None:
            yield self.postgres.child

    def first_exited(self) -> Child | None:
        return next((c for c in self.children() if not c.alive()), None)

    def stop(self) -> None:
        """Instances first (they close their database connections), then the servers, PostgreSQL last."""
        for child in reversed(self.instances):
            child.stop(timeout=30)
        for child in self.servers.values():
            child.stop(timeout=15)
        self.postgres.stop()


# -- make start-cluster ----------------------------------------------------------------------------


def start_cluster(args: argparse.Namespace) -> int:
    ports = [args.port + i for i in range(args.instances)]
    env = os.environ
    settings = ClusterSettings(
        base=args.var,
        instances=args.instances,
        ports=ports,
        public_host="localhost",
        pg_port=int(env.get("ESIGN_PG_PORT", "15432")),
        bankid_api_port=int(env.get("ESIGN_BANKID_API_PORT", "18443")),
        bankid_page_port=int(env.get("ESIGN_BANKID_PAGE_PORT", "18444")),
        oidc_port=int(env.get("ESIGN_OIDC_PORT", "18445")),
        smtp_port=int(env.get("ESIGN_SMTP_PORT", "8025")),
        mail_page_port=int(env.get("ESIGN_MAIL_PAGE_PORT", "8026")),
        demo_case=True,
        officer_password=env.get("ESIGN_OFFICER_PASSWORD") or "officer",
        admin_password=env.get("ESIGN_ADMIN_PASSWORD") or "admin",
    )
    wanted = {f"Plone {n}": p for n, p in enumerate(ports, start=1)}
    wanted.update(
        {
            "PostgreSQL": settings.pg_port,
            "BankID API": settings.bankid_api_port,
            "BankID page": settings.bankid_page_port,
            "OIDC IdP": settings.oidc_port,
            "SMTP": settings.smtp_port,
            "E-post page": settings.mail_page_port,
        }
    )
    taken = [f"{port} ({name})" for name, port in wanted.items() if port and port_taken(port)]
    if taken:
        print(
            f"start-cluster: these ports on 127.0.0.1 are already in use: {', '.join(taken)}.",
            file=sys.stderr,
        )
        print(
            "start-cluster: stop what listens there (a running 'make start'?) and try again.", file=sys.stderr
        )
        return 1

    cluster = Cluster(settings)
    interrupted = False

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    # Set both: a shell starts background commands with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    print(f"start-cluster: starting PostgreSQL, the local servers and {args.instances} Zope instances")
    print(f"start-cluster: data in {cluster.base}, logs in {cluster.log_dir}", flush=True)
    try:
        cluster.start()
        steps = ", ".join(f"{name} {seconds} s" for name, seconds in cluster.timings.items())
        print(f"start-cluster: ready after {time.monotonic() - started:.0f} s ({steps})")
        print(_banner(cluster), flush=True)
        while True:
            gone = cluster.first_exited()
            if gone is not None:
                print(
                    f"start-cluster: {gone.name} stopped (code {gone.popen.returncode}); see {gone.log}",
                    file=sys.stderr,
                )
                print(gone.tail(2000), file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    except ClusterError as exc:
        print(f"start-cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        cluster.stop()
        print("start-cluster: stopped (the instances, the local servers and PostgreSQL).", file=sys.stderr)
    return 130 if interrupted else 0


def _banner(cluster: Cluster) -> str:
    s = cluster.settings
    instances = "\n".join(
        f"  Instance {n}:                    {url}" for n, url in enumerate(cluster.urls, start=1)
    )
    return f"""
  E-underskrift (demo), {len(cluster.urls)} Zope instances on one RelStorage database:
{instances}
  Zope admin:                    admin / {s.admin_password}   (as set when the cluster was first made)
  Handläggare (SigningOfficer):  officer / {s.officer_password}   (as set when the site was first made)
  Demo case:                     {cluster.urls[0]}/avtal-om-vardtjanster-demo

  PostgreSQL:                    {cluster.postgres.dsn}
  BankID (test):                 {cluster.bankid_page_url}
  eTjänstekort (test IdP):       {cluster.oidc_issuer}
  E-post (lokal):                {cluster.mail_page_url}

  A signer may log in on one instance and sign on the other: sessions, login flows and
  BankID orders are in the database. The CA keys ({cluster.pki_dir}) and the mail queue
  ({cluster.mail_queue}) are shared by the instances.

  Stop with Ctrl-C (stops everything). Data: {cluster.base} (PostgreSQL in pg/); logs: {cluster.log_dir}.
"""


# -- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "start", help="PostgreSQL, the local servers and the instances (make start-cluster)"
    )
    start.add_argument(
        "--instances", type=int, default=2, help="how many Zope instances (default: %(default)s)"
    )
    start.add_argument(
        "--port", type=int, default=8080, help="port of the first instance; the next ones follow"
    )
    start.add_argument(
        "--var", type=Path, default=ROOT / "var" / "cluster", help="data folder (default: var/cluster)"
    )
    instance = commands.add_parser("instance", help="one Zope instance (started by 'start' and the tests)")
    instance.add_argument("zope_conf")
    instance.add_argument("--host", default=LOOPBACK, help="address to listen on (default: %(default)s)")
    instance.add_argument("--port", type=int, default=0, help="0 picks a free port")
    instance.add_argument(
        "--public-host", default="", help="host name in the site's addresses (default: --host)"
    )
    instance.add_argument(
        "--threads", type=int, default=4, help="waitress worker threads (default: %(default)s)"
    )
    instance.add_argument(
        "--create-site", action="store_true", help="create what is missing of the site first"
    )
    instance.add_argument("--demo-case", action="store_true", help="with --create-site: the demo case too")
    args = parser.parse_args(argv)
    if args.command == "instance":
        return run_instance(args)
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    return start_cluster(args)


if __name__ == "__main__":
    sys.exit(main())
