"""Encoders as registered MLflow models: loading by alias, gated promotion, embedding, serving."""

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

import cinv
from cinv import cli, encoders
from cinv.commands.probe import ProbeConfig
from cinv.config.options import DataOptions
from cinv.errors import ModelLoadError
from cinv.evaluation.metrics import Evaluation
from cinv.promotion import decide
from cinv.tracking.models import log_encoder, register
from cinv.training.context import setup
from conftest import ROOT, run_cli, write_image_folder

PROTOCOL = ["--limit_per_class", "20", "--probe_epochs", "5", "--eval_draws", "3", "--corruption", "gaussian_noise(std=0.1)"]


@pytest.fixture
def s():
    return setup(ProbeConfig(data=DataOptions(limit_per_class=20), corruption="gaussian_noise(std=0.1)", device="cpu"))


def log_and_register(s, encoder, name):
    with mlflow.start_run():
        info = log_encoder(s, encoder, method="test")
    register(info, name)
    return info


@pytest.fixture(scope="module")
def pretrained():
    return encoders.get("efficientnet_lite0").eval()


@pytest.fixture(scope="module")
def untrained():
    torch.manual_seed(0)
    return encoders.get("efficientnet_lite0", weights="none").eval()


def test_a_fresh_process_loading_champion_gets_the_same_embeddings(store, s, pretrained, tmp_path):
    log_and_register(s, pretrained, "enc")
    MlflowClient().set_registered_model_alias("enc", "champion", "1")
    images = torch.rand(5, 3, 48, 48)
    torch.save(images, tmp_path / "x.pt")
    script = (
        "import torch, cinv; enc = cinv.load_encoder('models:/enc@champion');"
        f"torch.save(enc(torch.load(r'{tmp_path / 'x.pt'}', weights_only=True)), r'{tmp_path / 'y.pt'}')"
    )
    proc = run_cli(["-c", script], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with torch.no_grad():
        expected = pretrained(images)
    assert torch.allclose(torch.load(tmp_path / "y.pt", weights_only=True), expected, atol=1e-4)
    loaded = cinv.load_encoder("models:/enc/1")
    assert loaded.preprocessing.size == 48 and loaded.embed_dim == 1280
    assert loaded.metadata["method"] == "test" and loaded.metadata["corruption"] == "gaussian_noise(std=0.1)"


def test_pyfunc_serves_image_arrays(store, s, pretrained):
    info = log_and_register(s, pretrained, "enc")
    images = np.random.default_rng(0).random((2, 3, 48, 48), dtype=np.float32)
    out = mlflow.pyfunc.load_model("models:/enc/1").predict(images)
    with torch.no_grad():
        expected = pretrained(torch.from_numpy(images)).numpy()
    assert np.allclose(np.asarray(out), expected, atol=1e-4)
    assert mlflow.models.get_model_info(info.model_uri).signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 3, 48, 48)


def aliases(name):
    return {k: str(v) for k, v in MlflowClient().get_registered_model(name).aliases.items()}


def promote(name, version):
    return cli.run("promote", ["--name", name, "--version", str(version), *PROTOCOL])


