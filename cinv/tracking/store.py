"""The MLflow store itself: where it is (``configure``), whether it can be used at all
(``check_store``: reachability, an SQLite file's kind, its creation and migration serialised),
and how a write survives a store that hiccups (``with_retries``) or is gone (``quick_store``).
Logging a run's contents is ``tracking.runs``."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow

from cinv.errors import StoreError, one_line
from cinv.runtime import environ, termination
from cinv.secrets import redact, redact_url, unclean_userinfo

__all__ = ["DEFAULT_TRACKING_URI", "HTTP_RETRIES", "configure", "check_store", "reach_database", "sqlite_tables",
           "creating", "with_retries", "quick_store", "stopping", "artifact_location", "STORE_RETRY_S"]

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


HTTP_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def configure() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///mlflow.db`` in the working directory.

    MLflow's own "View run at <url>" lines are switched off: they would print a server URL with
    its credentials; cinv prints the link itself, masked."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # MLflow's own HTTP retries (7, doubling from 2 s) inside each of cinv's rounds kept a run on a
    # dead server for ten minutes: a few quick ones, cinv's rounds (with_retries) bound the total.
    for key, value in HTTP_RETRIES.items():
        os.environ.setdefault(key, value)
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # a warning per retry: with_retries says one line
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(DEFAULT_TRACKING_URI)
    return mlflow.get_tracking_uri()


STORE_PROBE_TIMEOUT_S = 10


def check_store(timeout_s: float = STORE_PROBE_TIMEOUT_S) -> None:
    """Fail fast, in one line, when the tracking store cannot be used at all; once, before a run starts.

    MLflow would otherwise retry an unreachable server for minutes and a bad SQLite file or folder
    with dozens of warnings. Checked: an SQLite store's file is an SQLite database and its folder
    exists and is writable; then one request (no retries, ``timeout_s``) reaches the store, which
    also rejects unsupported schemes and MLflow 3's refused ``file://`` stores. Faults that happen
    mid-run are [with_retries][]' business."""
    from sqlalchemy.engine import make_url

    uri = mlflow.get_tracking_uri()
    shown = redact_url(uri)
    if problem := unclean_userinfo(uri):  # before any request: a parser would send part of the password as a host
        raise StoreError(f"MLflow store {shown}: {problem}")
    database = None  # an SQLite store: its probe (which creates and migrates its tables) is serialised
    if uri.startswith("sqlite:"):
        database = make_url(uri).database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if path.is_dir():
                raise StoreError(f"MLflow store {shown}: {path} is a folder, not an SQLite database file")
            if path.is_file():
                with open(path, "rb") as fh:
                    head = fh.read(16)
                if head and head != b"SQLite format 3\x00":
                    raise StoreError(f"MLflow store {shown}: {path} is not an SQLite database")
                if not os.access(path, os.W_OK):
                    raise StoreError(f"MLflow store {shown}: {path} is read-only")
                tables = sqlite_tables(path)
                if tables and "experiments" not in tables:
                    raise StoreError(f"MLflow store {shown}: {path} is another application's SQLite database (tables: "
                                     f"{', '.join(sorted(tables)[:5])}{', ...' if len(tables) > 5 else ''}); MLflow would "
                                     "add its own tables to it: give a new file")
                database = path
            elif not path.parent.is_dir():
                raise StoreError(f"MLflow store {shown}: folder {path.parent} does not exist")
            elif not os.access(path.parent, os.W_OK):
                raise StoreError(f"MLflow store {shown}: folder {path.parent} is read-only (the database cannot be created)")
            else:
                database = path
    if uri.startswith("postgresql"):  # one connection first: MLflow retries an engine 10 times, 46 warning lines
        reach_database(uri, shown, timeout_s)
    bounded = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(timeout_s))}
    try:
        with environ(bounded), creating(database):
            mlflow.MlflowClient().search_experiments(max_results=1)
    except Exception as exc:
        raise StoreError(f"MLflow store {shown} cannot be used: {one_line(exc)}") from None


