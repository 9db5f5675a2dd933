"""Notebooks are part of the product: stored without outputs, and run top to bottom against a
small store that this test creates."""

import nbformat
import pytest

import cinv
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL = {"limit_per_class": 20, "image_size": 32}


def test_the_three_notebooks_exist_and_are_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_compare.ipynb", "03_use_an_encoder.ipynb"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name
        assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: first code cell holds the parameters"


def test_the_sites_executed_copies_hold_the_notebooks_current_code():
    """docs/notebooks/ holds what ``python docs/notebooks.py`` executed: rerun it when a notebook changes."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("site_notebooks", ROOT / "docs" / "notebooks.py")
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    assert not site.stale()
    for path in sorted(site.SITE.glob("*.ipynb")):
        executed = nbformat.read(path, as_version=4)
        assert any(cell.get("outputs") for cell in executed.cells if cell.cell_type == "code"), path.name
        text = path.read_text()
        assert "/tmp/" not in text and "site-packages" not in text, path.name  # no machine's path published
        assert not executed.metadata.papermill.input_path.startswith("/"), path.name


@pytest.mark.slow
def test_notebooks_run_top_to_bottom(store, tmp_path):
    import papermill

    def execute(name, **parameters):
        papermill.execute_notebook(ROOT / "notebooks" / name, tmp_path / name, parameters={"tracking_uri": store, **parameters},
                                   kernel_name="python3", cwd=str(tmp_path), progress_bar=False)

    execute("01_quickstart.ipynb", quick=True)
    # More for the others to read: a champion and a label fraction.
    cinv.run_command("promote", name="cinv-student", probe_epochs=2, eval_draws=2, **SMALL)
    cinv.run_command("probe", label_fraction=0.5, epochs=2, eval_draws=2, **SMALL)
    execute("02_compare.ipynb")
    execute("03_use_an_encoder.ipynb")
    executed = nbformat.read(tmp_path / "03_use_an_encoder.ipynb", as_version=4)
    assert any(output.get("output_type") == "display_data" for cell in executed.cells for output in cell.get("outputs", []))
