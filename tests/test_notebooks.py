"""The notebooks run top to bottom on the CPU, with a real kernel (nbclient), and are stored without outputs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# lines a notebook's printed output must contain: what it shows really happened
PRINTED = {
    # 100 records per task and 50 held out; evaluated before GRPO and every 10 of its 20 steps
    "01_quickstart": [
        "[orsta-trl] loaded 200 records from 1 file(s)",
        "[orsta-trl] loaded 100 evaluation records from 1 file(s)",
        "[orsta-trl] evaluation at step 0:",
        "[orsta-trl] evaluation at step 10:",
        "[orsta-trl] evaluation at step 20:",
        "held-out greedy accuracy: first evaluation (before GRPO) -> last evaluation",
        "synth_colour   held-out accuracy",  # measured before GRPO and after it, from the warm-up
        "synth_shape    held-out accuracy",
    ],
    # the references of the synthetic records (seeded: the same on every machine), and each completion's score:
    # exact answers 1, a malformed box list 0 (unparsable_boxes), an unboxed math answer 0 (no_answer), a wrong
    # OCR reading only its format weight (0.1 / 1.1 = 0.091), the detection a box 1 px too wide just below 1
    "02_rewards": [
        "synth_ocr        ocr        reference: rocket",
        "synth_math       math       reference: 65",
        "synth_colour     ocr        reference: blue",
        "detection  reward 1.000  acc 1.000  format 1                 '<think>boxes</think>",
        "detection  reward 0.989  acc 0.988  format 1                 '<think>one box a bit wide</think>",
        "detection  reward 0.000  acc 0.000  format 0  unparsable_boxes '<answer>[{\"bbox_2d\": [1, 2]}]</answer>'",
        "ocr        reward 1.000  acc 1.000  format 1                 '<think>read it</think><answer>rocket</answer>'",
        "ocr        reward 0.091  acc 0.000  format 1                 '<answer>something else</answer>'",
        "math       reward 1.000  acc 1.000  format 1                 '<think>compute</think><answer>\\\\boxed{65}</answer>'",
        "math       reward 0.000  acc 0.000  format 0  no_answer      'the answer is probably 12'",
        "ocr        reward 1.000  acc 1.000  format 1                 '<answer>blue</answer>'",
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
    results = "".join(
        o.get("data", {}).get("text/plain", "") for o in outputs if o.get("output_type") == "execute_result"
    )
    if path.stem == "01_quickstart":
        check_quickstart(printed, results)


def check_quickstart(printed: str, results: str) -> None:
    """The quickstart's records route to the ``ocr`` verifier, and the held-out accuracies it prints at the end
    are the ones the trainer printed for its first and last evaluation (each a count out of 50 records)."""
    assert "{'synth_colour': 'ocr', 'synth_shape': 'ocr'}" in results
    number = r"(\d\.\d{3})"
    shown = re.findall(
        rf"^(synth_\w+) +held-out accuracy {number} at step 0 -> {number} at step 20$", printed, re.M
    )
    logged = re.findall(rf"^(synth_\w+) +{number} +{number} +[+-]\d\.\d{{3}}$", printed, re.M)
    assert sorted(shown) == sorted(logged) and {s for s, _, _ in shown} == {"synth_colour", "synth_shape"}
    assert all(abs(float(a) * 50 - round(float(a) * 50)) < 1e-6 for _, *pair in shown for a in pair)