def test_promotion_moves_champion_only_on_a_clear_gain(store, s, pretrained, untrained):
    client = MlflowClient()
    # Upwards: an untrained encoder first (the first registered version is champion), then the pretrained one beats it.
    log_and_register(s, untrained, "up")
    assert aliases("up") == {"champion": "1"}
    assert "first registered version" in client.get_model_version("up", "1").tags["cinv.promotion"]
    log_and_register(s, pretrained, "up")
    assert promote("up", 1) == 0 and aliases("up") == {"champion": "1"}  # already champion: nothing to do
    assert promote("up", 2) == 0
    assert aliases("up") == {"champion": "2"}
    assert client.get_model_version("up", "2").tags["cinv.promotion"].startswith("promoted: top-1 gain +")
    assert "promoted: top-1 gain +" in client.get_model_version("up", "2").description  # the decision, in the description

    # Downwards: the pretrained champion is not replaced by the untrained candidate.
    log_and_register(s, pretrained, "down")
    log_and_register(s, untrained, "down")
    assert promote("down", 1) == 0 and promote("down", 2) == 0
    assert aliases("down") == {"champion": "1", "challenger": "2"}
    reason = client.get_model_version("down", "2").tags["cinv.promotion"]
    assert reason.startswith("not promoted: top-1 gain -")

    # A tie (the same weights, the same protocol, so identical draws) does not meet the margin.
    log_and_register(s, pretrained, "down")
    assert promote("down", 3) == 0
    assert aliases("down") == {"champion": "1", "challenger": "3"}
    assert "gain +0.00 <= margin 0.00" in client.get_model_version("down", "3").tags["cinv.promotion"]

    run = mlflow.search_runs(filter_string="tags.`cinv.candidate` = 'down/3'", output_format="list")[0]
    table = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/promotion.csv"))
    assert list(table.columns) == ["draw", "v3", "v1", "difference"]
    assert list(table["draw"]) == ["0", "1", "2", "mean", "s.e."]


def test_a_failed_evaluation_is_never_promoted(store, s, pretrained, tmp_path):
    log_and_register(s, pretrained, "broken")
    log_and_register(s, pretrained, "broken")
    folder = write_image_folder(tmp_path / "d", {"a": 3, "b": 3})
    (folder / "val" / "b" / "0001.png").write_bytes(b"broken")
    code = cli.run("promote", ["--name", "broken", "--dataset", str(folder), "--num_workers", "0", "--eval_draws", "2",
                               "--probe_epochs", "1", "--image_size", "48"])
    assert code == 2
    assert aliases("broken") == {"champion": "1"}
    assert MlflowClient().get_model_version("broken", "2").tags["cinv.promotion"].startswith("evaluation failed")


def evaluation(values):
    return Evaluation([{"top1": v, "top5": 100.0} for v in values])


def test_decision_rule():
    champion = evaluation([50.0, 51.0, 49.0, 50.0])
    assert decide(evaluation([55.0, 56.0, 54.0, 55.0]), champion).promote  # +5, zero spread: clear
    noisy = decide(evaluation([52.0, 49.0, 53.0, 48.0]), champion)  # +0.5 with a large spread
    assert not noisy.promote and noisy.margin > noisy.gain > 0
    assert noisy.gain_se == pytest.approx(np.std([2, -2, 4, -2], ddof=1) / 2)
    assert not decide(evaluation([40.0] * 4), champion).promote
    assert decide(evaluation([40.0] * 4), None).promote
    assert decide(evaluation([50.6, 51.6, 49.6, 50.6]), champion, margin_se=0).promote
    with pytest.raises(ValueError, match="same draws"):
        decide(evaluation([1.0, 2.0]), champion)
    assert math.isnan(decide(evaluation([1.0]), None).gain)


