"""``OrstaGRPOTrainer``: TRL's GRPOTrainer with the few overrides a V-Triune run needs.

What it changes, and why:

* ``__init__``: forces left padding on whatever processor is passed (M-RoPE misaligns otherwise), freezes the
  vision tower (and merger) before ``train()`` builds the optimizer, and prints parameter counts.
* ``_generate_single_turn``: image/video placeholder tokens sampled inside a completion would break the
  feature count of the training forward. HF generation suppresses only ``<|image_pad|>`` and vLLM suppresses
  nothing, so every placeholder (image, video, vision pad) is replaced by the pad token on both paths before
  log-probs are recomputed, as V-Triune does; the number replaced is logged.
* ``_calculate_rewards``: after TRL calls the router, the router's verdicts feed the per-source summary.

Deviation from TRL: nothing in the loss or the advantage computation is changed.
"""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from orsta_trl.models.loading import enforce_left_padding, format_counts, freeze_vision, parameter_counts
from orsta_trl.monitor.summary import SourceSummary

PLACEHOLDER_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_pad|>")


class OrstaGRPOTrainer(GRPOTrainer):
    def __init__(self, *args, router, freeze_vision_tower: bool = True, freeze_merger: bool = True, **kwargs):
        processing_class = kwargs.get("processing_class")
        if processing_class is not None:
            enforce_left_padding(processing_class)
        self.router = router
        self.summary = SourceSummary()
        self.placeholders_replaced = 0
        super().__init__(*args, reward_funcs=[router], **kwargs)
        enforce_left_padding(self.processing_class)
        if freeze_vision_tower:
            freeze_vision(self.model, freeze_merger=freeze_merger)
        self.parameter_counts = parameter_counts(self.model)
        if self.accelerator.is_main_process:
            print(format_counts(self.parameter_counts), flush=True)
        tokenizer = self._tokenizer
        ids = [tokenizer.convert_tokens_to_ids(t) for t in PLACEHOLDER_TOKENS]
        self._placeholder_ids = sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        if self._placeholder_ids:
            completion_ids, replaced = replace_placeholders(
                completion_ids, self._placeholder_ids, self._tokenizer.pad_token_id
            )
            self.placeholders_replaced += replaced
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["completions/placeholders_replaced"].append(float(replaced))
        return completion_ids, logprobs

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.model.training and len(self.router.last) == len(completion_ids_list):
            self.summary.update(self.state.global_step, self.router.last, [len(c) for c in completion_ids_list])
        return rewards


def replace_placeholders(completion_ids: list[list[int]], placeholder_ids, pad_id: int):
    """Replace placeholder token ids with ``pad_id`` (lengths unchanged); return (new ids, how many replaced).

    >>> replace_placeholders([[5, 9, 6], [9]], [9], 0)
    ([[5, 0, 6], [0]], 2)
    """
    blocked = set(placeholder_ids)
    replaced = 0
    out = []
    for ids in completion_ids:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        hits = sum(1 for t in ids if t in blocked)
        replaced += hits
        out.append([pad_id if t in blocked else t for t in ids] if hits else ids)
    return out, replaced
