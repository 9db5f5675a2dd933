"""The result pages in docs/results/ are generated from benchmarks/results/*.json by docs/results.py:
a page that no longer matches the file it is rendered from fails here, so no table in the docs
drifts from what was measured. The script uses the standard library only, so this takes seconds."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def results_py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "docs/results.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_result_pages_match_the_results_files():
    proc = results_py("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_names_the_page_a_changed_results_file_feeds(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    where = ["--results", str(results), "--out", str(tmp_path / "docs" / "results"), "--readme", str(tmp_path / "README.md")]
    assert results_py("--check", *where).returncode == 0

    path = results / "benchmark.json"
    data = json.loads(path.read_text())
    data["top1"]["FCL"]["none"][0] += 1.0  # one seed's clean top-1: the benchmark table's mean moves
    path.write_text(json.dumps(data, indent=1))
    proc = results_py("--check", *where)
    assert proc.returncode != 0
    assert "benchmark.md" in proc.stdout and "python docs/results.py" in proc.stdout, proc.stdout
    assert "main_job.md" not in proc.stdout  # only the page that file feeds
    pages = {p.name: p.read_text() for p in (tmp_path / "docs" / "results").glob("*.md")}

    assert results_py(*where).returncode == 0
    assert results_py("--check", *where).returncode == 0
    changed = [p.name for p in (tmp_path / "docs" / "results").glob("*.md") if p.read_text() != pages[p.name]]
    assert changed == ["benchmark.md"]


def test_the_readme_headline_table_is_generated_from_the_main_jobs_seeds(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "benchmarks" / "results", results)
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    where = ["--results", str(results), "--out", str(tmp_path / "pages"), "--readme", str(readme)]
    assert results_py(*where).returncode == 0 and readme.read_text() == (ROOT / "README.md").read_text()
    data = json.loads((results / "main_seeds.json").read_text())
    data["student"][0] += 1.0
    (results / "main_seeds.json").write_text(json.dumps(data))
    proc = results_py("--check", *where)
    assert proc.returncode == 1 and "README.md" in proc.stdout


PLACEHOLDERS = ("<", "/path/to", "SERVER", "/data/", "=/data)", "$", "...")  # a user's own paths and hosts


def documented_commands() -> list[tuple[str, str]]:
    """Every `cinv ...` and `mlflow run ...` line in the README's and the documentation's code
    blocks (continued lines joined, trailing comments dropped), but those with placeholders."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        fenced, pending = False, ""
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("```"):
                fenced, pending = not fenced, ""
                continue
            if not fenced:
                continue
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            if text.startswith(("cinv ", "mlflow run ")) and not any(p in text for p in PLACEHOLDERS):
                found.append((f"{path.relative_to(ROOT)}", text))
    return found


def as_cinv(line: str) -> tuple[str, list[str]]:
    """``mlflow run . -e x -P k=v`` or ``cinv x --k v`` as (command, argv)."""
    import shlex

    words = shlex.split(line, comments=True)
    if words[0] == "cinv":
        return words[1], words[2:]
    command, argv, i = "main", [], 3
    while i < len(words):
        if words[i] == "-e":
            command = words[i + 1]
        elif words[i] == "-P":
            key, _, value = words[i + 1].partition("=")
            argv += [f"--{key}", value]
        elif words[i] in ("--env-manager", "--experiment-name"):
            pass
        else:
            i -= 1
        i += 2
    return command, argv


def test_every_documented_command_line_runs_as_a_dry_run(tmp_path, monkeypatch, capsys):
    from cinv import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'unused.db'}")
    lines = documented_commands()
    assert len(lines) >= 20
    failed = []
    for where, line in lines:
        command, argv = as_cinv(line)
        if "--dry_run" not in argv:
            argv += ["--dry_run", "true"]
        code = cli.run(command, argv)
        err = capsys.readouterr().err
        if code != 0:
            failed.append(f"{where}: {line}\n    {err.strip().splitlines()[-1] if err.strip() else code}")
    assert not failed, "\n".join(failed)
    assert not list(tmp_path.iterdir())  # a dry run writes nothing


def test_the_fcl_readings_file_the_measurement_writes_renders_its_verdict(tmp_path, monkeypatch):
    """The measurement takes many sessions: its file, as benchmarks/fcl_readings.py's own ``save``
    writes it, must render on docs/results/fcl.md with each reading's verdict before the real one lands."""
    import random

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import fcl_readings
    import harness

    monkeypatch.setattr(harness, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(fcl_readings, "write_result", harness.write_result)
    monkeypatch.setattr(harness, "measured_at", lambda: "0123456")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp_path / "results")
    (tmp_path / "results" / "fcl_readings.json").unlink(missing_ok=True)
    out, rng = fcl_readings.empty(), random.Random(0)
    gains = {"sum": {"BAL": 0.0, "BAL+UN": 8.0, "BAL+NUN": 3.0, "rare": 0.5}, "mean": dict.fromkeys(fcl_readings.SETS, 0.0)}
    for seed in range(10):
        xe = {k: 80 + rng.gauss(0, 1) for k in fcl_readings.SETS} | dict.fromkeys(fcl_readings.EXTRA, 0.3)
        out["xe"]["seeds"].append(seed)
        for k, v in xe.items():
            out["xe"]["per_seed"][k].append(round(v, 2))
        for name, reading in out["readings"].items():
            reading["lambda"] = 1e-3
            reading["study"] = {"name": f"fcl-lambda-{name}", "best_trial": 0, "best_value": 77.0,
                                "trials": [{"number": 0, "lam": 1e-3, "state": "COMPLETE", "value": 77.0,
                                            "val": {"0": 70.0, "3": 77.0}, "duration_s": 60.0}]}
            runs = reading["fcl_runs"]
            runs["seeds"].append(seed)
            for k, v in xe.items():
                runs[k].append(round(v + gains[name][k] + rng.gauss(0, 0.5), 2) if k in gains[name] else v)
    fcl_readings.save(out)

    pages, readme = tmp_path / "pages", tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    proc = results_py("--results", str(tmp_path / "results"), "--out", str(pages), "--readme", str(readme))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (pages / "fcl.md").read_text()
    assert "**Verdict for the sum reading (10 seeds): reproduces the paper's claim**" in page
    assert "**Verdict for the mean reading (10 seeds): does not reproduce the paper's claim**" in page
    assert "better on BAL+UN: no" in page and "study `fcl-lambda-sum`" in page

    # Partial files, as the measurement leaves them between sessions, say how far they are.
    for kept, expected in ((3, "**Provisional verdict for the mean reading (3 of the paper's 10 seeds):"),
                           (1, "**No verdict yet for the mean reading**: 1 seed of the paper's 10")):
        runs = out["readings"]["mean"]["fcl_runs"]
        for k in runs:
            runs[k] = runs[k][:kept]
        fcl_readings.save(out)
        proc = results_py("--results", str(tmp_path / "results"), "--out", str(pages), "--readme", str(readme))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        page = (pages / "fcl.md").read_text()
        assert expected in page and "**Verdict for the sum reading (10 seeds)" in page
