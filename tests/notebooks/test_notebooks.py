"""The research notebooks run from top to bottom with their default parameters.

Each is executed by nbclient in a fresh kernel, in the notebooks directory (where the shipped
sample data lives), and must have its papermill `parameters` cell and no cell in error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
BOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_four_notebooks_are_there() -> None:
    assert [book.stem for book in BOOKS] == [
        "01-fleet-simulation",
        "02-tariff-what-if",
        "03-capacity-planning",
        "04-grid-impact",
    ]


@pytest.mark.parametrize("book", BOOKS, ids=[book.stem for book in BOOKS])
def test_notebook_runs_with_its_default_parameters(book: Path) -> None:
    notebook = nbformat.read(book, as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook has one papermill parameters cell"
    client = nbclient.NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert images, "every notebook shows at least one plot"
