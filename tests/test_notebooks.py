"""The notebooks run top to bottom on the CPU, with a real kernel (nbclient), and are stored without outputs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# lines a notebook's printed output must contain: what it shows really happened
PRINTED = {
    "01_quickstart": [
        "synth_colour   held-out accuracy",  # measured before GRPO and after it, from the warm-up
        "synth_shape    held-out accuracy",
    ],
    "02_rewards": [
        "IoU of the wide box with its ground truth: 0.917 (11 px wide, 1 px more)",
        "progress 0.00  IoU threshold 0.85  reward 0.99",
        "progress 0.20  IoU threshold 0.95  reward 0.82",
        "progress 0.50  IoU threshold 0.99  reward 0.82",
    ],
    "03_data": [
        "wrote 8 record(s)",  # COCO, per category
        "skipped 1 (missing_image)",
        "skipped 1 (no_boxes)",
        "note: 1 x crowd annotation left out",
        "read 14, kept 8, removed 6",
        "detection          removed      2",
        "choice             removed      2",
        "math_answer        removed      2",
        "dropped by detection: a box covers 78% of the image (max 50%)",
        "read 14, kept 11, removed 3",  # max_per_category 20, choice off
        "did you mean 'max_per_category'?",
        "6 records load from",
        "dropped by math_answer: answer contains '()' (equivalent forms are hard to verify by rule)",
        "not applied: max_prompt_length",
    ],
}


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_rewards.ipynb", "03_data.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs_and_imports_only_the_package(path):
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    allowed = {"orsta_trl", "os", "json", "tempfile", "pathlib", "matplotlib", "PIL"}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs are not stripped"
        for node in ast.walk(ast.parse(cell.source)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) else []
            assert {n.split(".")[0] for n in names} <= allowed, f"{path.name} imports {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # a cell that raises fails the test (CellExecutionError); each cell has 300 s
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs)
    printed = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    missing = [line for line in PRINTED.get(path.stem, []) if line not in printed]
    assert not missing, f"{path.name} did not print {missing}"
    # the notebooks' progress bars render as widgets (ipywidgets installed), with no warning instead
    assert "IProgress not found" not in printed
    if path.stem == "01_quickstart":  # learning is visible: the warm-up answers, curves are not flat at 0
        held = [float(line.split()[3]) for line in printed.splitlines() if "held-out accuracy" in line]
        assert len(held) == 2 and min(held) > 0.2, printed[-2000:]
