"""Token-level facts shared by training and evaluation: placeholder tokens, stop tokens, truncation.

One definition each, so the trainer's monitor and the decoupled evaluation count lengths and truncation alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Vision placeholder tokens that must never appear inside a completion (they break the feature count).
PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_pad|>")


def placeholder_ids(tokenizer) -> list[int]:
    """The ids of :data:`PLACEHOLDER_TOKENS` that the tokenizer knows (none for a text-only tokenizer)."""
    ids = (tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS)
    return sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})


def stop_ids(tokenizer, eos_ids: int | Iterable[int] | None = None) -> frozenset[int]:
    """Tokens that end a completion: the generation config's EOS ids (else the tokenizer's) and the pad token."""
    if eos_ids is None:
        eos_ids = [tokenizer.eos_token_id]
    elif isinstance(eos_ids, int):
        eos_ids = [eos_ids]
    return frozenset(i for i in (*eos_ids, tokenizer.pad_token_id) if i is not None)


def drop_placeholders(completion_ids, logprobs, placeholder_ids, empty_id: int):
    """Drop placeholder tokens from sampled completions (and their sampling log-probs); count them.

    Dropped, not replaced: any stand-in token either is a stop token (Qwen2.5's pad ``<|endoftext|>`` is also an
    EOS id) and would end the completion early for the reward while the loss trains on all of it, or is a
    token the model never sampled. After the drop the reward's text, the monitor's length and TRL's completion
    mask cover the same tokens. A completion that was nothing but placeholders becomes ``[empty_id]`` (an EOS,
    log-prob None: left out of TRL's importance-sampling correction), since TRL needs a last token.

    Args:
        completion_ids: one list (or 1-D tensor) of token ids per completion.
        logprobs: the sampling log-prob of each token (vLLM), parallel to ``completion_ids``, or None.
        placeholder_ids: the ids to drop (:func:`placeholder_ids`).
        empty_id: the token a completion left empty becomes (the EOS id).

    Returns:
        (completion ids, log-probs or None, how many tokens were dropped).

    >>> drop_placeholders([[5, 9, 6], [9]], [[-0.1, -0.2, -0.3], [-0.4]], [9], 2)
    ([[5, 6], [2]], [[-0.1, -0.3], [None]], 2)
    """
    blocked = set(placeholder_ids)
    dropped = 0
    out_ids, out_logprobs = [], None if logprobs is None else []
    for n, ids in enumerate(completion_ids):
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        keep = [i for i, token in enumerate(ids) if token not in blocked]
        dropped += len(ids) - len(keep)
        emptied = not keep and bool(ids)
        out_ids.append([empty_id] if emptied else [ids[i] for i in keep])
        if logprobs is not None:
            out_logprobs.append([None] if emptied else [logprobs[n][i] for i in keep])
    return out_ids, out_logprobs, dropped


def trim_at_stop(ids: Sequence[int], stops: Iterable[int]) -> tuple[list[int], bool]:
    """The ids up to and including the first stop token, and whether there was none (the completion was cut).

    >>> trim_at_stop([5, 6, 2, 0, 0], {2, 0})
    ([5, 6, 2], False)
    >>> trim_at_stop([5, 6], {2})
    ([5, 6], True)
    """
    stops = set(stops)
    ids = list(ids)
    for position, token in enumerate(ids):
        if token in stops:
            return ids[: position + 1], False
    return ids, True
