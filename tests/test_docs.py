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
