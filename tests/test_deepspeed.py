"""The 8-GPU path on the CPU: ``accelerate launch`` with the shipped DeepSpeed configs, 2 gloo ranks, the tiny
model, overriding on the command line only what a CPU needs (``--num_processes 2 --mixed_precision no``; the
tiny recipe keeps ``use_cpu: true``, which makes accelerate set up gloo before DeepSpeed takes over).

Launches are shared between checks, to keep the suite short (each launch costs 35-50 s idle):

* ``test_zero2_final_weights_equal_ddp``: one DDP launch and one ZeRO-2 launch, same seed; the DDP launch also
  carries the per-source checks of a 2-rank run (rows of both ranks in rank 0's summary and TensorBoard);
* ``test_zero3_killed_and_resumed_on_two_nodes_equals_an_uninterrupted_run``: one uninterrupted ZeRO-3 launch
  (frozen vision, uneven evaluation, a checkpoint each step, parameter counts), one ZeRO-3 launch that SIGKILLs
  itself mid-run, and its resume launched as 2 machines x 1 process on 127.0.0.1
  (``recipes/accelerate/multinode_zero3.yaml``), which must reproduce the uninterrupted run exactly;
* ``test_lora_under_zero3_with_a_judge_and_reward_workers_resumes_and_merges``: two ZeRO-3 launches of LoRA on the
  tiny text model, rewarded by a model judge served over HTTP on 127.0.0.1 and by math verified in reward
  worker processes: adapter checkpoints, a resume from the first, and the merge of the final adapter;
* ``test_tool_turns_that_differ_between_ranks_do_not_hang_zero3``: one ZeRO-3 launch of a tool recipe whose
  rollouts take 2 generations a step on rank 0 and 1 on rank 1 (training and the decoupled evaluation). Without
  the trainer's lockstep the mismatched collectives crash on gloo (and hang on NCCL; the evaluation hangs here).

``tests/test_interrupts.py`` adds one ZeRO-3 launch whose rank 1 fails. The model-state bytes each rank holds
are checked against ``orsta-trl plan`` in the ZeRO-2 launch and the uninterrupted ZeRO-3 one. Each launch has a
watchdog: a launch silent for ``STALL_S`` (or past ``LAUNCH_TIMEOUT_S``) fails with the stacks of every rank.

DeepSpeed's CPU communication layer JIT-compiles one C++ op (``deepspeed_shm_comm``) with ninja and g++ on
the first launch of a machine (about 80 s, then cached in ``TORCH_EXTENSIONS_DIR``). Without them the tests
fail, naming what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RECIPE, REPO, _flag, free_port, ocr_ned_dataset, scalar_tags
from test_resume import TIMING, tensorboard_run

from orsta_trl.monitor.dumps import read_dump

VENV_BIN = Path(sys.executable).parent
CONFIGS = REPO / "recipes/accelerate"
CPU = ["--num_processes", "2", "--mixed_precision", "no", "--dynamo_backend", "no"]
LAUNCH_TIMEOUT_S = (
    900  # a launch takes 35-50 s idle; 15 minutes covers a loaded machine and the first JIT build
)
STALL_S = 420  # no output for this long: a hang (the first JIT build prints nothing for up to ~5 min loaded)


def launch_env(**extra) -> dict:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # ninja, from the deepspeed extra
        "DS_ACCELERATOR": "cpu",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


@pytest.fixture(scope="module", autouse=True)
def toolchain():
    """DeepSpeed, ninja and a C++ compiler: a missing one fails here, saying what to install."""
    missing = []
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        missing.append("deepspeed (`make setup` installs the `deepspeed` extra: uv sync --extra deepspeed)")
    path = launch_env()["PATH"]
    if shutil.which("ninja", path=path) is None:
        missing.append("ninja (in the `deepspeed` extra: `make setup`; or `pip install ninja`)")
    if shutil.which(os.environ.get("CXX", "c++"), path=path) is None:
        missing.append("a C++ compiler with OpenMP, `c++` on PATH (Debian/Ubuntu: `apt-get install g++`)")
    assert not missing, "DeepSpeed on the CPU JIT-compiles deepspeed_shm_comm; missing: " + "; ".join(missing)


class Run:
    """One ``accelerate launch`` (or several, one per machine) of ``tests/fault_train.py``, output in files."""

    def __init__(self, folder: Path, launchers: list[list[str]], settings: dict, env: dict | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        args = [f"--{k}={_flag(v)}" for k, v in settings.items()]
        self.procs, self.logs = [], []
        for i, launcher in enumerate(launchers):
            out, err = (open(folder / f"launch{i}.{kind}", "w") for kind in ("out", "err"))
            self.logs.append((out, err))
            command = [*launcher, str(REPO / "tests/fault_train.py"), str(RECIPE), *args]
            self.procs.append(
                subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=err,
                    cwd=folder,
                    env=launch_env(**(env or {})),
                    start_new_session=True,
                )
            )

    def text(self, kind: str) -> str:
        return "".join((self.folder / f"launch{i}.{kind}").read_text() for i in range(len(self.procs)))

    def wait(self) -> list[int]:
        """Wait for every launcher; on a hang (no output for STALL_S, or past LAUNCH_TIMEOUT_S) dump the stacks
        of every rank (faulthandler on SIGUSR1, set up by fault_train.py), stop the run, and fail with them."""
        started, last_size, last_change = time.monotonic(), -1, time.monotonic()
        while any(p.poll() is None for p in self.procs):
            size = sum((self.folder / f).stat().st_size for f in os.listdir(self.folder))
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            now = time.monotonic()
            if now - last_change > STALL_S or now - started > LAUNCH_TIMEOUT_S:
                self._dump_and_stop()
                pytest.fail(f"the launch hung; stacks of its ranks:\n{self.text('err')[-12000:]}")
            time.sleep(0.5)
        for out, err in self.logs:
            out.close(), err.close()
        return [p.returncode for p in self.procs]

    def _dump_and_stop(self) -> None:
        import psutil

        ranks = [
            child
            for p in self.procs
            for child in psutil.Process(p.pid).children(recursive=True)
            if "fault_train.py" in " ".join(child.cmdline())
        ]
        for rank in ranks:
            rank.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while self.text("err").count("Current thread") < len(ranks) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in self.procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def check(self) -> str:
        codes = self.wait()
        assert codes == [0] * len(codes), (
            f"exit codes {codes}\n{self.text('out')[-3000:]}{self.text('err')[-6000:]}"
        )
        return self.text("out")


def accelerate(config: str, *extra: str) -> list[str]:
    return [str(VENV_BIN / "accelerate"), "launch", "--config_file", str(CONFIGS / config), *CPU, *extra]


def one_node(config: str) -> list[list[str]]:
    return [accelerate(config, "--main_process_port", str(free_port()))]


def two_nodes(config: str = "multinode_zero3.yaml") -> list[list[str]]:
    """2 machines x 1 process on the loopback: the same command with --machine_rank 0 and 1, one port."""
    port = str(free_port())
    return [
        accelerate(
            config,
            *("--num_machines", "2", "--machine_rank", str(rank)),
            *("--main_process_ip", "127.0.0.1", "--main_process_port", port),
        )
        for rank in (0, 1)
    ]


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def equal_weights(a: dict, b: dict) -> list[str]:
    import torch

    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def single_process_counts(model_dir: Path) -> str:
    """The parameter line a one-process run prints, computed here from the model itself."""
    from transformers import AutoModelForImageTextToText

    from orsta_trl.models.loading import format_counts, freeze_vision, parameter_counts

    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    freeze_vision(model, freeze_merger=True)
    return format_counts(parameter_counts(model))


def check_model_states(stdout: str, model_dir: Path, zero: int) -> list[dict]:
    """The model-state bytes each rank reported holding (``FAULT_MODEL_STATES``) against ``orsta-trl plan``'s
    row for the same model, 2 ranks, fp32, vision frozen: weights (ZeRO-3: a shard) and the persistent 12 of the
    plan's 16 optimizer bytes per trained parameter (fp32 master and moments; the fp32 gradient and the
    gathered largest module live only within a step), to DeepSpeed's partition padding."""
    from orsta_trl.memory_plan import GIB, OPTIMIZER_BYTES, Setup, estimate
    from orsta_trl.models.sizes import model_sizes

    sizes = model_sizes(str(model_dir))
    setup = Setup(2, 80.0, 4, 1, 1, 1, 1, False, False, 0.0, 1)
    row = estimate(sizes, setup, zero, lora=False, vision_frozen=True, merger_frozen=True)
    weights = row.weights * GIB - (2 * 4 * sizes.largest_layer if zero == 3 else 0)
    persistent = row.optimizer * GIB * 12 / OPTIMIZER_BYTES
    held = [
        json.loads(line.split(" ", 1)[1]) for line in stdout.splitlines() if line.startswith("[model-states]")
    ]
    assert sorted(h["rank"] for h in held) == [0, 1] and {h["stage"] for h in held} == {zero}, held
    for h in held:
        assert h["weights"] == pytest.approx(weights, rel=0.01), (h, weights)
        assert h["master"] + h["moments"] == pytest.approx(persistent, rel=0.01), (h, persistent)
    return held


