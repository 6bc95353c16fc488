"""A placeholder token sampled inside a completion: the reward scores exactly the tokens the loss trains on.

The tiny text model is warmed up to write ``<|image_pad|>`` in the middle of its first turn (before a tool call),
as a policy can sample a stray placeholder. The trainer drops it before the log-probs are recomputed; then the
reward's transcript, the monitor's length and TRL's completion mask must all cover the same tokens.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from test_tool_loop import _data, _run, _warm_up

STRAY = "<|image_pad|>"


@pytest.fixture(scope="module")
def stray_model(tmp_path_factory, tiny_lm):
    folder = tmp_path_factory.mktemp("stray")
    model = folder / "model"
    shutil.copytree(tiny_lm, model)
    (folder / "orsta_stray_tools.py").write_text(
        "def add(a: int, b: int) -> str:\n"
        '    """Add two integers.\n\n    Args:\n        a: the first integer\n        b: the second integer\n    """\n'
        "    return str(a + b)\n"
    )
    sys.path.insert(0, str(folder))
    import orsta_stray_tools

    call = json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})
    first = f"<think>I use{STRAY} a tool.</think>\n<tool_call>\n{call}\n</tool_call><|im_end|>"
    _warm_up(model, [orsta_stray_tools.add], first, "5", r"<answer>\boxed{5}</answer>")
    return model, folder


def _squash(text: str) -> str:
    return "".join(text.split())


def test_the_reward_scores_the_tokens_the_loss_trains_on(stray_model):
    model, folder = stray_model
    trainer, batches, samples = _run(model, _data(folder), folder / "run", tool_modules=["orsta_stray_tools"])
    tok = trainer._tokenizer
    stray = tok.convert_tokens_to_ids(STRAY)
    rows = [
        (ids.tolist(), keep.tolist(), tool.tolist())
        for batch in batches
        for ids, keep, tool in zip(
            batch["completion_ids"], batch["completion_mask"], batch["tool_mask"], strict=True
        )
    ]
    assert len(rows) == len(samples) > 0
    dropped = [row["completions/placeholders_dropped"] for row in trainer.state.log_history if "loss" in row]
    assert dropped and min(dropped) > 0, "the model sampled no stray placeholder: nothing was tested"
    for (ids, keep, tool), sample in zip(rows, samples, strict=True):
        own = [t for t, k, m in zip(ids, keep, tool, strict=True) if k and m]  # what the loss trains on
        assert stray not in own
        # the monitor's length is TRL's: every token in the loss, not the tokens up to a stand-in stop token
        assert sample.length == len(own)
        # the reward's transcript is the model's own tokens plus the tool results, nothing cut, nothing added
        transcript = sample.text
        for response in ("<tool_response>\n5\n</tool_response>",):
            transcript = transcript.replace(response, "")
        assert _squash(transcript) == _squash(tok.decode(own, skip_special_tokens=True)), (sample.text, own)
        assert "<|endoftext|>" not in sample.text
