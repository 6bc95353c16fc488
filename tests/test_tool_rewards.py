"""Rewards of tool rollouts on the tiny text model, through the real trainer and TRL's tool loop.

* A placeholder token sampled inside a completion: the model is warmed up to write ``<|image_pad|>`` in the middle
  of its first turn (before a tool call), as a policy can sample a stray placeholder. The trainer drops it before
  the log-probs are recomputed; the reward's transcript, the monitor's length and TRL's completion mask must all
  cover the same tokens.
* ``tool_success`` with no call: the model is warmed up on a 50/50 mixture of calling the tool and answering
  directly (both correct, both well formed). With the default (no call scores 0) the groups have a spread and the
  callers are ahead; scored 1, every member of a group would get the same reward.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from test_tool_loop import QUESTION, _data, _run, _warm_up

STRAY = "<|image_pad|>"


CALL = json.dumps({"name": "add", "arguments": {"a": 2, "b": 3}})
ANSWER = r"<answer>\boxed{5}</answer>"
TOOLS = (
    "def add(a: int, b: int) -> str:\n"
    '    """Add two integers.\n\n    Args:\n        a: the first integer\n        b: the second integer\n    """\n'
    "    return str(a + b)\n"
)


def _model(tmp_path_factory, tiny_lm, name: str):
    """A copy of the tiny model and a tool module ``name`` beside it (importable)."""
    folder = tmp_path_factory.mktemp(name)
    shutil.copytree(tiny_lm, folder / "model")
    (folder / f"{name}.py").write_text(TOOLS)
    sys.path.insert(0, str(folder))
    return folder / "model", folder, __import__(name)


@pytest.fixture(scope="module")
def stray_model(tmp_path_factory, tiny_lm):
    model, folder, module = _model(tmp_path_factory, tiny_lm, "orsta_stray_tools")
    first = f"<think>I use{STRAY} a tool.</think>\n<tool_call>\n{CALL}\n</tool_call><|im_end|>"
    _warm_up(model, [module.add], first, "5", ANSWER)
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


def _warm_up_mixture(model_dir, tool, steps: int = 150) -> None:
    """Supervised warm-up on two rollouts of one prompt: call ``add`` then answer, or answer at once."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from orsta_trl.tools.chat import use_tool_template

    tok = use_tool_template(AutoTokenizer.from_pretrained(model_dir), vision=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tools=[tool], tokenize=False, add_generation_prompt=True
    )
    result = "\n<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    calling = [
        (prompt, False),
        (f"<think>I use a tool.</think>\n<tool_call>\n{CALL}\n</tool_call><|im_end|>", True),
        (result, False),
        (ANSWER + "<|im_end|>", True),
    ]
    direct = [(prompt, False), (f"<think>I know it.</think>{ANSWER}<|im_end|>", True)]
    rows = []
    for pieces in (calling, direct):
        ids, labels = [], []
        for text, learn in pieces:
            piece = tok(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if learn else [-100] * len(piece)
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(model_dir)


def test_no_call_scores_0_by_default_so_groups_mixing_calls_and_no_calls_have_a_spread(
    tmp_path_factory, tiny_lm
):
    model, folder, module = _model(tmp_path_factory, tiny_lm, "orsta_mixed_tools")
    _warm_up_mixture(model, module.add)
    rows = [  # the tool verifier's defaults: no require_tool here
        {
            "id": f"q{i}",
            "data_source": "tool_math",
            "prompt": [{"role": "user", "content": QUESTION}],
            "reward": {
                "verifier": "tool",
                "ground_truth": "5",
                "format_weight": 0.2,
                "extra_weights": {"tool_success": 0.1},
            },
        }
        for i in range(2)
    ]
    data = folder / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, _, samples = _run(model, data, folder / "run", tool_modules=["orsta_mixed_tools"])
    groups: dict = {}
    for s in samples:
        groups.setdefault(s.group, []).append(s)
    mixed = [g for g in groups.values() if {bool(s.tools["tool_outcomes"]) for s in g} == {True, False}]
    assert mixed, "no group mixed calling and not calling: nothing was tested"
    for group in mixed:
        callers = [
            s for s in group if s.tools["tool_outcomes"] == [True] and s.accuracy == 1 and s.format == 1
        ]
        direct = [s for s in group if not s.tools["tool_outcomes"] and s.accuracy == 1 and s.format == 1]
        for s in direct:
            assert s.parts["tool_success"] == 0.0
        # equally right and well formed: the successful caller is ahead, so the group has a spread
        if callers and direct:
            assert min(s.reward for s in callers) > max(s.reward for s in direct)
    assert any(len({round(s.reward, 6) for s in g}) > 1 for g in mixed), "no group with a reward spread"