def summary_table(stdout: str) -> str:
    return stdout.split("per-source summary")[1].split("\n\n")[0]


# ---- ZeRO-2 against DDP


def test_zero2_final_weights_equal_ddp(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    common = {
        "model_name_or_path": tiny_vl,
        "train_files": [data],
        "max_steps": 2,
        "save_strategy": "no",
        "eval_datasets": [],
        "dump_completions": 0,
        "logging_steps": 1,
        "learning_rate": 1e-2,
        "seed": 0,
    }
    ddp_launch = [
        str(VENV_BIN / "accelerate"),
        *"launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no".split(),
        *("--main_process_port", str(free_port())),
    ]
    ddp = Run(
        tmp_path / "ddp", [ddp_launch], {**common, "output_dir": tmp_path / "ddp", "ddp_backend": "gloo"}
    )
    ddp_out = ddp.check()
    zero2 = Run(
        tmp_path / "zero2",
        one_node("zero2.yaml"),
        {**common, "output_dir": tmp_path / "zero2"},
        env={"FAULT_MODEL_STATES": "1"},
    )
    zero2_out = zero2.check()

    assert "2 process(es), MULTI_CPU" in ddp_out
    assert (
        "2 process(es), DEEPSPEED" in zero2_out
    )  # not 1 process: accelerate and DeepSpeed agree on the world
    # the same arithmetic: identical final weights, losses and rewards
    assert not equal_weights(
        weights(tmp_path / "ddp/model.safetensors"), weights(tmp_path / "zero2/model.safetensors")
    )
    ddp_tags, zero2_tags = scalar_tags(tmp_path / "ddp"), scalar_tags(tmp_path / "zero2")
    for tag in ("train/loss", "train/rewards/orsta/mean", "train/grad_norm"):
        assert len(ddp_tags[tag]) == 2 and ddp_tags[tag] == pytest.approx(zero2_tags[tag], rel=1e-5), tag
    # per-source values come from the rows of both ranks: each step saw 2 prompts x 4 completions per rank
    for source in ("synth_ocr", "synth_counting"):
        assert f"train/source/{source}/reward" in ddp_tags and f"train/source/{source}/reward" in zero2_tags
    for out in (ddp_out, zero2_out):
        counts = [
            int(line.split()[1]) for line in summary_table(out).splitlines() if line.startswith("synth_")
        ]
        assert sum(counts) == 2 * 2 * 8  # 2 steps x 2 ranks x 8 completions, all in rank 0's table
    assert single_process_counts(tiny_vl) in zero2_out
    check_model_states(zero2_out, tiny_vl, zero=2)


# ---- ZeRO-3: frozen vision, uneven evaluation, checkpoints, SIGKILL, resume on two "nodes"

STEPS, KILL_AT = 4, 3


def zero3_settings(model: Path, data: Path, eval_data: Path, out: Path) -> dict:
    return {
        "model_name_or_path": model,
        "train_files": [data],
        "output_dir": out,
        "max_steps": STEPS,
        "save_steps": 1,
        "save_total_limit": STEPS,
        "learning_rate": 1e-2,
        "logging_steps": 1,
        "dump_completions": 1.0,
        "eval_datasets": [eval_data],  # 3 records over 2 ranks: uneven
        "eval_steps": 2,
        "report_to": ["tensorboard"],
        "seed": 0,
    }


def dumped(run: Path) -> dict[int, list[tuple]]:
    return {
        step: [
            (r["id"], r["completion"], r["reward"])
            for r in read_dump(run / f"completions/step_{step:07d}.jsonl")
        ]
        for step in range(1, STEPS + 1)
    }


def logged(checkpoint: Path) -> list[dict]:
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return [{k: v for k, v in h.items() if not any(t in k for t in TIMING)} for h in history]


def test_zero3_killed_and_resumed_on_two_nodes_equals_an_uninterrupted_run(tiny_vl, synth_data, tmp_path):
    data = ocr_ned_dataset(synth_data, tmp_path / "data")
    eval_data = tmp_path / "data/eval3.jsonl"
    eval_data.write_text("".join(data.read_text().splitlines(keepends=True)[:3]))
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"

    full_out = Run(
        full_dir,
        one_node("zero3.yaml"),
        zero3_settings(tiny_vl, data, eval_data, full_dir),
        env={"FAULT_MODEL_STATES": "1"},
    ).check()
    assert "2 process(es), DEEPSPEED" in full_out
    check_model_states(full_out, tiny_vl, zero=3)
    # partitioned parameters report numel() == 0: the counts must still be the full model's
    assert single_process_counts(tiny_vl) in full_out
    # a checkpoint each step, each with both ranks' ZeRO shards
    for step in range(1, STEPS + 1):
        shards = sorted(
            p.name for p in (full_dir / f"checkpoint-{step}").glob("global_step*/*optim_states.pt")
        )
        assert len(shards) == 2, (step, shards)
    # frozen vision tower bit-identical to the base model, language model moved
    base, trained = weights(tiny_vl / "model.safetensors"), weights(full_dir / "model.safetensors")
    assert set(equal_weights(base, trained)) == {k for k in base if not k.startswith("visual.")}
    # uneven evaluation (2 + 1 records) before training and every 2 steps, without a hang
    tags = tensorboard_run(full_dir)
    evals = [t for t in tags if t.startswith("eval/source/") and t.endswith("/reward")]
    assert evals and [s for s, _ in tags[evals[0]]] == [0, 2, 4]

    killed = Run(
        killed_dir,
        one_node("zero3.yaml"),
        zero3_settings(tiny_vl, data, eval_data, killed_dir),
        env={"FAULT_SIGKILL_AT_STEP": str(KILL_AT)},
    )
    assert killed.wait() != [0]
    done = sorted(p.parent.name for p in killed_dir.glob("checkpoint-*/trainer_state.json"))
    assert done == [f"checkpoint-{s}" for s in range(1, KILL_AT)], done
    assert (killed_dir / f"completions/step_{KILL_AT:07d}.jsonl").exists()  # step 3 ran, and will run again

    settings = {**zero3_settings(tiny_vl, data, eval_data, killed_dir), "resume_from_checkpoint": True}
    resumed_out = Run(tmp_path / "resumed", two_nodes(), settings).check()
    assert "2 process(es), DEEPSPEED" in resumed_out

    assert not equal_weights(trained, weights(killed_dir / "model.safetensors"))
    assert dumped(killed_dir) == dumped(full_dir)  # ids, sampled completions, rewards
    final = f"checkpoint-{STEPS}"
    assert logged(killed_dir / final) == logged(full_dir / final)
    assert summary_table(resumed_out) == summary_table(full_out)
    resumed_tags = tensorboard_run(killed_dir)
    for tag in ("train/loss", "train/rewards/orsta/mean", "train/reward/iou_threshold"):
        assert [s for s, _ in resumed_tags[tag]] == list(range(1, STEPS + 1)), tag
        assert resumed_tags[tag] == tags[tag], tag
    assert all(resumed_tags[t] == tags[t] for t in evals)


# ---- LoRA under ZeRO-3, rewarded by a model judge over HTTP and math in reward worker processes


def lora_records(path: Path) -> Path:
    from test_judge import judge_record

    rows = [judge_record(f"c{i}", gold=f"a red square number {i}") for i in range(4)]
    rows += [
        {
            "id": f"q{i}",
            "data_source": "arith",
            "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "reward": {"verifier": "math", "ground_truth": str(2 * i), "format_weight": 0.5},
        }
        for i in range(4)
    ]
    # edit distance to an English sentence: the random policy's word fragments score differently (0.2-0.25), so
    # the groups' advantages are not zero and the adapter trains
    rows += [
        {
            "id": f"s{i}",
            "data_source": "sentence",
            "prompt": [{"role": "user", "content": f"Describe scene {i}"}],
            "reward": {
                "verifier": "ocr",
                "ground_truth": "the red square is above the blue circle",
                "params": {"mode": "ned"},
            },
        }
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_lora_under_zero3_with_a_judge_and_reward_workers_resumes_and_merges(tiny_lm, sevens_judge, tmp_path):
    import torch
    from judge_server import JudgeServer
    from safetensors.torch import load_file

    from orsta_trl.models.lora import merge_adapter

    data = lora_records(tmp_path / "records.jsonl")
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    with JudgeServer(sevens_judge) as server:
        judges = {
            "tiny": {"backend": "openai", "url": server.url, "model": "tiny-judge", "max_new_tokens": 1}
        }
        settings = {
            "model_name_or_path": tiny_lm,
            "train_files": [data],
            "max_steps": 3,  # 3 steps x 2 ranks x 2 prompts: each of the 12 records once
            "save_steps": 1,
            "save_total_limit": 3,
            "learning_rate": 1e-2,
            "logging_steps": 1,
            "eval_datasets": [],
            "dump_completions": 0,
            "report_to": ["tensorboard"],
            "use_peft": True,
            "lora_r": 8,
            "lora_alpha": 16,
            "judges": json.dumps(judges),
            "reward_workers": 1,
            "seed": 0,
        }
        out = Run(full_dir, one_node("zero3.yaml"), {**settings, "output_dir": full_dir}).check()
        assert "2 process(es), DEEPSPEED" in out
        assert "1 reward worker(s) per rank" in out
        # checkpoints hold the adapter, not the model
        for step in (1, 2, 3):
            files = {p.name for p in (full_dir / f"checkpoint-{step}").iterdir()}
            assert "adapter_model.safetensors" in files and "model.safetensors" not in files, files
        # resume from the first checkpoint in a fresh folder: the same final adapter
        resumed_dir.mkdir()
        shutil.copytree(full_dir / "checkpoint-1", resumed_dir / "checkpoint-1")
        requests = server.requests
        resumed = {**settings, "output_dir": resumed_dir, "resume_from_checkpoint": True}
        Run(tmp_path / "resume-launch", one_node("zero3.yaml"), resumed).check()
        assert server.requests > requests > 0  # both launches asked the judge
    adapter = load_file(str(full_dir / "adapter_model.safetensors"))
    assert not equal_weights(adapter, load_file(str(resumed_dir / "adapter_model.safetensors")))
    tags = scalar_tags(full_dir)
    assert all(tags[f"train/source/{source}/reward"] for source in ("captions", "arith", "sentence"))
    assert min(tags["train/frac_reward_zero_std"]) < 1 and max(tags["train/grad_norm"]) > 0
    valid, scores = (
        tags["train/source/captions/part/judge_valid"],
        tags["train/source/captions/part/judge_score"],
    )
    assert all(s == pytest.approx(0.7 * v) for s, v in zip(scores, valid, strict=True))  # the judge says 7/10
    # the adapter saved under ZeRO-3 is whole (gathered) and trained; merging folds it in as W + (alpha/r) B A
    merged = weights(merge_adapter(full_dir, tmp_path / "merged") / "model.safetensors")
    base = weights(tiny_lm / "model.safetensors")
    pairs = [k for k in adapter if k.endswith("lora_A.weight")]
    assert pairs
    for key in pairs:
        a, b = adapter[key], adapter[key.replace("lora_A", "lora_B")]
        assert a.shape[0] == 8 and b.shape[1] == 8 and b.abs().max() > 0, key
        name = key.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        torch.testing.assert_close(merged[name], base[name] + 2.0 * b @ a, rtol=1e-5, atol=1e-6)
    untouched = set(base) - {
        k.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight") for k in pairs
    }
    assert untouched and all(torch.equal(merged[k], base[k]) for k in untouched if k in merged)


# ---- multi-turn tools under ZeRO-3, with ranks that take different numbers of turns

SUM, PLAIN = "What is 2 + 3?", "Say the number seven."


def tool_records(path: Path, n: int) -> Path:
    """Alternating records: the sum (the warmed model calls the calculator: two turns), the plain question (it
    answers at once: one turn). Unshuffled, with one prompt per rank and step, rank 0 gets every sum and rank 1
    every plain question."""
    rows = [
        {
            "id": f"sum{i}" if i % 2 == 0 else f"plain{i}",
            "data_source": "tool_sum" if i % 2 == 0 else "plain",
            "prompt": [{"role": "user", "content": SUM if i % 2 == 0 else PLAIN}],
            "reward": {
                "verifier": "tool",
                "ground_truth": "5" if i % 2 == 0 else "7",
                "params": {"require_tool": i % 2 == 0},
            },
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tool_turns_that_differ_between_ranks_do_not_hang_zero3(tiny_lm, tmp_path):
    """Under ZeRO-3 each generation gathers the weights from every rank, and a tool loop generates once per
    round of calls: rank 0's rollouts call the calculator (2 generations a step) while rank 1's answer at once
    (1). Training and the decoupled evaluation must run through; the watchdog turns a hang into a failure with
    the stacks of both ranks."""
    from test_tool_loop import _call, _warm_up

    from orsta_trl.tools.arithmetic import calculator

    model = tmp_path / "model"
    shutil.copytree(tiny_lm, model)
    call = _call("calculator", {"expression": "2 + 3"})
    answer = r"<answer>\boxed{5}</answer>"
    _warm_up(
        model,
        [calculator],
        call,
        "5",
        answer,
        direct={PLAIN: r"<think>No tool.</think><answer>\boxed{7}</answer>"},
    )
    data, eval_data = tool_records(tmp_path / "train.jsonl", 4), tool_records(tmp_path / "eval.jsonl", 2)
    out_dir = tmp_path / "run"
    steps = 2
    settings = {
        "model_name_or_path": model,
        "train_files": [data],
        "eval_datasets": [eval_data],  # 1 record per rank: rank 0 the sum, rank 1 the plain question
        "eval_steps": steps,
        "output_dir": out_dir,
        "tools": ["calculator"],
        "max_tool_calling_iterations": 1,
        "max_steps": steps,
        "shuffle_dataset": False,
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 128,
        "max_prompt_length": 2048,  # the calculator's schema is in every prompt
        "temperature": 0.3,
        "learning_rate": 1e-5,
        "logging_steps": 1,
        "save_strategy": "no",
        "dump_completions": 1.0,
        "report_to": ["tensorboard"],
        "seed": 0,
    }
    out = Run(out_dir, one_node("zero3.yaml"), settings, env={"FAULT_LOG_TURNS": "1"}).check()
    assert "2 process(es), DEEPSPEED" in out

    # by construction, the ranks generated a different number of times each step: the proof, rank by rank
    turns: dict[tuple[int, int], int] = {}
    for line in out.splitlines():
        if line.startswith("[turn] "):
            turn = json.loads(line.split(" ", 1)[1])
            turns[turn["rank"], turn["step"]] = turns.get((turn["rank"], turn["step"]), 0) + 1
    assert turns == {(rank, step): 2 - rank for rank in (0, 1) for step in range(1, steps + 1)}, turns
    # ... and the dumped rollouts say why: rank 0's rows (first in the gathered batch) ran the calculator
    for step in range(1, steps + 1):
        rows = read_dump(out_dir / f"completions/step_{step:07d}.jsonl")
        assert [r["data_source"] for r in rows] == ["tool_sum"] * 4 + ["plain"] * 4
        assert any("<tool_response>\n5\n</tool_response>" in r["completion"] for r in rows[:4]), rows[:4]
        assert not any("<tool_response>" in r["completion"] for r in rows[4:]), rows[4:]
    for step in (0, steps):  # the evaluation's tool loop: 2 turns on rank 0, 1 on rank 1
        rows = {r["data_source"]: r for r in read_dump(out_dir / f"completions/eval_step_{step:07d}.jsonl")}
        assert "<tool_response>\n5\n</tool_response>" in rows["tool_sum"]["completion"], rows
        assert "<tool_response>" not in rows["plain"]["completion"], rows

    # tool metrics reached the logs: TRL's call frequency, and ours per source
    tags = scalar_tags(out_dir)
    assert len(tags["train/tools/call_frequency"]) == steps and min(tags["train/tools/call_frequency"]) > 0
    assert min(tags["train/source/tool_sum/tools/turns"]) > max(tags["train/source/plain/tools/turns"])
