"""A lease on a run: which process is working on it, renewed while it does, so that a resume never
attaches to a run another process is still training.

The owner (host, process id, the process's start time) and a heartbeat are tags of the run; a
daemon thread renews the heartbeat every ``HEARTBEAT_S`` seconds. A RUNNING run is alive when
its owner process still exists (same host: checked directly, so a killed process frees its run at
once) or, seen from another host, when its heartbeat is younger than ``STALE_S`` seconds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import mlflow

from cinv.tracking import schema
from cinv.tracking.store import quick_store

__all__ = ["HEARTBEAT_S", "STALE_S", "Lease", "first_writer", "owner", "owner_alive", "still_alive"]

HEARTBEAT_S = 20.0
STALE_S = 90.0
log = logging.getLogger(__name__)
_HELD: set[str] = set()  # runs this process holds a lease on


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is not taken for its predecessor."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def first_writer(run_id: str, key: str, value: str) -> str | None:
    """Write param ``key`` = ``value`` on run ``run_id`` unless another process wrote it first;
    the value that stands (``value`` when this process won). MLflow refuses to change a param
    once written and the store's unique key decides between simultaneous writers, so this is a
    compare-and-set that exactly one of them wins. None when the store stayed busy throughout."""
    from mlflow.exceptions import MlflowException

    client, won = mlflow.MlflowClient(), None
    for attempt in range(3):
        try:
            client.log_param(run_id, key, value)
        except MlflowException:
            pass  # another process wrote it first (or the server turned a busy store into an error): the read decides
        except Exception:  # the store was busy (SQLite locked): nobody may have written it yet
            time.sleep(0.2 * (attempt + 1))
        won = client.get_run(run_id).data.params.get(key)
        if won is not None:
            return won
    return won


def _process_exists(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        pass
    now = _started(pid)
    return not (started and now and now != started)


def still_alive(run) -> str | None:
    """Why ``run`` must not be resumed (a process is still working on it), or None."""
    tags = run.data.tags
    if run.info.status != "RUNNING" or schema.LEASE_OWNER not in tags:
        return None
    heartbeat = tags.get(schema.LEASE_HEARTBEAT, "0")
    if ahead(heartbeat) and not owner_alive(tags[schema.LEASE_OWNER], "0"):  # another host's clock runs ahead
        return renewed_since(run.info.run_id, heartbeat)
    return owner_alive(tags[schema.LEASE_OWNER], heartbeat, held=run.info.run_id in _HELD)


def ahead(heartbeat: str) -> bool:
    """A heartbeat more than ``STALE_S`` in this host's future: the two clocks disagree, and its age says nothing."""
    try:
        return float(heartbeat) - time.time() > STALE_S
    except ValueError:
        return False


def renewed_since(run_id: str, heartbeat: str) -> str | None:
    """Whether the owner still renews its lease, watched for one renewal period and a half: a
    heartbeat written by a clock an hour ahead would otherwise read as fresh for an hour."""
    client = mlflow.MlflowClient()
    deadline = time.monotonic() + 1.5 * HEARTBEAT_S
    while time.monotonic() < deadline:
        time.sleep(min(1.0, HEARTBEAT_S / 4))
        now = client.get_run(run_id).data.tags.get(schema.LEASE_HEARTBEAT, heartbeat)
        if now != heartbeat:
            return "its owner is still renewing its lease (its clock runs ahead of this host's)"
    return None


def owner_alive(holder: str, heartbeat: str, held: bool = False) -> str | None:
    """Whether the process ``holder`` (``owner()``'s host:pid:start) still works on something, as
    a reason, or None: on this host, by the process itself (``held``: this process's own claim);
    from another host, by a ``heartbeat`` (unix time) younger than ``STALE_S``."""
    host, _, rest = holder.partition(":")
    pid_text, _, started = rest.partition(":")
    pid = int(pid_text) if pid_text.isdigit() else -1
    if host == socket.gethostname():
        if pid == os.getpid():
            return "this process is still running it" if held else None
        return f"process {pid} on this host is still running it" if _process_exists(pid, started) else None
    try:
        age = time.time() - float(heartbeat)
    except ValueError:
        return None
    if age < STALE_S:
        return f"process {pid} on {host} renewed its lease {age:.0f} s ago (it is taken as stopped {STALE_S:.0f} s after its last renewal)"
    return None


class Lease:
    """``with Lease(run_id):`` marks the run as this process's and renews the mark until the block ends."""

    def __init__(self, run_id: str, interval_s: float = HEARTBEAT_S):
        self.run_id, self.interval_s = run_id, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self, client: mlflow.MlflowClient) -> None:
        client.set_tag(self.run_id, schema.LEASE_HEARTBEAT, f"{time.time():.0f}")

    def _renew(self) -> None:
        client = mlflow.MlflowClient()
        while not self._stop.wait(self.interval_s):
            try:
                self._beat(client)
            except Exception as exc:  # a store hiccup: the next beat tries again; the run's own writes retry
                log.debug("lease heartbeat for run %s failed: %s", self.run_id, exc)

    def __enter__(self) -> Lease:
        client = mlflow.MlflowClient()
        client.set_tag(self.run_id, schema.LEASE_OWNER, owner())
        self._beat(client)
        _HELD.add(self.run_id)
        self._thread = threading.Thread(target=self._renew, name=f"cinv-lease-{self.run_id[:8]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop renewing and take the mark off: an ended run (FINISHED, FAILED or KILLED) has no live
        owner, and its page should not show one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _HELD.discard(self.run_id)
        client = mlflow.MlflowClient()
        with quick_store():  # one try each: a stale mark reads as not live, and a stopping process must not wait
            for key in (schema.LEASE_OWNER, schema.LEASE_HEARTBEAT):
                try:
                    client.delete_tag(self.run_id, key)
                except Exception as exc:  # already gone, or the store is down
                    log.debug("removing %s from run %s failed: %s", key, self.run_id, exc)
