import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One core per pytest-xdist worker, for its own tensors and the commands it starts:
    # oversubscribed OpenMP threads spin against each other.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
SHARED = Path(os.environ.get("CINV_SHARED", ROOT.parent / "shared"))


@pytest.fixture
def shared() -> Path:
    """The project's offline data (../shared beside the checkout, as in CI)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set CINV_SHARED)")
    return SHARED / "data"


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    """An empty MLflow database with MLflow's tables, made once per test process: creating them
    (MLflow's migrations) takes 1.5 s, which every test with a store would pay again."""
    import mlflow

    path = tmp_path_factory.mktemp("store-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(tmp_path, monkeypatch, store_template) -> str:
    """A fresh MLflow tracking store for this test, in-process and for subprocesses."""
    import shutil
    import sqlite3

    import mlflow

    shutil.copyfile(store_template, tmp_path / "mlflow.db")
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # MLflow's Default experiment keeps its artifacts here, too
        db.execute("update experiments set artifact_location = ? where experiment_id = 0", (str(tmp_path / "mlruns" / "0"),))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    with monkeypatch.context() as here:
        here.chdir(tmp_path)  # the experiments' artifacts go under tmp_path/mlruns, not the checkout
        mlflow.MlflowClient().search_experiments()
        mlflow.set_experiment("cinv")  # where cinv's runs go: the test's default experiment too
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment exports it; subprocesses choose their own
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def write_image_folder(root: Path, classes: dict[str, int], size: int = 40, seed: int = 0) -> Path:
    """A small real ImageFolder tree: each class a different base colour plus noise."""
    rng = np.random.default_rng(seed)
    for split, scale in (("train", 1), ("val", 1)):
        for i, (cls, n) in enumerate(classes.items()):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n * scale):
                base = np.zeros((size, size, 3)) + 40 + 60 * i
                pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{j:04d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return write_image_folder(tmp_path / "folder", {"n01": 6, "n02": 6, "n03": 6})


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run an entry point as a user would, in a fresh process."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def check_experiment_run(run_id: str, name: str, rows: int):
    """What every experiment's parent run holds (its table as CSV, Markdown, HTML and a figure) and
    one FINISHED evaluation child per row with the row's accuracy; the table."""
    import mlflow
    import pandas as pd

    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {f"{name}.csv", f"{name}.md", f"{name}.html", f"{name}.png"} <= artifacts
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{name}.csv"))
    assert len(table) == rows
    assert table["top1_mean"].between(0, 100).all()
    evaluated = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    evaluated = evaluated[evaluated["tags.cinv.stage"] == "evaluation"]
    assert len(evaluated) == rows and (evaluated["status"] == "FINISHED").all()
    assert sorted(evaluated["metrics.test_top1_mean"].round(4)) == sorted(table["top1_mean"].round(4))
    return table
