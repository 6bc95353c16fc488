"""``Sample``: one scored completion, the single row type from the router to the monitor, dumps, evaluation,
``score`` and the report.

The router fills what it knows (the record, the verifier, the verdict, the combined reward, the text); the
trainer and evaluation add what generation knows (the completion's length in tokens, whether it was
truncated, and the prompt group) with :meth:`Sample.with_generation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from orsta_trl.verifiers.base import Verdict


@dataclass(frozen=True)
class Sample:
    """One completion, scored.

    ``reward`` is the record's weighted combination of the verdict's parts (see :func:`combine`); ``accuracy``,
    ``format``, ``parts`` and ``reason`` are the verdict's. ``length`` counts completion tokens and
    ``truncated`` means no stop token within the length limit (:func:`orsta_trl.models.tokens.trim_at_stop`);
    ``group`` is shared by the completions of one prompt in one generation batch.
    """

    data_source: str
    id: str
    verifier: str = ""
    reward: float = 0.0
    accuracy: float = 0.0
    format: float = 0.0
    parts: Mapping[str, float] = field(default_factory=dict)
    reason: str | None = None
    text: str = ""
    length: int = 0
    truncated: bool = False
    group: object = None
    #: The tool loop's record of this rollout (``tool_outcomes``, ``tool_names``, ``turns``, ``hit_limit``;
    #: :func:`orsta_trl.rewards.rollout.read_rollout`), None outside tool use.
    tools: Mapping | None = None
    #: What lies behind ``reason`` (a judge's unparsable reply, shortened), for the dumps; None otherwise.
    detail: str | None = None

    @property
    def verdict(self) -> Verdict:
        return Verdict(self.accuracy, self.format, dict(self.parts), self.reason, self.detail)

    def with_generation(self, length: int, truncated: bool, group: object = None) -> Sample:
        """This sample with what generation knows added."""
        return dataclasses.replace(self, length=int(length), truncated=bool(truncated), group=group)

    def as_dict(self) -> dict:
        """The fields ``orsta-trl score`` writes: id, data_source, verifier, reward and the verdict."""
        return {
            "id": self.id,
            "data_source": self.data_source,
            "verifier": self.verifier,
            "reward": self.reward,
            **self.verdict.as_dict(),
        }
