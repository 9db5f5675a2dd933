"""Shared deployment (deploy/server.py, deploy/README.md): an MLflow tracking server on PostgreSQL with
artifact serving and basic authentication, Optuna studies on the same PostgreSQL, cinv pointed at both
by URL.

A throwaway PostgreSQL cluster (initdb in a temporary folder, a free port; as root, run by the
`postgres` user) and `mlflow server --app-name basic-auth` on it are started by the deployment script
itself, then: anonymous and wrong-password writes are refused; two `tune` workers, subprocesses
talking to the server over HTTP, share one study on PostgreSQL; the runs, metrics and artifacts are
read back through the server, the trials through Optuna. CI installs PostgreSQL from Debian's
packages (.ci/run) and sets CINV_REQUIRE_POSTGRES=1, so a missing PostgreSQL fails there.
"""

import importlib.util
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
from types import SimpleNamespace
from urllib.parse import quote

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

TINY = ["--limit_per_class", "4", "--image_size", "32", "--student_batch_size", "16", "--probe_epochs", "1",
        "--val_draws", "1", "--reports", "1", "--pruner", "none", "--num_workers", "0"]


def load_deploy():
    spec = importlib.util.spec_from_file_location("cinv_deploy_server", ROOT / "deploy" / "server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = load_deploy()


def required() -> bool:
    flag = lambda name: os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
    return flag("CI") or flag("CINV_REQUIRE_POSTGRES")


def missing_prerequisite() -> str | None:
    try:
        deploy.pg_bin("initdb")
        deploy.pg_bin("pg_ctl")
    except deploy.DeployError as exc:
        return str(exc)
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no `postgres` user to run the PostgreSQL cluster"
        if shutil.which("runuser") is None:
            return "running as root, but `runuser` is missing (util-linux)"
    for module, package in (("psycopg", "psycopg[binary]"), ("flask_wtf", "Flask-WTF")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e . installs {package})"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"deploy/server.py exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"MLflow server not healthy after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server():
    """deploy/server.py start --local-cluster ...: PostgreSQL and MLflow on free ports, always torn down."""
    reason = missing_prerequisite()
    if reason:
        if required():
            pytest.fail(f"shared-deployment test cannot run: {reason}")
        pytest.skip(f"shared deployment not testable here: {reason} (CI installs PostgreSQL; see .ci/run)")
    # Not under pytest's tmp_path: as root the cluster runs as `postgres`, which cannot enter a 0700 folder.
    base = Path(tempfile.mkdtemp(prefix="cinv-deploy-", dir="/tmp" if os.geteuid() == 0 else None))
    base.chmod(0o755)
    datadir, state, log = base / "pgdata", base / "state", base / "server.log"
    pg_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
    admin_password = secrets.token_urlsafe(16)
    pg_password = secrets.token_urlsafe(12) + "/@:%"  # characters a URL must escape
    env |= {"MLFLOW_AUTH_ADMIN_PASSWORD": admin_password, "CINV_PG_PASSWORD": pg_password, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(ROOT / "deploy" / "server.py"), "start", "--local-cluster", str(datadir),
               "--pg-port", str(pg_port), "--port", str(port), "--state-dir", str(state), "--workers", "1"]
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield SimpleNamespace(
            url=url, admin=("admin", admin_password), pg_password=pg_password, state=state, log=log,
            optuna_url=f"postgresql+psycopg://cinv@127.0.0.1:{pg_port}/optuna",
            optuna_url_with_password=f"postgresql+psycopg://cinv:{quote(pg_password, safe='')}@127.0.0.1:{pg_port}/optuna")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the script stops MLflow, then the cluster it started
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        pgid = state / "mlflow-server.pgid"
        if pgid.exists():
            try:
                os.killpg(int(pgid.read_text()), signal.SIGKILL)  # no-op unless the script failed to stop it
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        deploy.stop_cluster(datadir, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_unauthenticated_and_wrong_password_writes_are_rejected(server):
    import requests

    create = f"{server.url}/api/2.0/mlflow/experiments/create"
    anonymous = requests.post(create, json={"name": "anonymous"}, timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    wrong = requests.post(create, json={"name": "wrong"}, auth=(server.admin[0], "not-the-password"), timeout=30)
    assert wrong.status_code == 401, wrong.text
    assert requests.get(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=10", timeout=30).status_code == 401
    for name in ("anonymous", "wrong"):
        found = requests.get(f"{server.url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name},
                             auth=server.admin, timeout=30)
        assert found.status_code == 404, f"experiment {name!r} was created by a rejected request"
    # A user (not admin) may read the Default experiment but not write to it (default_permission READ).
    user = ("reader", secrets.token_urlsafe(12))
    made = requests.post(f"{server.url}/api/2.0/mlflow/users/create", json={"username": user[0], "password": user[1]},
                         auth=server.admin, timeout=30)
    assert made.status_code == 200, made.text
    assert requests.get(f"{server.url}/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"}, auth=user,
                        timeout=30).status_code == 200
    denied = requests.post(f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, auth=user, timeout=30)
    assert denied.status_code == 403, denied.text
    # Until an admin grants it (deploy/README.md, "Create users"; what AuthServiceClient.grant_user_permission sends).
    granted = requests.post(f"{server.url}/api/3.0/mlflow/users/permissions/grant", auth=server.admin, timeout=30,
                            json={"username": user[0], "resource_type": "experiment", "resource_id": "0", "permission": "EDIT"})
    assert granted.status_code == 200, granted.text
    allowed = requests.post(f"{server.url}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}, auth=user, timeout=30)
    assert allowed.status_code == 200, allowed.text


def test_two_tune_workers_share_a_study_on_postgres_and_track_to_the_server(server, tmp_path, monkeypatch):
    import mlflow
    import optuna
    import pandas as pd
    import requests

    # A user, created with the deployment script as the admin.
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
    made = subprocess.run([sys.executable, str(ROOT / "deploy" / "server.py"), "add-user", "worker"], cwd=tmp_path,
                          env=env | {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": server.admin[0],
                                     "MLFLOW_TRACKING_PASSWORD": server.admin[1], "CINV_NEW_USER_PASSWORD": password,
                                     "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stdout + made.stderr

    for name, value in {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": "worker",
                        "MLFLOW_TRACKING_PASSWORD": password}.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(server.url)
    client = mlflow.MlflowClient(server.url)
    experiment_id = client.create_experiment("shared-deployment")  # once, before the workers (they would race)

    # Two workers on one study: the database password from PGPASSWORD, never in the logged storage URL.
    worker_env = env | {"MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_USERNAME": "worker",
                        "MLFLOW_TRACKING_PASSWORD": password, "MLFLOW_EXPERIMENT_NAME": "shared-deployment",
                        "PGPASSWORD": server.pg_password, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(ROOT / "entrypoints" / "tune.py"), *TINY, "--study_name", "shared", "--n_trials", "1",
               "--storage", server.optuna_url]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    try:
        outputs = [w.communicate(timeout=600) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert [w.returncode for w in workers] == [0, 0], "\n".join(f"--- worker {i} stderr:\n{err[-6000:]}" for i, (_, err) in enumerate(outputs))

    # Optuna, straight from PostgreSQL: one trial from each worker (each ran n_trials=1).
    study = optuna.load_study(study_name="shared", storage=server.optuna_url_with_password)
    assert sorted(t.number for t in study.trials) == [0, 1]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    # MLflow, over HTTP as the user: the study's run, the second worker's run, a child run per trial.
    runs = client.search_runs([experiment_id])
    parents = [r for r in runs if r.data.tags.get("cinv.stage") == "study"]
    assert len(parents) == 1
    parent = parents[0]
    joined = [r for r in runs if r.data.tags.get("cinv.stage") == "tune worker"]
    assert len(joined) == 1 and joined[0].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {r.info.status for r in (parent, *joined)} == {"FINISHED"}
    trials = [r for r in runs if r.data.tags.get("cinv.stage") == "trial"]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trials) == [0, 1]
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {r.info.run_id for r in trials}
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert {"lr", "weight_decay", "temperature"} <= set(run.data.params)
        assert {"objective", "val_top1"} <= set(run.data.metrics)
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert server.pg_password not in parent.data.params.get("storage", "")

    # Artifacts: proxied by the server (mlflow-artifacts:), stored in its destination, downloadable through it.
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "optimization_history.png", "config.json"} <= names
    local = mlflow.artifacts.download_artifacts(run_id=parent.info.run_id, artifact_path="trials.csv",
                                                dst_path=str(tmp_path / "download"))
    assert sorted(pd.read_csv(local)["number"]) == [0, 1]
    assert list((server.state / "artifacts").rglob("trials.csv"))
    relative = parent.info.artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
    anonymous = requests.get(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{relative}/trials.csv", timeout=30)
    assert anonymous.status_code == 401
