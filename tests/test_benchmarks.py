"""Benchmark scripts whose real run needs a machine this one is not: their code, checked here."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT


@pytest.mark.slow
def test_the_gpu_check_refuses_a_cpu_and_runs_its_code_there_as_a_smoke_run(tmp_path, shared):
    """benchmarks/gpu_check.py on a machine without CUDA: a clear refusal, or with --smoke the
    checks' code at toy sizes (here the paper preset's student steps on the folder of JPEGs)."""
    if torch.cuda.is_available():
        pytest.skip("a GPU machine runs the real check (benchmarks/gpu_check.sh)")
    script = [sys.executable, "benchmarks/gpu_check.py", "--samples", str(shared / "imagenet-samples")]
    refused = subprocess.run([*script, "--out", str(tmp_path / "gpu.json")], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "no CUDA device here" in refused.stderr and not (tmp_path / "gpu.json").exists()
    smoke = subprocess.run([*script, "--smoke", "--only", "paper_step", "--out", str(tmp_path / "smoke.json")], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert smoke.returncode == 0, smoke.stderr[-2000:]
    result = json.loads((tmp_path / "smoke.json").read_text())
    step = result["checks"]["paper_step"]
    assert result["smoke"] and step["finite"] and step["steps"] == 6 and step["options"]["lr"] == 1e-4
    assert result["paper_step_img_s"] == step["img_s"] > 0 and result["gpu_tests"]["passed"] is None
