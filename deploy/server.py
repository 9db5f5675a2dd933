#!/usr/bin/env python3
"""A shared MLflow tracking server on PostgreSQL, with artifact serving and basic authentication.

    export MLFLOW_AUTH_ADMIN_PASSWORD='<at least 12 characters>'
    python deploy/server.py start --pg-url postgresql://USER:PASSWORD@DBHOST:5432   # an existing server
    python deploy/server.py start --local-cluster ./cinv-deploy/pgdata              # or a cluster of its own

`start` creates the databases `mlflow` (runs, metrics, registry), `mlflow_auth` (users and
permissions) and `optuna` (studies) where missing, writes the basic-auth configuration (no secret
in it but the database URL; mode 0600) and runs `mlflow server --app-name basic-auth` in the
foreground, artifacts proxied by the server into --artifacts. It prints the URLs to give cinv.
Ctrl-C stops the server, and the local cluster if this command started it.

    python deploy/server.py add-user alice        # password from CINV_NEW_USER_PASSWORD (or a prompt)
    python deploy/server.py stop --local-cluster ./cinv-deploy/pgdata

See deploy/README.md. Needs the cinv environment (mlflow, Flask-WTF, psycopg 3) and, for
--local-cluster, PostgreSQL's server binaries (Debian: apt-get install postgresql).
"""

from __future__ import annotations

import argparse
import getpass
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

DATABASES = {"mlflow": "tracking and model registry", "mlflow_auth": "users and permissions", "optuna": "Optuna studies"}
CLUSTER_SUPERUSER = "cinv"
MIN_PASSWORD = 12  # MLflow's basic auth refuses shorter passwords


class DeployError(Exception):
    """A misconfiguration, reported as one line."""


