"""Generation outside training: batched HF ``generate`` (greedy, or k samples), and the tool loop.

:func:`generate` is what every offline caller uses (``orsta-trl eval``, the difficulty filter, the trainer's
decoupled evaluation): plain completions, or, when the run has tools, multi-turn rollouts
(:func:`tool_rollouts`) in which the model's ``<tool_call>`` blocks are run and their results appended as tool
turns, as TRL's own loop does during training.

Deviation from TRL's loop: each turn is re-templated from the messages (TRL concatenates token ids), and the
completion budget ``max_new_tokens`` counts the model's own tokens only (TRL also counts the tool results).
Tool results are what TRL makes of them: a list of content parts stays a list, anything else becomes ``str``, a
raising tool gives ``{"error": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from orsta_trl.data.records import Record
from orsta_trl.data.rows import prompt_messages
from orsta_trl.models.lockstep import any_rank
from orsta_trl.models.tokens import placeholder_ids, stop_ids, trim_at_stop


@dataclass
class Generated:
    """One completion: its text (a rollout's transcript), tokens the model generated, whether it hit the budget,
    and for a rollout with tools what happened in it (:func:`orsta_trl.rewards.rollout.read_rollout`)."""

    text: str
    length: int
    truncated: bool
    rollout: dict | None = None


def conversation(record: Record, vision: bool) -> list[dict]:
    """The record's prompt messages, its images loaded into the image parts (a processor reads them there)."""
    messages = prompt_messages(record, vision=vision)
    if not (vision and record.images):
        return messages
    images = iter(_load_images(record))
    return [
        {
            **m,
            "content": [
                ({"type": "image", "image": next(images)} if p["type"] == "image" else p)
                for p in m["content"]
            ],
        }
        for m in messages
    ]


def _templated(processing_class, conversations: list, vision: bool, tools: list | None = None):
    call = {"padding": True, "return_tensors": "pt"}
    kwargs = {"processor_kwargs": call} if vision else call
    return processing_class.apply_chat_template(
        conversations, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True, **kwargs
    )


def _load_images(record: Record):
    from PIL import Image

    images = []
    for image in record.images:
        if isinstance(image, str):
            with Image.open(image) as opened:
                images.append(opened.convert("RGB"))
        else:
            images.append(image.convert("RGB"))
    return images


@torch.no_grad()
def greedy_completions(
    model,
    processing_class,
    records: list[Record],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    show_progress: bool = False,
    num_samples: int = 1,
    temperature: float | None = None,
) -> list[Generated]:
    """One greedy completion per record (left-padded batches, placeholder tokens suppressed).

    With ``temperature`` set, ``num_samples`` sampled completions per record instead, consecutive in the
    result (the difficulty filter's pass@k); seed torch before the call for repeatable samples.
    """
    from tqdm.auto import tqdm

    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    vision = tokenizer is not processing_class
    stops = stop_ids(tokenizer, model.generation_config.eos_token_id or None)
    suppress = placeholder_ids(tokenizer)
    was_training = model.training
    model.eval()
    out: list[Generated] = []
    batches = range(0, len(records), batch_size)
    for start in tqdm(batches, desc="evaluating", disable=not show_progress):
        batch = records[start : start + batch_size]
        conversations = [conversation(record, vision) for record in batch]
        inputs = _templated(processing_class, conversations, vision).to(model.device)
        sampling = {"do_sample": False, "temperature": None}
        if temperature is not None:
            sampling = {"do_sample": True, "temperature": temperature, "num_return_sequences": num_samples}
        generated = model.generate(
            **inputs,
            **sampling,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            suppress_tokens=suppress or None,
            top_p=None,
            top_k=None,
        )
        completion_ids = generated[:, inputs["input_ids"].shape[1] :].tolist()
        for ids in completion_ids:
            kept, truncated = trim_at_stop(ids, stops)
            out.append(Generated(tokenizer.decode(kept, skip_special_tokens=True), len(kept), truncated))
    model.train(was_training)
    return out


def generation_settings(model, processing_class, max_new_tokens: int, batch_size: int, toolset=None) -> dict:
    """How :func:`generate` generated, for the report: a run is only comparable with the same."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    names = tokenizer.convert_ids_to_tokens
    return {
        "decoding": "greedy",
        "max_new_tokens": int(max_new_tokens),
        "batch_size": int(batch_size),
        "stop_tokens": names(sorted(stop_ids(tokenizer, model.generation_config.eos_token_id or None))),
        "suppressed_tokens": names(sorted(placeholder_ids(tokenizer))),
        "prompt": "chat template, add_generation_prompt=True, left padding",
        "tools": [] if toolset is None else toolset.names,
    }


def generate(
    model,
    processing_class,
    records: list[Record],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    toolset=None,
    max_tool_iterations: int | None = None,
    show_progress: bool = False,
    num_samples: int = 1,
    temperature: float | None = None,
    lockstep: bool = False,
) -> list[Generated]:
    """Completions of ``records`` (``num_samples`` each, consecutive): plain, or rollouts with the run's tools.

    Args:
        toolset: the run's :class:`~orsta_trl.tools.registry.ToolSet` (None: no tools); its processor must carry
            the tool-capable template (:func:`orsta_trl.tools.chat.use_tool_template`).
        max_tool_iterations: TRL's ``max_tool_calling_iterations`` (None: until a turn calls no tool).
        lockstep: every rank generates each tool turn together (:mod:`orsta_trl.models.lockstep`): required
            under distributed ZeRO-3/FSDP, where ``generate`` is a collective; every rank must pass as many
            records.
        The others: as :func:`greedy_completions`.
    """
    if toolset is None:
        return greedy_completions(
            model, processing_class, records, max_new_tokens=max_new_tokens, batch_size=batch_size,
            show_progress=show_progress, num_samples=num_samples, temperature=temperature,
        )  # fmt: skip
    repeated = [record for record in records for _ in range(num_samples)]
    return tool_rollouts(
        model, processing_class, repeated, toolset, max_new_tokens=max_new_tokens, batch_size=batch_size,
        max_iterations=max_tool_iterations, temperature=temperature, show_progress=show_progress,
        lockstep=lockstep,
    )  # fmt: skip


@torch.no_grad()
def tool_rollouts(
    model,
    processing_class,
    records: list[Record],
    toolset,
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    max_iterations: int | None = None,
    temperature: float | None = None,
    show_progress: bool = False,
    lockstep: bool = False,
) -> list[Generated]:
    """One multi-turn rollout per record: generate, run the turn's tool calls, append their results, repeat.

    A rollout ends at a turn without tool calls, after ``max_iterations`` rounds of calls, or when its
    ``max_new_tokens`` are spent (then it is truncated). Each :class:`Generated` holds the transcript and the
    real outcome of every call (``rollout``), read as the reward function reads TRL's rollouts. With
    ``lockstep``, a rank whose batch is done runs an idle generation with each turn a peer still takes.
    """
    from tqdm.auto import tqdm

    from orsta_trl.rewards.rollout import read_rollout

    out: list[Generated] = []
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(records), batch_size), desc="rollouts", disable=not show_progress):
        batch = records[start : start + batch_size]
        rollouts = [_Rollout(record, toolset, processing_class) for record in batch]
        rounds = 0
        while True:
            active = [r for r in rollouts if not r.done]
            if not (any_rank(bool(active), model.device) if lockstep else active):
                break
            if not active:  # a peer still takes a turn: generate along, or its weight gathers wait forever
                _idle_turn(model, processing_class, rollouts[0])
                continue
            _next_turn(model, processing_class, active, max_new_tokens, temperature)
            for rollout in active:
                last = rollout.messages[-1]
                if (
                    rollout.truncated
                    or not last.get("tool_calls")
                    or (max_iterations is not None and rounds >= max_iterations)
                ):
                    rollout.done = True
                else:
                    rollout.run_calls(last["tool_calls"])
            rounds += 1
        for rollout in rollouts:
            text, slot = read_rollout(rollout.messages)
            out.append(Generated(text, rollout.length, rollout.truncated, rollout=slot))
    model.train(was_training)
    return out


class _Rollout:
    """One record's conversation so far: the prompt, then the assistant and tool messages of the rollout."""

    def __init__(self, record: Record, toolset, processing_class):
        tokenizer = getattr(processing_class, "tokenizer", processing_class)
        self.vision = tokenizer is not processing_class
        self.prompt = conversation(record, self.vision)
        self.messages: list[dict] = []
        self.length, self.truncated, self.done = 0, False, False
        self.tools = list(toolset.tools)
        if toolset.environment_factory is not None:  # per-rollout tools over the record's images (crop, zoom)
            environment = toolset.environment_factory()
            environment.reset(images=_load_images(record) if record.images else [])
            self.tools += [getattr(environment, name) for name in toolset.image_tools]
        self.by_name = {tool.__name__: tool for tool in self.tools}

    def run_calls(self, tool_calls: list) -> None:
        """Run each call of the last turn and append its result as a tool message, as TRL's loop does."""
        for call in tool_calls:
            function = call.get("function", {}) if isinstance(call, dict) else {}
            name = str(function.get("name", "unknown"))
            try:
                if name not in self.by_name:
                    raise ValueError(f"Tool {name} not found.")
                result = self.by_name[name](**(function.get("arguments") or {}))
            except Exception as exc:  # a failed call is the model's outcome, not ours to raise
                result = {"error": str(exc)}
            content = result if isinstance(result, list) else str(result)
            self.messages.append({"role": "tool", "name": name, "content": content})


def _next_turn(model, processing_class, rollouts: list[_Rollout], max_new_tokens: int, temperature) -> None:
    """Generate the next assistant turn of every rollout (one batch), parsed into content and tool calls."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    vision = rollouts[0].vision
    conversations = [r.prompt + r.messages for r in rollouts]
    inputs = _templated(processing_class, conversations, vision, tools=rollouts[0].tools).to(model.device)
    budget = max(1, max_new_tokens - min(r.length for r in rollouts))
    sampling = {"do_sample": False, "temperature": None}
    if temperature is not None:
        sampling = {"do_sample": True, "temperature": temperature}
    generated = model.generate(
        **inputs, **sampling, max_new_tokens=budget, pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=placeholder_ids(tokenizer) or None, top_p=None, top_k=None,
    )  # fmt: skip
    stops = stop_ids(tokenizer, model.generation_config.eos_token_id or None)
    for rollout, ids in zip(rollouts, generated[:, inputs["input_ids"].shape[1] :].tolist(), strict=True):
        ids = ids[: max_new_tokens - rollout.length]
        kept, cut = trim_at_stop(ids, stops)
        rollout.length += len(kept)
        rollout.truncated = cut
        text = tokenizer.decode(kept, skip_special_tokens=False)
        rollout.messages.append(_assistant_message(tokenizer, text))


def _idle_turn(model, processing_class, rollout: _Rollout) -> None:
    """A generation whose result is dropped: this rank's part in a peer's turn (ZeRO-3's gathers and
    ``synced_gpus``'s per-token all-reduce go on until every rank is done)."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    inputs = _templated(processing_class, [rollout.prompt], rollout.vision, tools=rollout.tools)
    model.generate(
        **inputs.to(model.device), do_sample=False, temperature=None, max_new_tokens=1,
        pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None,
    )  # fmt: skip


def _assistant_message(tokenizer, text: str) -> dict:
    """The turn as a message: ``tokenizer.parse_response`` (the tool template's parser, after the generation
    prompt that opened the turn) splits out the calls."""
    try:
        parsed = tokenizer.parse_response(text, prefix="<|im_start|>assistant\n")
    except Exception:  # an unparsable call (bad JSON): the turn stays text, and the rollout ends with it
        return {"role": "assistant", "content": text.removesuffix("<|im_end|>")}
    message = {"role": "assistant", "content": parsed.get("content") or ""}
    if parsed.get("tool_calls"):
        message["tool_calls"] = parsed["tool_calls"]
    return message
