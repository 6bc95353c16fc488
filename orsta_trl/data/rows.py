"""From validated records to the rows TRL's GRPOTrainer reads, and the prompt-length filter.

A TRL row holds ``prompt`` (conversational, ``{"type": "image"}`` placeholders), ``images`` (decoded lazily by
``datasets``), and the reward keys ``data_source`` and ``id`` with which the router finds the record. Ground
truths stay out of the Arrow table (their types differ from task to task); the router holds the prepared
records.

GRPOConfig has no ``max_prompt_length`` any more, so prompts that would not fit are dropped here, before
training: the length counts the chat template's text tokens (with the tool schemas it lists, in a run with
tools) plus, per image, the tokens the processor will make of it at the recipe's pixel bounds (computed from
the image size, without decoding pixels).
"""

from __future__ import annotations

from collections import Counter

from orsta_trl.data.records import Record


def image_token_count(processor, width: int, height: int) -> int:
    """How many ``<|image_pad|>`` tokens the processor makes of one image of this size."""
    image_processor = processor.image_processor
    patches = image_processor.get_number_of_image_patches(height, width, {})
    return patches // (image_processor.merge_size**2)


def prompt_length(record: Record, processing_class, tools: list | None = None) -> int:
    """Tokens of the templated prompt, image tokens and the schemas of ``tools`` (the run's tools) included."""
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    text = processing_class.apply_chat_template(
        prompt_messages(record, vision=tokenizer is not processing_class),
        tools=tools or None,
        tokenize=False,
        add_generation_prompt=True,
    )
    length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    for width, height in record.image_sizes:
        length += (
            image_token_count(processing_class, width, height) - 1
        )  # the template wrote one pad per image
    return length


def filter_long_prompts(
    records: list[Record], processing_class, max_prompt_length: int, tools: list | None = None
):
    """Keep records whose prompt fits, the tool schemas the template writes into it counted; return (kept,
    dropped count per data_source)."""
    kept, dropped = [], Counter()
    for record in records:
        if prompt_length(record, processing_class, tools) <= max_prompt_length:
            kept.append(record)
        else:
            dropped[record.data_source] += 1
    return kept, dropped


def prompt_messages(record: Record, *, vision: bool) -> list[dict]:
    """The record's prompt for a processor (content parts) or a text tokenizer (plain strings)."""
    if vision:
        return record.prompt
    return [
        {"role": m["role"], "content": "".join(p.get("text") or "" for p in m["content"])}
        for m in record.prompt
    ]


def to_trl_dataset(records: list[Record], *, vision: bool):
    """A ``datasets.Dataset`` with the columns GRPOTrainer and the router need."""
    import datasets

    rows = [
        {"prompt": prompt_messages(r, vision=vision), "data_source": r.data_source, "id": r.id}
        for r in records
    ]
    with_images = vision and any(r.images for r in records)
    if with_images:
        for row, record in zip(rows, records, strict=True):
            row["images"] = list(record.images)
    dataset = datasets.Dataset.from_list(rows)
    if with_images:
        dataset = dataset.cast_column("images", datasets.List(datasets.Image()))
    return dataset
