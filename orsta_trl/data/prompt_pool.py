"""The prompt pool: a "reason step by step" sentence and an "answer format" sentence appended to a prompt.

V-Triune appends one randomly chosen sentence of each kind to every ``mathverify`` prompt (``rl_dataset.py``)
so that training does not hang on one phrasing; their free-form pool has a missing comma that fuses two
sentences into one. Ours is our own wording, 12 + 12 sentences per pool:

* :data:`FREE_FORM` for records scored on the answer alone (``format_weight == 0``, V-Triune's
  ``format_ratio == 0``): reason, then put the answer in ``\\boxed{}``;
* :data:`TAGGED` for records that also score the format: reason inside ``<think>``, answer inside
  ``<answer>``, with the answer in ``\\boxed{}`` there.

Every answer policy of ``math``, ``count`` and ``ocr`` reads a ``\\boxed{}`` answer, in or out of
``<answer>``. Where we deviate: V-Triune draws anew at every ``__getitem__``; we draw once per record from
(seed, data_source, id), when records are loaded, so the same seed gives the same prompts, evaluation sees
exactly the prompt training saw, and the prompt-length filter counts the sentences. Recipe keys:
``prompt_pool`` (on/off, default off), ``prompt_pool_verifiers``, ``prompt_pool_seed``, and
``prompt_pool_free_form`` / ``prompt_pool_tagged`` (``[[first sentences], [second sentences]]``) to replace a pool.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from orsta_trl.data.records import Record

FREE_FORM: tuple[tuple[str, ...], tuple[str, ...]] = (
    (
        "Reason through the problem one step at a time.",
        "Work it out step by step before you answer.",
        "Show each step of your reasoning.",
        "Think the problem through carefully, step by step.",
        "Lay out your reasoning in clear steps.",
        "Go through the solution one step after another.",
        "Explain how you get there, step by step.",
        "Take it step by step and show your work.",
        "Write out your reasoning before giving the result.",
        "Solve it in small, explained steps.",
        "Start from what is given and reason forward step by step.",
        "Describe your chain of reasoning one step at a time.",
    ),
    (
        "Write the final answer inside \\boxed{}.",
        "End with the answer in \\boxed{}.",
        "Give the final result as \\boxed{answer}.",
        "Put only the final answer in \\boxed{}.",
        "Close with your answer wrapped in \\boxed{}.",
        "State the final answer in a \\boxed{}.",
        "Mark the final answer with \\boxed{}.",
        "Finish by writing the answer inside \\boxed{}.",
        "The last thing you write should be the answer in \\boxed{}.",
        "Box the final answer with \\boxed{}.",
        "Report the answer inside \\boxed{} at the end.",
        "Present the final value in \\boxed{}.",
    ),
)

TAGGED: tuple[tuple[str, ...], tuple[str, ...]] = (
    (
        "Reason step by step inside <think> </think>, then answer inside <answer> </answer>.",
        "Put your step-by-step reasoning in <think> </think> and the final answer in <answer> </answer>.",
        "Think it through inside <think> </think> first; give the answer inside <answer> </answer>.",
        "Write your reasoning between <think> and </think>, and your answer between <answer> and </answer>.",
        "First reason in <think> </think> tags, then state the answer in <answer> </answer> tags.",
        "Use <think> </think> for your working and <answer> </answer> for the result.",
        "Work through the problem inside <think> </think>; the answer goes inside <answer> </answer>.",
        "Keep your reasoning in <think> </think> and put the final answer in <answer> </answer>.",
        "Solve it step by step in <think> </think>, then write the answer in <answer> </answer>.",
        "Explain your steps inside <think> </think> before giving the answer inside <answer> </answer>.",
        "Reason inside <think> </think> and reply inside <answer> </answer>.",
        "Show your thinking within <think> </think> and your final answer within <answer> </answer>.",
    ),
    (
        "Inside <answer> </answer>, write the final answer in \\boxed{}.",
        "In the answer block, wrap the result in \\boxed{}.",
        "The <answer> block should hold the answer as \\boxed{answer}.",
        "Within <answer> </answer>, put the final answer in \\boxed{}.",
        "Box the answer with \\boxed{} inside the <answer> tags.",
        "Write \\boxed{} around the final answer in <answer> </answer>.",
        "Give the answer inside <answer> </answer> as \\boxed{}.",
        "Put the final value in \\boxed{} within the answer tags.",
        "In <answer> </answer>, mark the final answer with \\boxed{}.",
        "Use \\boxed{} for the final answer inside <answer> </answer>.",
        "Your <answer> block should contain \\boxed{} with the answer in it.",
        "Place the final answer in \\boxed{} inside <answer> </answer>.",
    ),
)


def check_pool(value, key: str) -> None:
    """Raise ValueError unless ``value`` is ``[[first sentences], [second sentences]]`` of non-empty strings."""
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(part, list | tuple) and part for part in value)
        and all(isinstance(s, str) and s.strip() for part in value for s in part)
    )
    if not ok:
        raise ValueError(f"{key} must be two non-empty lists of sentences: [[first ...], [second ...]]")


def pool_suffix(record: Record, seed: int, free_form=FREE_FORM, tagged=TAGGED) -> str:
    """The two sentences this record gets under ``seed`` (the pool chosen by its format weight).

    Args:
        record: a validated record.
        seed: the pool's seed.
        free_form: the free-form pool, ``(first sentences, second sentences)``.
        tagged: the ``<think>``/``<answer>`` pool.

    Returns:
        The two sentences, joined by a space.
    """
    first, second = tagged if record.reward.format_weight > 0 else free_form
    rng = random.Random(f"{seed}\x00{record.data_source}\x00{record.id}")
    return f"{rng.choice(list(first))} {rng.choice(list(second))}"


def apply_prompt_pool(
    records: Sequence[Record],
    *,
    verifiers: Sequence[str] | None = None,
    seed: int = 0,
    free_form=None,
    tagged=None,
) -> list[Record]:
    """Copies of the records whose verifier is in ``verifiers`` with the pool's sentences appended to the last
    user message (``"\\n\\n"`` + sentences); other records are returned as they are.

    Args:
        records: validated records.
        verifiers: verifier names to apply the pool to (None: every verifier whose ground truth is a short
            answer, ``Verifier.short_answer``: math, count, ocr and user verifiers that say so).
        seed: same seed, same sentences per record.
        free_form: replacement free-form pool (None: :data:`FREE_FORM`).
        tagged: replacement tagged pool (None: :data:`TAGGED`).

    Returns:
        The records, in order.
    """
    pools = (free_form or FREE_FORM, tagged or TAGGED)
    out = []
    for record in records:
        verifier = record.reward.verifier
        if not (verifier.short_answer if verifiers is None else verifier.name in verifiers):
            out.append(record)
            continue
        suffix = pool_suffix(record, seed, *pools)
        prompt = [dict(m, content=list(m["content"])) for m in record.prompt]
        users = [m for m in prompt if m["role"] == "user"] or prompt
        content = users[-1]["content"]
        if content and content[-1]["type"] == "text":
            content[-1] = {"type": "text", "text": f"{content[-1]['text']}\n\n{suffix}"}
        else:
            content.append({"type": "text", "text": suffix})
        out.append(dataclasses.replace(record, prompt=prompt))
    return out


def pooled(records: Sequence[Record], orsta) -> list[Record]:
    """:func:`apply_prompt_pool` with a recipe's settings (``orsta``: an OrstaConfig); unchanged when it is off.

    Args:
        records: validated records.
        orsta: the recipe's OrstaConfig (read: ``prompt_pool``, ``prompt_pool_verifiers``, ``prompt_pool_seed``,
            ``prompt_pool_free_form``, ``prompt_pool_tagged``).

    Returns:
        The records to train or evaluate on.
    """
    if not getattr(orsta, "prompt_pool", False):
        return list(records)
    return apply_prompt_pool(
        records,
        verifiers=None if orsta.prompt_pool_verifiers is None else tuple(orsta.prompt_pool_verifiers),
        seed=int(orsta.prompt_pool_seed),
        free_form=orsta.prompt_pool_free_form,
        tagged=orsta.prompt_pool_tagged,
    )
