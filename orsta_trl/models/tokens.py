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
