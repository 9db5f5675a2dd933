"""The fault table: bad inputs and failures, each with its exit code, its one-line message, and
what must still hold afterwards. The documentation's troubleshooting section (docs/reliability.md) lists the same rows."""

from __future__ import annotations

import errno
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from cinv import cli
from cinv.encoders import weights
from cinv.losses import inversion
from cinv.training.checkpoint import Checkpointer
from conftest import ROOT, write_image_folder

TINY = ["--limit_per_class", "4", "--image_size", "32"]
STUDENT = [*TINY, "--epochs", "1", "--batch_size", "8"]


@dataclass
class Fault:
    name: str
    command: str
    args: Callable[[Path], list[str]]
    code: int
    message: str  # what the one error line says (a regular expression)
    setup: Callable[[pytest.MonkeyPatch, Path], None] | None = None
    check: Callable[[mlflow.entities.Run], None] | None = None  # what must hold afterwards
    no_store: bool = False  # the store itself cannot be used: nothing is started, and the command fails at once
    quiet: bool = False  # nothing but the one line on stderr (no library's warnings)


def folder(tmp: Path, broken: str | None = None, empty: bool = False) -> Path:
    root = write_image_folder(tmp / "data", {"n1": 3, "n2": 3})
    if broken:
        (root / broken).write_bytes(b"not an image")
    if empty:
        for f in root.rglob("*.png"):
            f.unlink()
    return root


def offline(monkeypatch, tmp):
    import huggingface_hub.constants

    monkeypatch.setattr(weights, "host_reachable", lambda host: False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp / "hf"))


def unreachable_store(monkeypatch, tmp):
    store_at("http://127.0.0.1:9")(monkeypatch, tmp)


def disk_full(monkeypatch, tmp):
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalArtifactRepository, "log_artifacts", full)


def nan_after_first_step(monkeypatch, tmp):
    calls = {"n": 0}
    original = inversion.StudentTeacherLoss.compute

    def compute(self, s, t):
        calls["n"] += 1
        return original(self, s, t) * (float("nan") if calls["n"] == 2 else 1.0)

    monkeypatch.setattr(inversion.StudentTeacherLoss, "compute", compute)


def finished_student(monkeypatch, tmp):
    assert cli.run("student", STUDENT) == 0


def store_at(uri: str):
    def setup(monkeypatch, tmp):
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")  # MLflow's own default would retry for minutes
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri.format(tmp=tmp))
        mlflow.set_tracking_uri(uri.format(tmp=tmp))
    return setup


def garbage_store(monkeypatch, tmp):
    (tmp / "g.db").write_bytes(bytes(range(256)) * 16)  # 4 KiB that are not an SQLite file
    store_at("sqlite:///{tmp}/g.db")(monkeypatch, tmp)


def folder_as_store(monkeypatch, tmp):
    (tmp / "db-folder").mkdir()
    store_at("sqlite:///{tmp}/db-folder")(monkeypatch, tmp)


def foreign_sqlite_store(monkeypatch, tmp):
    import sqlite3

    with sqlite3.connect(tmp / "crm.db") as db:  # another application's database
        db.execute("create table customers (id integer primary key, name text)")
    store_at("sqlite:///{tmp}/crm.db")(monkeypatch, tmp)


def read_only_folder(monkeypatch, tmp):
    import os

    (tmp / "ro").mkdir()
    real = os.access
    # chmod does not stop root (CI runs as root): the same answer the kernel gives a normal user.
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if str(path).endswith("ro") and mode & os.W_OK
                        else real(path, mode, **kw))
    store_at("sqlite:///{tmp}/ro/mlflow.db")(monkeypatch, tmp)