def test_load_errors_are_one_clear_message(store, s, pretrained, tmp_path, monkeypatch):
    log_and_register(s, pretrained, "enc")
    with pytest.raises(ModelLoadError, match="alias challenger not found"):
        cinv.load_encoder("models:/enc@challenger")
    with pytest.raises(ModelLoadError, match="name=nope not found"):
        cinv.load_encoder("models:/nope/1")
    encoder = cinv.load_encoder("models:/enc/1")
    with pytest.raises(ValueError, match=r"expects images \[N, 3, 48, 48\] in \[0, 1\]; got \(2, 3, 32, 32\)"):
        encoder(torch.rand(2, 3, 32, 32))
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not a database")
    mlflow.set_tracking_uri(f"sqlite:///{garbage}")
    with pytest.raises(ModelLoadError, match="cannot read the MLflow store .*garbage.db.*not a database"):
        cinv.load_encoder("models:/enc/1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{garbage}")
    proc = run_cli([str(ROOT / "entrypoints/embed.py"), "--images", str(tmp_path)], cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr[-3000:]


def test_embed_writes_parquet_and_logs_it(store, s, pretrained, tmp_path):
    log_and_register(s, pretrained, "enc")
    MlflowClient().set_registered_model_alias("enc", "champion", "1")
    folder = write_image_folder(tmp_path / "imgs", {"a": 2, "b": 3})
    out = tmp_path / "clean.parquet"
    assert cli.run("embed", ["--model", "models:/enc@champion", "--images", str(folder / "train"), "--output", str(out)]) == 0
    clean = pd.read_parquet(out)
    assert len(clean) == 5 and sorted(clean["file"])[0] == "a/0000.png"
    assert len(clean["embedding"][0]) == 1280
    run = mlflow.search_runs(filter_string="tags.`cinv.command` = 'embed'", output_format="list")[0]
    assert "clean.parquet" in {a.path for a in MlflowClient().list_artifacts(run.info.run_id)}
    masked = tmp_path / "masked.parquet"
    assert cli.run("embed", ["--model", "models:/enc@champion", "--images", str(folder / "train"), "--output", str(masked),
                             "--corruption", "random_mask(fraction=0.9)"]) == 0
    assert not np.allclose(np.stack(clean["embedding"]), np.stack(pd.read_parquet(masked)["embedding"]))
    assert cli.run("embed", ["--model", "models:/enc@nope", "--images", str(folder)]) == 2


def test_evaluate_refuses_an_encoder(store, s, pretrained):
    log_and_register(s, pretrained, "enc")
    assert cli.run("evaluate", ["--model", "models:/enc/1", "--limit_per_class", "2"]) == 2
    run = mlflow.search_runs(filter_string="tags.`cinv.command` = 'evaluate'", output_format="list")[0]
    assert "not a classifier" in run.data.tags["cinv.error"]


def _move(name, champion, candidate, gain, run_id, barrier, results):
    from cinv.promotion import move_champion

    barrier.wait()
    results.put((candidate.version, move_champion(name, champion, candidate, run_id, gain, "p")))


def test_two_promotions_against_one_champion_leave_the_larger_gain_as_champion(store, s, untrained):
    """Both clear the gate against the same @champion at the same instant: the succession is a
    compare-and-set, and the one with the smaller gain never ends as @champion, whichever claims
    first (6 rounds of forked pairs, the larger gain alternating between the two, each round
    against the champion the last one left)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    client = MlflowClient()
    for _ in range(3):
        log_and_register(s, untrained, "race")
    for round_ in range(6):
        versions = {int(v.version): v for v in client.search_model_versions("name = 'race'")}
        champion = versions[int(aliases("race")["champion"])]
        candidates = [v for n, v in sorted(versions.items()) if v.version != champion.version]
        gains = {c.version: 3.33 if (i + round_) % 2 else 2.92 for i, c in enumerate(candidates)}
        barrier, results = fork.Barrier(2), fork.Queue()
        workers = [fork.Process(target=_move, args=("race", champion, c, gains[c.version], f"run-{round_}-{c.version}",
                                                    barrier, results)) for c in candidates]
        for w in workers:
            w.start()
        for w in workers:
            w.join(90)
        outcomes = dict(results.get(timeout=10) for _ in workers)
        best = max(gains, key=gains.get)
        assert aliases("race")["champion"] == str(best), (round_, gains, outcomes)
        assert outcomes[best] is None, outcomes  # it moved @champion, first or after the other
        (worse,) = [v for v in gains if v != best]
        assert outcomes[worse] is None or "took @champion from" in outcomes[worse], outcomes
    # A different protocol is not a comparison: the one that claimed first keeps it.
    versions = {int(v.version): v for v in client.search_model_versions("name = 'race'")}
    champion = versions[int(aliases("race")["champion"])]
    first, second = [v for n, v in sorted(versions.items()) if v.version != champion.version]
    from cinv.promotion import move_champion

    assert move_champion("race", champion, first, "run-a", 1.0, "p") is None
    said = move_champion("race", champion, second, "run-b", 9.0, "q")
    assert "took @champion from" in said and aliases("race")["champion"] == str(first.version)