def reach_database(uri: str, shown: str, timeout_s: float) -> None:
    """One connection to a database store, bounded by ``timeout_s``; a failure is one line."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": max(1, int(timeout_s))})
        with contextlib.closing(engine.connect()):
            pass
    except Exception as exc:
        raise StoreError(f"MLflow store {shown} cannot be used: {one_line(exc)}") from None


def sqlite_tables(path: Path) -> set[str]:
    """The tables of an SQLite file, read without writing to it, except that a process killed in
    the middle of a write (SIGKILL, a lost machine) leaves a hot journal, which only a writable
    connection may roll back: SQLite's own recovery, which changes no table."""
    import sqlite3

    query = "select name from sqlite_master where type = 'table'"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            return {row[0] for row in db.execute(query)}
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc) or not Path(f"{path}-journal").exists():
            raise
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        return {row[0] for row in db.execute(query)}


@contextmanager
def creating(path: Path | None):
    """While the block opens the SQLite store ``path`` (None: not an SQLite file), other cinv
    processes wait: MLflow creates and migrates its tables without a lock, and two commands
    starting on a fresh store fail with "duplicate column name", "Online migration expected" or a
    missing table, whichever instant the second one looks (half the tables may exist by then), so
    every command takes the lock, not only the one that finds no table, and waits as long as a
    migration takes. The lock is a hidden file beside the database (flock: released if the
    process dies)."""
    if path is None:
        yield
        return
    import fcntl

    with open(path.parent / f".{path.name}.create-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the store or the disk, not a mistake in the request."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "IO_ERROR")
    return isinstance(exc, OSError) or type(exc).__name__ in ("OperationalError", "DatabaseError")


# How long a store write is retried before the run fails (a disk error: 4 attempts); $CINV_STORE_RETRY_S changes it.
STORE_RETRY_S = float(os.environ.get("CINV_STORE_RETRY_S", "120"))
DISK_ATTEMPTS = 4


def with_retries(fn, what: str, budget_s: float = STORE_RETRY_S, wait_s: float = 0.5):
    """``fn`` retried with exponential back-off on store or disk errors, then one clear error: a
    store that does not answer for ``budget_s`` (one line per round), a disk error after
    ``DISK_ATTEMPTS`` tries. A SIGTERM or Ctrl-C during a wait ends it at once."""
    from tenacity import retry, retry_if_exception, wait_exponential

    def disk(exc) -> bool:
        return isinstance(exc, OSError) and exc.errno is not None  # the disk under the artifacts, not the store

    def stop(state) -> bool:
        if disk(state.outcome.exception()):
            return state.attempt_number >= DISK_ATTEMPTS
        return state.seconds_since_start >= budget_s

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if termination.pending():
                termination.stop()
            time.sleep(min(0.2, left))

    def said(state) -> None:
        log.warning("%s: the MLflow store did not answer (try %d, %.0f s so far, gives up after %.0f s): %s",
                    what, state.attempt_number, state.seconds_since_start, budget_s, one_line(state.outcome.exception()))

    retrying = retry(retry=retry_if_exception(_transient), stop=stop, wait=wait_exponential(multiplier=wait_s, max=15),
                     sleep=sleep, before_sleep=said, reraise=True)(fn)

    def call(*args, **kwargs):
        try:
            return retrying(*args, **kwargs)
        except Exception as exc:
            if not _transient(exc):
                raise
            if disk(exc):
                raise StoreError(f"{what} failed writing to {exc.filename or artifact_location()} ({DISK_ATTEMPTS} attempts): "
                                 f"{exc.strerror or one_line(exc)}") from None
            raise StoreError(f"MLflow store {redact(mlflow.get_tracking_uri())} failed while {what} "
                             f"(retried for {budget_s:.0f} s): {one_line(exc)}") from None

    return call


QUICK = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@contextmanager
def quick_store():
    """Store calls in the block make one try of at most 5 s (MLflow's own HTTP retries off): the
    last writes of a stopping or failing command, which must not wait on a store that is gone."""
    with environ(QUICK):
        yield


def artifact_location() -> str:
    """Where the active run's experiment keeps artifacts (its models too), for an error line."""
    try:
        return redact(mlflow.get_experiment(mlflow.active_run().info.experiment_id).artifact_location)
    except Exception:
        return "the artifact store"


def stopping() -> None:
    """The process is ending (stopped or failed): from now on every store call makes one quick try,
    its last writes and MLflow's own at exit included, so a store that is gone cannot hold it."""
    os.environ.update(QUICK)