class Payload:
    """What a pickled model can do when it is loaded: run code (here: write a file)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code ran while loading")


def pickled_model(monkeypatch, tmp):
    import torch

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer, self.payload = torch.nn.Linear(2, 2), Payload(str(tmp / "pwned"))

    monkeypatch.setattr(Module, "__module__", __name__)
    monkeypatch.setitem(globals(), "Module", Module)
    Module.__qualname__ = "Module"
    with mlflow.start_run():
        info = mlflow.pytorch.log_model(Module(), name="encoder", serialization_format="pickle",
                                        metadata={"cinv": {"image_size": 32, "kind": "encoder"}})
    (tmp / "images").mkdir()
    write_image_folder(tmp / "images", {"a": 1})
    (tmp / "model_uri").write_text(info.model_uri)


def code_did_not_run(run):
    failed(run)
    assert not (Path.cwd() / "pwned").exists()


def failed_validation(monkeypatch, tmp):
    assert cli.run("student", [*STUDENT, "--lr", "-1"]) == 2  # FAILED before any training: nothing to resume


def left_as_it_was(run):
    """A refused resume does not touch the run: still FAILED, not marked resumed, no new error."""
    assert run.info.status == "FAILED" and "cinv.resumed" not in run.data.tags and "cinv.error" not in run.data.tags


def rejected_by_validation_untouched(run):
    assert run.info.status == "FAILED" and "cinv.resumed" not in run.data.tags


def secrets_never_written(run):
    failed(run)
    written = [*run.data.params.values(), *run.data.tags.values(),
               mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.json")]
    assert not any("SECRET" in text for text in written)
    assert any("password=***" in text for text in written)


def one_class(tmp):
    return write_image_folder(tmp / "data", {"only": 3})


def failed(run):
    assert run.info.status == "FAILED" and run.data.tags.get("cinv.error")


def nothing_started(run):
    """Refused by validation, before the first stage: no child run, no model, the reason on the run."""
    failed(run)
    assert mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                              output_format="list") == []
    assert mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list") == []


def nothing_registered(run):
    failed(run)
    assert MlflowClient().search_registered_models() == []


def checkpoint_kept(run):
    failed(run)
    assert Checkpointer(run.info.run_id).latest()["step"] == 1


def untouched(run):
    assert run.info.status == "FINISHED" and "cinv.error" not in run.data.tags


def counted(run):
    assert run.info.status == "FINISHED" and run.data.metrics["skipped_images"] == 1


FAULTS = [
    Fault("unknown corruption", "main", lambda t: ["--corruption", "speckle"], 2, "corruption: unknown corruption 'speckle'", check=failed),
    Fault("unknown loss", "main", lambda t: ["--student_loss", "clip"], 2, "student_loss: unknown loss 'clip'", check=failed),
    Fault("unknown encoder", "main", lambda t: ["--teacher", "resnet"], 2, "teacher: unknown encoder 'resnet'", check=failed),
    Fault("out-of-range corruption", "main", lambda t: ["--corruption", "random_mask(fraction=1.5)"], 2,
          r"fraction must be a float in \[0, 1\]", check=failed),
    Fault("negative learning rate", "main", lambda t: ["--student_lr", "-0.1"], 2, "student_lr: Input should be greater than 0",
          check=failed),
    Fault("registered model name MLflow refuses", "main", lambda t: ["--student_registered_model_name", "team/student"], 2,
          "student_registered_model_name: 'team/student' cannot be a registered model name", check=nothing_started),
    Fault("seed beyond 32 bits", "main", lambda t: ["--seed", str(2**70)], 2, "seed: Input should be less than or equal to",
          check=nothing_started),
    Fault("spec of 100k unary minuses", "main", lambda t: ["--corruption", f"gaussian_noise(std={'-' * 100_000}1)"], 2,
          "corruption: spec is 100,021 characters long", check=nothing_started),
    Fault("spec nested too deeply", "main", lambda t: ["--corruption", f"gaussian_noise(std={'-' * 3_000}1)"], 2,
          "corruption: cannot parse the spec .*nested too deeply", check=nothing_started),
    Fault("blur kernel wider than any image", "main", lambda t: ["--corruption", "gaussian_blur(kernel_size=99999, sigma=5)"],
          2, "corruption: gaussian_blur: kernel_size must be a positive odd integer up to 2047", check=nothing_started),
    Fault("registered model name of 1000 characters", "student", lambda t: [*STUDENT, "--registered_model_name", "m" * 1000],
          2, "registered_model_name: a registered model name has at most 256 characters", check=nothing_started),
    Fault("experiment in MLflow's trash", "student", lambda t: [*STUDENT, "--experiment_name", "binned"], 2,
          r"experiment 'binned' is in MLflow's trash: restore it \(mlflow experiments restore --experiment-id \d+\), purge it",
          setup=lambda mp, t: MlflowClient().delete_experiment(MlflowClient().create_experiment("binned")), no_store=True),
    Fault("number too large in a spec", "main", lambda t: ["--corruption", f"patch_gaussian(patch_size=(1, {10**30}))"], 2,
          "corruption: in .*patch_size holds 10+: numbers must be finite", check=nothing_started),
    Fault("a file that is not weights", "student", lambda t: [*STUDENT, "--teacher_weights", "/etc/passwd"], 2,
          "teacher_weights: /etc/passwd is not a PyTorch checkpoint", check=nothing_started),
    Fault("misspelled parameter", "main", lambda t: ["--studnet_lr", "0.1"], 2, r"unknown argument\(s\) --studnet_lr 0.1",
          check=failed),
    Fault("missing dataset folder", "main", lambda t: ["--dataset", str(t / "nowhere")], 2, "dataset folder .* not found",
          check=failed),
    Fault("missing class list", "main", lambda t: ["--dataset", str(folder(t)), "--class_list", str(t / "nope.txt")], 2,
          "class list .*nope.txt not found", check=failed),
    Fault("empty dataset", "main", lambda t: ["--dataset", str(folder(t, empty=True))], 2, "no images found", check=failed),
    Fault("unreadable image", "main", lambda t: ["--dataset", str(folder(t, broken="val/n2/0001.png")), "--num_workers", "0"],
          2, "cannot read image .*0001.png", check=nothing_registered),
    Fault("unreadable image, skip_bad_images=true", "student",
          lambda t: ["--dataset", str(folder(t, broken="train/n1/0001.png")), "--skip_bad_images", "true",
                     "--num_workers", "0", "--epochs", "1", "--batch_size", "4", "--image_size", "32"],
          0, "", check=counted),
    Fault("embed output is a folder", "embed", lambda t: ["--images", str(folder(t)), "--output", str(t)], 2,
          "output: .* is a folder; give the Parquet file to write", check=nothing_started),
    Fault("unreadable image in embed, skip_bad_images=true", "embed",
          lambda t: ["--images", str(folder(t, broken="train/n1/0001.png")), "--output", str(t / "e.parquet"),
                     "--skip_bad_images", "true"], 0, "", setup=finished_student, check=counted),
    Fault("pretrained weights missing offline", "main", lambda t: ["--teacher", "open_clip:RN50"], 2,
          "open_clip RN50 weights 'openai' are not cached and cannot be downloaded here", setup=offline, check=failed),
    Fault("MLflow store unreachable", "student", lambda t: STUDENT, 2,
          "MLflow store http://127.0.0.1:9 cannot be used: .*Connection refused", setup=unreachable_store, no_store=True),
    Fault("disk full while logging the model", "student", lambda t: [*STUDENT, "--registered_model_name", "x"], 2,
          r"logging model student_encoder failed writing to \S*/mlruns/\S* \(4 attempts\): No space left on device", setup=disk_full, check=nothing_registered),
    Fault("non-finite loss", "student", lambda t: [*STUDENT, "--checkpoint_every_steps", "1"], 2,
          "loss became nan at epoch 1, step 2", setup=nan_after_first_step, check=checkpoint_kept),
    Fault("resuming a finished run", "student",
          lambda t: ["--resume_run_id", mlflow.search_runs(output_format="list")[0].info.run_id], 2,
          r"run \w+ already FINISHED; nothing to resume", setup=finished_student, check=untouched),
    Fault("nothing to resume", "student", lambda t: ["--resume_run_id", "latest"], 2,
          "no student run in experiment .* to resume", setup=finished_student, check=untouched),
    Fault("resuming with other parameters", "student",
          lambda t: [*STUDENT[:-2], "--batch_size", "4", "--resume_run_id", mlflow.search_runs(output_format="list")[0].info.run_id],
          2, r"run \w+ started with other parameters: student_batch_size=4 \(the run has 8\); resume with the same ones",
          setup=lambda m, t: (finished_student(m, t), MlflowClient().set_terminated(
              mlflow.search_runs(output_format="list")[0].info.run_id, "FAILED")), check=left_as_it_was),
    Fault("unknown registered model", "evaluate", lambda t: ["--model", "models:/nope@champion", *TINY], 2,
          "cannot load models:/nope@champion: Registered Model with name=nope not found", check=failed),
    Fault("password in the Optuna storage URL", "tune",
          lambda t: [*TINY, "--n_trials", "1", "--storage", "postgresql+psycopg://cinv@127.0.0.1:9/optuna?password=SECRET"],
          2, r"postgresql\+psycopg://cinv@127.0.0.1:9/optuna\?password=\*\*\*", check=secrets_never_written),
    Fault("password in the tracking URI", "student", lambda t: STUDENT, 2,
          r"MLflow store http://user:\*\*\*@127.0.0.1:9 cannot be used: .*Connection refused",
          setup=store_at("http://user:SECRET@127.0.0.1:9"), no_store=True),
    Fault("password with a raw # in the tracking URI", "student", lambda t: STUDENT, 2,
          r"MLflow store http://alice:\*\*\*@127.0.0.1:9: its user-info is not user:password .*percent-encode the password",
          setup=store_at("http://alice:pa#SECRET@127.0.0.1:9"), no_store=True),
    Fault("unreachable PostgreSQL store", "student", lambda t: STUDENT, 2,
          r"MLflow store postgresql\+psycopg://cinv:\*\*\*@127.0.0.1:9/mlflow cannot be used: .*(refused|failed)",
          setup=store_at("postgresql+psycopg://cinv:SECRET@127.0.0.1:9/mlflow"), no_store=True, quiet=True),
    Fault("store file that is not SQLite", "student", lambda t: STUDENT, 2, r"MLflow store sqlite:///.*g.db: .*g.db is not an "
          "SQLite database", setup=garbage_store, no_store=True),
    Fault("store folder read-only", "student", lambda t: STUDENT, 2, r"folder .*ro is read-only \(the database cannot be created\)",
          setup=read_only_folder, no_store=True),
    Fault("folder as the database path", "student", lambda t: STUDENT, 2, r"MLflow store sqlite:///.*db-folder: .* is a folder",
          setup=folder_as_store, no_store=True),
    Fault("another application's SQLite database", "student", lambda t: STUDENT, 2,
          r"crm.db is another application's SQLite database \(tables: customers\)", setup=foreign_sqlite_store,
          no_store=True),
    Fault("file store (refused by MLflow 3)", "student", lambda t: STUDENT, 2,
          "MLflow store file://.* cannot be used: The filesystem tracking backend .* is in maintenance mode",
          setup=store_at("file://{tmp}/mlruns"), no_store=True),
    Fault("unknown store scheme", "student", lambda t: STUDENT, 2, "MLflow store foo://bar cannot be used: .*unsupported URI",
          setup=store_at("foo://bar"), no_store=True),
    Fault("a model saved with pickle", "embed",
          lambda t: ["--model", (t / "model_uri").read_text(), "--images", str(t / "images")], 2,
          r"refusing to load models:/\S+: it is saved with pickle, which runs code while loading", setup=pickled_model,
          check=code_did_not_run),
    Fault("resume latest without a resumable run", "student", lambda t: ["--resume_run_id", "latest"], 2,
          "no student run in experiment .* to resume .*with a checkpoint", setup=failed_validation,
          check=rejected_by_validation_untouched),
    Fault("one-class dataset", "main", lambda t: ["--dataset", str(one_class(t))], 2, "1 class .*needs at least two",
          check=failed),
    Fault("repeated keyword in a corruption spec", "main", lambda t: ["--corruption", "random_mask(fraction=0.5, fraction=0.9)"],
          2, "fraction is given twice", check=failed),
    Fault("unavailable device", "student", lambda t: [*STUDENT, "--device", "mps"], 2, "MPS is not available", check=failed),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(fault: Fault, store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if fault.setup:
        fault.setup(monkeypatch, tmp_path)
    usable = not fault.no_store
    before = {r.info.run_id for r in mlflow.search_runs(output_format="list")} if usable else set()
    capsys.readouterr()
    started = time.monotonic()
    code = cli.run(fault.command, fault.args(tmp_path))
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == fault.code, err[-3000:]
    assert "SECRET" not in out + err  # no credential is ever printed
    lines = [line for line in err.splitlines() if ": error: " in line]
    if not usable:
        assert took < 30, f"a store that cannot be used must fail at once, not after {took:.0f} s of retries"
        assert len(lines) == 1 and re.search(fault.message, lines[0]) and "Traceback" not in err, err[-3000:]
        assert not fault.quiet or err.strip().splitlines() == lines, err[-3000:]
        return
    if fault.code:
        assert len(lines) == 1 and re.search(fault.message, lines[0]), err[-3000:]
        assert "Traceback" not in err
    else:
        assert not lines
    if fault.check:
        new = [r for r in mlflow.search_runs(output_format="list") if r.info.run_id not in before]
        fault.check(new[0] if new else mlflow.search_runs(output_format="list")[0])


def test_the_troubleshooting_page_lists_every_fault():
    page = (ROOT / "docs" / "reliability.md").read_text()
    section = page[page.index("## Troubleshooting"):]
    for fault in FAULTS:
        assert f"| {fault.name} |" in section, fault.name


def test_another_applications_sqlite_database_is_left_untouched(tmp_path, monkeypatch):
    import sqlite3

    foreign_sqlite_store(monkeypatch, tmp_path)
    assert cli.run("student", STUDENT) == 2
    with sqlite3.connect(tmp_path / "crm.db") as db:
        assert {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")} == {"customers"}


def _probe(uri: str, barrier, results) -> None:
    from cinv.tracking.store import check_store

    mlflow.set_tracking_uri(uri)
    barrier.wait()
    try:
        check_store()
        results.put("ok")
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def test_commands_starting_together_on_a_fresh_sqlite_store_all_start(tmp_path):
    """MLflow creates its tables without a lock: cinv serialises the creation (4 processes at once, 3 fresh stores)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    for attempt in range(3):
        uri = f"sqlite:///{tmp_path}/fresh-{attempt}.db"
        barrier, results = fork.Barrier(4), fork.Queue()
        workers = [fork.Process(target=_probe, args=(uri, barrier, results)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert [results.get(timeout=10) for _ in workers] == ["ok"] * 4, attempt


def test_a_command_that_finds_a_store_half_migrated_waits_for_the_migration(tmp_path, store_template):
    """Whoever finds MLflow's tables half made (another command migrating the store: its tables
    appear one migration at a time) waits for the migration, however long it takes, instead of
    failing on the missing tables. The migrating command is played here by the test: it holds the
    creation lock over a store with MLflow's first tables only, and completes it once the waiting
    command holds the lock file open (a condition, not a sleep)."""
    import fcntl
    import shutil
    import sqlite3
    import subprocess

    import psutil

    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:  # what a migration leaves after its first steps
        conn.execute("create table experiments (experiment_id integer primary key, name varchar(256))")
        conn.execute("create table alembic_version (version_num varchar(32) not null)")
        conn.execute("insert into alembic_version values ('451aebb31d03')")
    lock_path = tmp_path / ".mlflow.db.create-lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_EXPERIMENT_")},
               "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "TQDM_DISABLE": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "cinv.cli", "student", *STUDENT, "--system_metrics", "false"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if str(lock_path) in {f.path for f in psutil.Process(proc.pid).open_files()}:
                    break
            except psutil.Error:
                pass
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1][-3000:]  # it did not fail on the half-made store
        shutil.copyfile(store_template, db)  # the migration completes
        fcntl.flock(lock, fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def test_a_working_directory_with_a_percent_keeps_its_artifacts_there(tmp_path, monkeypatch):
    """MLflow gives a local store's experiment the plain path <cwd>/mlruns/<id> and reads it back
    as a URI: from `a%20b` the artifacts went to `a b`. cinv creates the experiment with an encoded
    location, and refuses an existing experiment with that fault before writing anything."""
    here = tmp_path / "a%20b"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    assert cli.run("student", STUDENT) == 0
    assert not (tmp_path / "a b").exists()
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    model = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")[0]
    assert Path(mlflow.artifacts.download_artifacts(model.artifact_location)).is_relative_to(here / "mlruns")
    assert any((here / "mlruns").rglob("MLmodel"))

    mlflow.MlflowClient().create_experiment("made-by-mlflow")  # MLflow's own location: <cwd>/mlruns/<id>, unencoded
    assert cli.run("student", [*STUDENT, "--experiment_name", "made-by-mlflow"]) == 2
    assert not (tmp_path / "a b").exists()
    assert not mlflow.search_runs(experiment_names=["made-by-mlflow"], output_format="list")


def _write_and_die(path) -> None:
    import os
    import sqlite3

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma cache_size=1")  # the write spills to the file before any commit
    db.execute("begin")
    db.executemany("insert into tags (key, value, run_uuid) values (?, ?, ?)",
                   [(f"k{i}", "x" * 1000, "none") for i in range(2000)])
    os._exit(0)  # no commit and no rollback, as under SIGKILL


def test_a_store_left_mid_write_by_a_killed_process_can_be_used_again(store, tmp_path):
    """A process killed while writing leaves a hot journal beside the SQLite file; the next command
    must roll it back (SQLite's recovery) and start, not fail reading the file read-only."""
    import multiprocessing

    db = tmp_path / "mlflow.db"
    dying = multiprocessing.get_context("fork").Process(target=_write_and_die, args=(str(db),))
    dying.start()
    dying.join(60)
    assert Path(f"{db}-journal").exists()  # the hot journal the killed writer left
    assert cli.run("student", STUDENT) == 0
    assert mlflow.search_runs(output_format="list")[0].info.status == "FINISHED"


@pytest.mark.parametrize("uri, password", [
    ("http://alice:1234#SECRETxq@127.0.0.1:9", "1234#SECRETxq"),  # before the '#': a host and a port to urllib3
    ("http://tok3nABC#r3st9@127.0.0.1:9", "tok3nABC#r3st9"),  # a token as the user name, cut at the '#'
    ("http://alice:pa'sQzWxV@127.0.0.1:9", "pa'sQzWxV"),
    ('http://alice:pa"sQzWxV@127.0.0.1:9', 'pa"sQzWxV'),
    ("http://alice:pa sQzWxV@127.0.0.1:9", "pa sQzWxV"),
    ("http://alice:pa<sQzWxV>@127.0.0.1:9", "pa<sQzWxV>"),
    ("http://alice:pa%2sQzWxV@127.0.0.1:9", "pa%2sQzWxV"),
])
def test_no_part_of_a_password_that_does_not_parse_is_shown_or_sent(uri, password, tmp_path, monkeypatch, capsys):
    """A user-info that is not cleanly user:password is refused before any connection, in one line
    that names the fix, and no 4-character piece of the password appears anywhere."""
    monkeypatch.chdir(tmp_path)
    store_at(uri)(monkeypatch, tmp_path)
    sent = []
    monkeypatch.setattr("socket.getaddrinfo", lambda host, *a, **k: sent.append(host) or [])  # no lookup, no connection
    code = cli.run("student", STUDENT)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2 and len(lines) == 1 and "percent-encode the password" in lines[0], err[-2000:]
    assert not sent, sent
    pieces = {password[i:i + 4] for i in range(len(password) - 3)} | {password.lower()[i:i + 4] for i in range(len(password) - 3)}
    assert not [p for p in pieces if p in out + err], (pieces, err[-2000:])
    assert not list(tmp_path.glob("*.db"))


def test_an_unreadable_image_read_by_loader_workers_ends_the_command_at_once(tmp_path, monkeypatch):
    """The run is marked FAILED in one line and the process exits within seconds, leaving no
    loader worker behind (its workers ignore SIGTERM, and the loader's own shutdown, then
    multiprocessing's at exit, used to wait on them forever)."""
    import psutil

    from conftest import ROOT, run_cli

    root = folder(tmp_path, broken="train/n1/0000.png")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for leftover in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # another test's experiment, not in this store
        monkeypatch.delenv(leftover, raising=False)
    started = time.monotonic()
    proc = run_cli([str(ROOT / "entrypoints" / "student.py"), "--dataset", str(root), "--num_workers", "2", "--epochs", "1",
                    "--batch_size", "4", "--image_size", "32", "--system_metrics", "false"], cwd=tmp_path, timeout=300)
    took = time.monotonic() - started
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert proc.returncode == 2 and len(lines) == 1 and "cannot read image" in lines[0], proc.stderr[-3000:]
    assert took < 120, f"{took:.0f} s"  # about 10 s on 2 loaded cores; it used to hang until killed
    left = [p for p in psutil.process_iter(["cmdline"]) if str(root) in " ".join(p.info["cmdline"] or [])]
    assert not left, left
