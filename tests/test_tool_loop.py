"""The tool loop end to end on the tiny text model, through ``build_trainer`` and TRL's own loop.

A module fixture warms the random tiny model up with a few hundred supervised steps on one rollout pattern
(call a tool, read its result, answer), so that GRPO's sampling really emits calls. Then:

* a user tool (``tool_modules``) really runs (it logs its calls to a file), its output reaches the next turn,
  its tokens are masked from the loss (TRL's ``tool_mask``), and the reward and metrics use the real outcome;
* the python sandbox's failures (an infinite loop) come back as ``Error`` results within the limit and
  training carries on.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch

import orsta_trl
from orsta_trl.api import build_trainer
from orsta_trl.tools.chat import use_tool_template

QUESTION = "What is 2 + 3?"
MCP = [
    {
        "name": "calc",
        "command": sys.executable,
        "args": [str(Path(__file__).parent / "data" / "mcp_server.py")],
    }
]
TOOL_MODULE = '''
from pathlib import Path

LOG = Path(__file__).with_suffix(".log")


def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: the first integer
        b: the second integer
    """
    with LOG.open("a") as f:
        f.write(f"{a} {b}\\n")
    return str(a + b)
'''


def _call(name: str, arguments: dict) -> str:
    return f"<think>I use a tool.</think>\n<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call><|im_end|>"


def _warm_up(
    model_dir: Path, tools: list, first: str, result: str, answer: str, steps: int = 100, direct=None
) -> None:
    """Supervised warm-up of one rollout: prompt → ``first`` (a call) → tool result → ``answer``; saved in place.
    ``tools`` is one tool list, or a tuple of several (one prompt each, rendered with that list's schemas).
    ``direct``: ``{question: reply}`` of other prompts (with the first list's schemas), answered without a call.

    The pieces are tokenized separately and concatenated, as TRL's loop concatenates prompt, generated and
    tool-suffix ids; only the model's own turns are in the loss.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = use_tool_template(AutoTokenizer.from_pretrained(model_dir), vision=False)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    suffix = (
        f"\n<|im_start|>user\n<tool_response>\n{result}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    )
    listings = tools if isinstance(tools, tuple) else (tools,)
    rollouts = [
        (QUESTION, listed, [(first, True), (suffix, False), (answer + "<|im_end|>", True)])
        for listed in listings
    ]
    rollouts += [(q, listings[0], [(reply + "<|im_end|>", True)]) for q, reply in (direct or {}).items()]
    sequences = []
    for question, listed, turns in rollouts:
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": question}], tools=listed, tokenize=False, add_generation_prompt=True
        )
        pieces = [(prompt, False), *turns]
        ids, labels = [], []
        for text, learn in pieces:
            piece = tok(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if learn else [-100] * len(piece)
        sequences.append((ids, labels))
    width = max(len(ids) for ids, _ in sequences)  # right-padded to one batch; padding is out of the loss
    pad = tok.pad_token_id
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in sequences])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in sequences])
    attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in sequences])
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"the warm-up did not converge (loss {loss.item():.3f})"
    model.save_pretrained(model_dir)


def _data(folder: Path) -> Path:
    rows = [
        {
            "id": f"q{i}",
            "data_source": "tool_math",
            "prompt": [{"role": "user", "content": QUESTION}],
            "reward": {"verifier": "tool", "ground_truth": "5", "params": {"require_tool": True}},
        }
        for i in range(2)
    ]
    path = folder / "tool_math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(model: Path, data: Path, out: Path, steps: int = 2, **keys):
    """Build the real trainer, spy on each generation batch (the dict TRL's loss reads), train."""
    recipe = orsta_trl.load_recipe(
        None,
        model_name_or_path=str(model),
        train_files=[str(data)],
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        max_steps=steps,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=160,
        temperature=0.3,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        max_tool_calling_iterations=2,
        **keys,
    )
    trainer = build_trainer(recipe)
    batches, samples = [], []
    generate, update = trainer._generate_and_score_completions, trainer.source_monitor.update

    def spy_generate(inputs):
        batch = generate(inputs)
        batches.append(batch)
        return batch

    def spy_update(rows):  # the scored samples of every rank, as the monitor receives them
        samples.extend(rows)
        return update(rows)

    trainer._generate_and_score_completions = spy_generate
    trainer.source_monitor.update = spy_update
    try:
        trainer.train()
    finally:
        trainer.router.close()
        trainer.toolset.close()
    return trainer, batches, samples


@pytest.fixture(scope="module")
def add_model(tmp_path_factory, tiny_lm) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tool_loop")
    model = folder / "model"
    import shutil

    shutil.copytree(tiny_lm, model)
    module = folder / "orsta_test_tools.py"
    module.write_text(TOOL_MODULE)
    sys.path.insert(0, str(folder))
    import orsta_test_tools

    from orsta_trl.tools.registry import build_tools

    servers = build_tools(mcp_servers=MCP)  # the MCP server's own schema of its "add": a second prompt
    try:
        prompts = ([orsta_test_tools.add], servers.tools)
        _warm_up(model, prompts, _call("add", {"a": 2, "b": 3}), "5", r"<answer>\boxed{5}</answer>")
    finally:
        servers.close()
    return model, folder


def test_the_tool_runs_its_output_reaches_the_next_turn_is_masked_and_scored(add_model):
    model, folder = add_model
    log = folder / "orsta_test_tools.log"
    log.unlink(missing_ok=True)
    trainer, batches, samples = _run(model, _data(folder), folder / "run", tool_modules=["orsta_test_tools"])
    tok = trainer._tokenizer

    # the tool really ran, with the arguments the model wrote
    calls = log.read_text().splitlines()
    assert calls and set(calls) == {"2 3"}
    called = [s for s in samples if s.tools["tool_outcomes"]]
    assert len(called) == len(calls)  # one real run per recorded call, nothing else

    # its output reached the next turn: the tool-response tokens sit between the call and the second turn
    suffix = "<|im_start|>user\n<tool_response>\n5\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
    masked_texts = []
    for batch in batches:
        for ids, mask, keep in zip(
            batch["completion_ids"], batch["tool_mask"], batch["completion_mask"], strict=True
        ):
            ids, mask, keep = ids.tolist(), mask.tolist(), keep.tolist()
            text = tok.decode([t for t, k in zip(ids, keep, strict=True) if k])
            masked = tok.decode([t for t, m, k in zip(ids, mask, keep, strict=True) if k and not m])
            if "<tool_response>" in text:
                masked_texts.append(masked)
                head, _, tail = text.partition(suffix)
                assert head.endswith("</tool_call><|im_end|>\n") and tail, text  # a second turn follows
                # the loss mask is exactly the tool result TRL appended; the model's own tokens stay in it
                assert masked.strip() == suffix.strip(), masked
            else:
                assert 0 not in mask  # nothing masked where no tool ran
    assert masked_texts, "no rollout called the tool"

    # the reward used the loop's real outcome: success 1, the answer after the call is scored
    for s in called:
        assert s.tools["tool_outcomes"] == [True] and s.tools["tool_names"] == ["add"]
        assert s.parts["tool_success"] == 1.0
        assert "<tool_response>\n5\n</tool_response>" in s.text
    assert any(s.accuracy == 1.0 for s in called)
    history = {(row["split"], row["source"], row["metric"]): row["value"] for row in trainer.source_history}
    assert history["train", "tool_math", "tools/success"] == 1.0
    assert history["train", "tool_math", "tools/calls/add"] > 0
    assert history["train", "tool_math", "tools/turns"] > 1


def test_a_tool_recipe_is_evaluated_with_its_tools(add_model):
    """``orsta-trl eval --recipe`` of a tool recipe runs the tool loop: the user tool really runs with the
    arguments the model wrote, its result reaches the next turn, and the score uses the real outcome. The
    prompt-length filter of the same recipe counts the tool schemas the template writes into each prompt."""
    from orsta_trl.data.records import load_records
    from orsta_trl.data.rows import prompt_length
    from orsta_trl.evaluation import evaluate_checkpoint
    from orsta_trl.tools.registry import build_tools

    model, folder = add_model
    log = folder / "orsta_test_tools.log"
    log.unlink(missing_ok=True)
    recipe = folder / "eval_tools.yaml"
    recipe.write_text("tool_modules: [orsta_test_tools]\nmax_tool_calling_iterations: 2\n")
    report = evaluate_checkpoint(
        str(model), [str(_data(folder))], max_new_tokens=120, recipe_path=str(recipe)
    )
    assert log.read_text().splitlines() == ["2 3", "2 3"]  # one real call per record
    for row in report["completions"]:
        assert "<tool_response>\n5\n</tool_response>" in row["completion"], row["completion"]
        assert row["tools"]["tool_outcomes"] == [True] and row["tools"]["tool_names"] == ["add"]
        assert row["tools"]["turns"] == 2 and row["accuracy"] == 1.0
    assert report["per_source"]["tool_math"]["tools/success"] == 1.0
    # without the recipe there are no tools: the model's call is left unrun and unanswered
    plain = evaluate_checkpoint(str(model), [str(_data(folder))], max_new_tokens=120)
    assert all("<tool_response>" not in row["completion"] for row in plain["completions"])
    assert log.read_text().splitlines() == ["2 3", "2 3"]

    from transformers import AutoTokenizer

    tok = use_tool_template(AutoTokenizer.from_pretrained(model), vision=False)
    record = load_records(_data(folder))[0]
    schema = build_tools(modules=["orsta_test_tools"]).schema_tools()
    assert [t.__name__ for t in schema] == ["add"]
    with_tools, without = prompt_length(record, tok, schema), prompt_length(record, tok)
    listed = tok.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tools=schema, tokenize=False, add_generation_prompt=True
    )
    assert with_tools == len(tok(listed, add_special_tokens=False)["input_ids"]) > without + 20


def test_an_mcp_servers_tool_runs_in_the_loop_and_the_server_stops_after_training(add_model):
    import psutil

    model, folder = add_model
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    trainer, _, samples = _run(model, _data(folder), folder / "run_mcp", mcp_servers=MCP)
    called = [s for s in samples if s.tools["tool_outcomes"]]
    assert called, "no rollout called the tool"
    for s in called:
        assert s.tools["tool_outcomes"] == [True] and "<tool_response>\n5\n</tool_response>" in s.text
    assert trainer.toolset.servers is None  # closed by _run, as api.train does
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    deadline = time.time() + 10
    while time.time() < deadline and any(
        psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in left
    ):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in left)


def test_sandbox_failures_come_back_as_errors_and_training_carries_on(tmp_path, tiny_lm):
    import shutil

    from orsta_trl.tools.python_tool import python

    model = tmp_path / "model"
    shutil.copytree(tiny_lm, model)
    code = "while True: pass"
    error = "Error: the code ran past the 1 s time limit and was stopped"
    _warm_up(
        model, [python], _call("python", {"code": code}), error, r"<answer>\boxed{5}</answer>", steps=160
    )
    started = time.perf_counter()
    trainer, batches, samples = _run(
        model, _data(tmp_path), tmp_path / "run", tools=["python"], tool_timeout_s=1
    )
    assert trainer.state.global_step == 2  # training carried on
    called = [s for s in samples if s.tools["tool_outcomes"]]
    assert called, "no rollout called the tool"
    for s in called:
        assert s.tools["tool_outcomes"][0] is False and s.parts["tool_success"] == 0.0
        assert error in s.text
    # each sandboxed run stopped at its 1 s limit: 8 rollouts, at most 2 calls each, plus training
    assert time.perf_counter() - started < 8 * 2 * 1.5 + 60
