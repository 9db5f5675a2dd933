"""The command reference and the README's command list are generated from the configs, and stay so."""

import subprocess
import sys

from conftest import ROOT


def test_the_command_pages_match_the_configs_and_a_stale_page_fails_the_check(tmp_path):
    assert subprocess.run([sys.executable, "docs/commands.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True).returncode == 0
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    out = tmp_path / "docs"
    subprocess.run([sys.executable, "docs/commands.py", "--out", str(out), "--readme", str(readme)], cwd=ROOT, check=True)
    page = out / "commands" / "rocl.md"
    assert "| `probe_optimizer` |" in page.read_text()  # every parameter, as --help lists it
    page.write_text(page.read_text().replace("| `probe_optimizer` |", "| `probe_optimiser` |"))
    stale = subprocess.run([sys.executable, "docs/commands.py", "--check", "--out", str(out), "--readme", str(readme)],
                           cwd=ROOT, capture_output=True, text=True)
    assert stale.returncode == 1 and "rocl.md differs" in stale.stdout


def test_the_readme_is_a_first_screen_with_links_into_the_documentation():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in ("docs/getting-started.md", "docs/commands/reference.md", "docs/results/index.md", "CONTRIBUTING.md"):
        assert f"]({page})" in readme and (ROOT / page).is_file()