def say(message: str) -> None:
    print(f"[deploy] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


def pg_bin(name: str) -> str:
    """A PostgreSQL program: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return candidates[-1]
    raise DeployError(f"PostgreSQL program {name!r} not found (Debian: apt-get install postgresql; "
                      "or put its bin directory on PATH)")


def as_cluster_owner(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run the cluster as the `postgres` user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def cluster_running(datadir: Path) -> bool:
    if not (datadir / "PG_VERSION").exists():
        return False
    return subprocess.run(as_cluster_owner([pg_bin("pg_ctl"), "-D", str(datadir), "status"]),
                          capture_output=True).returncode == 0


def init_cluster(datadir: Path, password: str) -> None:
    """initdb with password (SCRAM) authentication for every connection, superuser `cinv`."""
    datadir = datadir.resolve()
    if (datadir / "PG_VERSION").exists():
        return
    datadir.mkdir(parents=True, exist_ok=True)
    _chown_to_postgres(datadir)
    if os.geteuid() == 0:
        probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(datadir)])
        if probe.returncode != 0:
            raise DeployError(f"user postgres cannot write {datadir}: a parent folder is closed to it "
                              "(e.g. mode 0700); choose a folder it can reach")
    with tempfile.NamedTemporaryFile("w", dir=datadir.parent, prefix=".pwfile-", delete=False) as f:
        f.write(password + "\n")
    pwfile = Path(f.name)
    try:
        os.chmod(pwfile, 0o600)
        _chown_to_postgres(pwfile)
        proc = subprocess.run(as_cluster_owner([
            pg_bin("initdb"), "-D", str(datadir), "-U", CLUSTER_SUPERUSER, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"]),
            capture_output=True, text=True)
    finally:
        pwfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise DeployError(f"initdb failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    say(f"created PostgreSQL cluster {datadir} (superuser {CLUSTER_SUPERUSER})")


def start_cluster(datadir: Path, listen: str, port: int, allow: list[str]) -> bool:
    """Start the cluster unless it runs; True when this call started it."""
    datadir = datadir.resolve()
    hba = datadir / "pg_hba.conf"
    text = hba.read_text()
    lines = [f"host all all {cidr} scram-sha-256" for cidr in allow if f" {cidr} " not in text]
    if lines:
        hba.write_text(text.rstrip("\n") + "\n# deploy/server.py --pg-allow\n" + "\n".join(lines) + "\n")
    if cluster_running(datadir):
        say(f"PostgreSQL cluster {datadir} already running")
        return False
    log = datadir / "server.log"
    # The Unix socket goes into the data folder: nothing outside it needs to be writable.
    options = f"-c listen_addresses='{listen}' -p {port} -c unix_socket_directories='{datadir}'"
    proc = subprocess.run(as_cluster_owner([pg_bin("pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "60",
                                            "-o", options, "start"]), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise DeployError(f"PostgreSQL did not start on port {port}: {(proc.stderr or proc.stdout).strip()} {tail}")
    say(f"PostgreSQL listening on {listen}:{port} (log {log})")
    return True


def stop_cluster(datadir: Path, mode: str = "fast") -> None:
    datadir = datadir.resolve()
    if cluster_running(datadir):
        subprocess.run(as_cluster_owner([pg_bin("pg_ctl"), "-D", str(datadir), "-m", mode, "-w", "stop"]),
                       capture_output=True)
        say(f"stopped PostgreSQL cluster {datadir}")


def with_database(url: str, name: str, driver: str | None = "psycopg") -> str:
    """The URL of database ``name`` on the server of ``url``: for SQLAlchemy (MLflow, Optuna) with the
    psycopg 3 driver named, which SQLAlchemy 2.0 and 2.1 both understand; ``driver=None``: for libpq."""
    parts = urlsplit(url)
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return urlunsplit((scheme, parts.netloc, "/" + name, parts.query, ""))


def masked(url: str, shown: str = ":***") -> str:
    """``url`` with its password replaced by ``shown`` (``""``: dropped)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", shown + "@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def without_password(url: str) -> str:
    return masked(url, "")


def ensure_databases(server_url: str, names=tuple(DATABASES), timeout: float = 30) -> None:
    """CREATE DATABASE each name that does not exist (idempotent)."""
    import psycopg
    from psycopg import sql

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = psycopg.connect(with_database(server_url, "postgres", driver=None), connect_timeout=5, autocommit=True)
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DeployError(f"cannot connect to PostgreSQL at {masked(server_url)}: "
                                  f"{str(exc).strip().splitlines()[0]}") from None
            time.sleep(0.5)
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    say(f"created database {name} ({DATABASES.get(name, '')})")
    finally:
        conn.close()


def ensure_optuna_schema(optuna_url: str) -> None:
    """Create Optuna's tables now: workers that open a fresh database together race to create them
    (PostgreSQL answers the loser with a unique violation on pg_type)."""
    import optuna

    storage = optuna.storages.RDBStorage(optuna_url)
    storage.engine.dispose()


# ---------------------------------------------------------------------------------------------
# MLflow


def write_auth_config(path: Path, auth_db_url: str, admin_username: str, default_permission: str,
                      auth_cache_ttl: int = 60) -> Path:
    """MLflow's basic-auth configuration. The admin password is NOT written: the server reads it
    from MLFLOW_AUTH_ADMIN_PASSWORD, and only to create the admin user on the first start."""
    text = "\n".join([
        "# Written by deploy/server.py; regenerated on every start. Holds the auth database URL.",
        "[mlflow]",
        f"default_permission = {default_permission}",
        f"database_uri = {auth_db_url.replace('%', '%%')}",
        f"admin_username = {admin_username}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        "# Verified credentials are cached per worker: without it every request pays a PBKDF2 hash.",
        f"auth_cache_ttl_seconds = {auth_cache_ttl}",
        "",
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
    return path


def flask_secret(state: Path) -> str:
    """MLflow's auth app needs a static secret key (CSRF); keep one per deployment."""
    if os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        return os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    path = state / "flask_secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def public_host(host: str) -> str:
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def start(args: argparse.Namespace) -> int:
    admin_password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")
    if len(admin_password) < MIN_PASSWORD:
        raise DeployError(f"set MLFLOW_AUTH_ADMIN_PASSWORD (at least {MIN_PASSWORD} characters): the password of "
                          "MLflow's admin user, created on the first start")
    admin_username = os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    started_cluster = None
    pg_url = args.pg_url or os.environ.get("CINV_PG_URL")
    worker_pg_url = None
    if pg_url and args.local_cluster:
        raise DeployError("give either --pg-url (CINV_PG_URL) or --local-cluster, not both")
    if not pg_url and not args.local_cluster:
        raise DeployError("give --pg-url postgresql://USER:PASSWORD@HOST:PORT (or CINV_PG_URL) or --local-cluster DIR")
    if pg_url and urlsplit(pg_url).scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise DeployError(f"--pg-url must be a postgresql:// URL, got {masked(pg_url)}")
    if args.local_cluster:
        password = os.environ.get("CINV_PG_PASSWORD", "")
        if not password:
            raise DeployError("set CINV_PG_PASSWORD: the password of the local cluster's superuser "
                              f"{CLUSTER_SUPERUSER!r} (Optuna workers connect with it)")
        datadir = Path(args.local_cluster).expanduser().resolve()
        init_cluster(datadir, password)
        if start_cluster(datadir, args.pg_listen, args.pg_port, args.pg_allow):
            started_cluster = datadir
        host = "127.0.0.1" if args.pg_listen in ("127.0.0.1", "localhost", "*", "0.0.0.0") else args.pg_listen
        pg_url = f"postgresql://{CLUSTER_SUPERUSER}:{quote(password, safe='')}@{host}:{args.pg_port}"
        if args.pg_listen in ("*", "0.0.0.0"):  # workers on other machines use this machine's name
            worker_pg_url = f"postgresql://{CLUSTER_SUPERUSER}@{public_host(args.pg_listen)}:{args.pg_port}"

    worker_pg_url = worker_pg_url or pg_url
    state = Path(args.state_dir).expanduser().resolve()
    artifacts = args.artifacts or str(state / "artifacts")
    try:
        state.mkdir(parents=True, exist_ok=True)
        if "://" not in artifacts:
            Path(artifacts).mkdir(parents=True, exist_ok=True)
        ensure_databases(pg_url)
        ensure_optuna_schema(with_database(pg_url, "optuna"))
        config = write_auth_config(state / "basic_auth.ini", with_database(pg_url, "mlflow_auth"), admin_username,
                                   args.default_permission, args.auth_cache_ttl)
        # The database URL travels in the environment, not on the command line where `ps` shows it.
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret(state),
               "MLFLOW_AUTH_ADMIN_USERNAME": admin_username, "MLFLOW_BACKEND_STORE_URI": with_database(pg_url, "mlflow")}
        command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
                   "--serve-artifacts", "--artifacts-destination", artifacts,
                   "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
        if args.allowed_hosts:
            command += ["--allowed-hosts", args.allowed_hosts]
        url = f"http://{public_host(args.host)}:{args.port}"
        optuna_url = without_password(with_database(worker_pg_url, "optuna"))
        print("\n".join([
            "",
            f"MLflow tracking server  {url}   (basic auth; admin user {admin_username!r})",
            f"  artifacts             proxied by the server, stored in {artifacts}",
            f"  tracking database     {masked(with_database(pg_url, 'mlflow'))}",
            f"  users database        {masked(with_database(pg_url, 'mlflow_auth'))}",
            f"Optuna storage          {optuna_url}",
            "  (the password from PGPASSWORD or ~/.pgpass: a password in the URL would be logged with the run)",
            "",
            "Point cinv at it:",
            f"  export MLFLOW_TRACKING_URI={url}",
            "  export MLFLOW_TRACKING_USERNAME=<user> MLFLOW_TRACKING_PASSWORD=<password> PGPASSWORD=<database password>",
            "  export MLFLOW_EXPERIMENT_NAME=<experiment>",
            f"  mlflow run . --env-manager local -e tune -P study_name=NAME -P storage={optuna_url}",
            "",
        ]), flush=True)
        server = subprocess.Popen(command, env=env, start_new_session=True)
        # `kill -TERM -$(cat STATE_DIR/mlflow-server.pgid)` stops the server's process group.
        (state / "mlflow-server.pgid").write_text(f"{server.pid}\n")

        def forward(signum, _frame):
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = server.wait()
        try:
            os.killpg(server.pid, signal.SIGTERM)  # workers left behind by an abrupt exit
        except ProcessLookupError:
            pass
        return code if code >= 0 else 0
    finally:
        if started_cluster is not None:
            stop_cluster(started_cluster)


def add_user(args: argparse.Namespace) -> int:
    """Create a user through the server's auth API (as the admin)."""
    from mlflow.server import get_app_client

    url = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not url or not url.startswith(("http://", "https://")):
        raise DeployError("set MLFLOW_TRACKING_URI (or --tracking-uri) to the server's http(s) URL")
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin"))
    if "MLFLOW_TRACKING_PASSWORD" not in os.environ:
        if "MLFLOW_AUTH_ADMIN_PASSWORD" not in os.environ:
            raise DeployError("set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD to an admin's credentials")
        os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
    password = os.environ.get("CINV_NEW_USER_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < MIN_PASSWORD:
        raise DeployError(f"the password needs at least {MIN_PASSWORD} characters")
    from mlflow.exceptions import MlflowException

    client = get_app_client("basic-auth", tracking_uri=url)
    try:
        user = client.create_user(username=args.username, password=password)
    except MlflowException as exc:
        raise DeployError(f"cannot create user {args.username!r} on {url} as "
                          f"{os.environ['MLFLOW_TRACKING_USERNAME']!r}: {exc.message}") from None
    say(f"created user {user.username!r} on {url}")
    return 0


def stop(args: argparse.Namespace) -> int:
    stop_cluster(Path(args.local_cluster).expanduser())
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See deploy/README.md.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="create the databases and run the MLflow server (foreground)")
    s.add_argument("--pg-url", help="an existing PostgreSQL server, postgresql://USER:PASSWORD@HOST:PORT, USER "
                   "allowed to create databases (default: env CINV_PG_URL)")
    s.add_argument("--local-cluster", metavar="DIR", help="create (first time) and start a PostgreSQL cluster in DIR; "
                   "its superuser 'cinv' gets the password in env CINV_PG_PASSWORD")
    s.add_argument("--pg-listen", default="127.0.0.1", help="local cluster: listen address (default 127.0.0.1; "
                   "'*' for other machines, with --pg-allow)")
    s.add_argument("--pg-port", type=int, default=5432, help="local cluster: port (default 5432)")
    s.add_argument("--pg-allow", action="append", default=[], metavar="CIDR",
                   help="local cluster: also accept password logins from CIDR (e.g. 10.0.0.0/8); repeatable")
    s.add_argument("--state-dir", default="cinv-deploy", help="auth configuration and secret key (default ./cinv-deploy)")
    s.add_argument("--artifacts", help="where the server stores artifacts (default STATE_DIR/artifacts; "
                   "an s3://... URI works too)")
    s.add_argument("--host", default="127.0.0.1", help="MLflow bind address (default 127.0.0.1; 0.0.0.0 for other machines)")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--workers", type=int, default=2, help="MLflow server worker processes (default 2)")
    s.add_argument("--allowed-hosts", help="MLflow --allowed-hosts: Host headers accepted beyond localhost and "
                   "private addresses, e.g. mlflow.example.org")
    s.add_argument("--default-permission", default="READ", choices=["READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"],
                   help="what users may do with experiments they did not create (default READ)")
    s.add_argument("--auth-cache-ttl", type=int, default=60, metavar="SECONDS",
                   help="cache verified credentials this long per server worker (default 60; 0: verify every "
                   "request, several times slower); a changed or deleted password may work that long on other workers")
    s.set_defaults(func=start)
    u = sub.add_parser("add-user", help="create an MLflow user (password from CINV_NEW_USER_PASSWORD or a prompt)")
    u.add_argument("username")
    u.add_argument("--tracking-uri", help="default: env MLFLOW_TRACKING_URI")
    u.set_defaults(func=add_user)
    t = sub.add_parser("stop", help="stop a local cluster left running")
    t.add_argument("--local-cluster", metavar="DIR", required=True)
    t.set_defaults(func=stop)
    args = parser.parse_args(argv)
    if args.command == "start" and args.artifacts and "://" not in args.artifacts:
        args.artifacts = str(Path(args.artifacts).expanduser().resolve())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        return args.func(args)
    except DeployError as exc:
        print(f"deploy/server.py {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
