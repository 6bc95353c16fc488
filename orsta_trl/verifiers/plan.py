"""``plan``: a planner's task graph, as JSON.

The output (``<answer>`` block else the whole completion, code fence removed) must be
``{"steps": [{"id": str, "agent": str, "task": str, "depends_on": [id, ...]}, ...]}`` (extra keys are
ignored; ids and agents are non-empty). ``format`` is 1 when it has that shape.

``accuracy`` is 1 when the plan is a valid DAG (unique ids, every dependency exists, no cycle) whose agents all
belong to ``params.agents`` (when given); with a reference plan as ground truth (same shape; null means none)
it is multiplied by the F1 of the (agent, dependency's agent) edge sets of the two plans (1 when both are
empty). Otherwise 0. Part ``valid_dag`` is 1/0 for the validity test alone.

Reason codes: ``invalid_json``, ``bad_plan`` (wrong shape), ``duplicate_id``, ``missing_dependency``,
``cycle``, ``unknown_agent``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any

from orsta_trl.verifiers.answer import extract
from orsta_trl.verifiers.base import Context, FieldError, Verdict, Verifier

PARTS = ("valid_dag",)


@dataclass(frozen=True)
class Step:
    id: str
    agent: str
    task: str
    depends_on: tuple[str, ...]


def parse_plan(value: Any) -> tuple[Step, ...] | None:
    """The steps of a plan-shaped JSON value, else None."""
    steps = value.get("steps") if isinstance(value, dict) else None
    if not isinstance(steps, list) or not steps:
        return None
    parsed = []
    for step in steps:
        if not isinstance(step, dict):
            return None
        sid, agent, task, deps = (step.get(k) for k in ("id", "agent", "task", "depends_on"))
        if not (isinstance(sid, str) and sid and isinstance(agent, str) and agent and isinstance(task, str)):
            return None
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            return None
        parsed.append(Step(sid, agent, task, tuple(deps)))
    return tuple(parsed)


def plan_problem(steps: tuple[Step, ...], agents: tuple[str, ...] | None = None) -> str | None:
    """The reason code of the first validity problem of a plan, None for a valid DAG."""
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        return "duplicate_id"
    known = set(ids)
    if any(d not in known for s in steps for d in s.depends_on):
        return "missing_dependency"
    try:
        TopologicalSorter({s.id: s.depends_on for s in steps}).prepare()
    except CycleError:
        return "cycle"
    if agents is not None and any(s.agent not in agents for s in steps):
        return "unknown_agent"
    return None


def agent_edges(steps: tuple[Step, ...]) -> frozenset[tuple[str, str]]:
    """The (agent, dependency's agent) pairs of a plan with unique ids."""
    agent_of = {s.id: s.agent for s in steps}
    return frozenset((s.agent, agent_of[d]) for s in steps for d in s.depends_on if d in agent_of)


def edge_f1(pred: frozenset, ref: frozenset) -> float:
    """F1 of two edge sets (1 when both are empty)."""
    if not pred and not ref:
        return 1.0
    return 2 * len(pred & ref) / (len(pred) + len(ref))


def plan_scores(
    output: str, agents: tuple[str, ...] | None = None, reference: frozenset | None = None
) -> dict:
    """``accuracy``, ``format``, ``valid_dag`` and ``reason`` for an extracted output; ``reference`` is the
    reference plan's :func:`agent_edges` (None: no reference)."""
    try:
        value = json.loads(output)
    except (ValueError, RecursionError):
        return {"accuracy": 0.0, "format": 0.0, "valid_dag": 0.0, "reason": "invalid_json"}
    steps = parse_plan(value)
    if steps is None:
        return {"accuracy": 0.0, "format": 0.0, "valid_dag": 0.0, "reason": "bad_plan"}
    reason = plan_problem(steps, agents)
    if reason is not None:
        return {"accuracy": 0.0, "format": 1.0, "valid_dag": 0.0, "reason": reason}
    accuracy = 1.0 if reference is None else edge_f1(agent_edges(steps), reference)
    return {"accuracy": accuracy, "format": 1.0, "valid_dag": 1.0, "reason": None}


@dataclass(frozen=True)
class PlanParams:
    agents: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.agents is None:
            return
        if (
            not isinstance(self.agents, list | tuple)
            or not self.agents
            or not all(isinstance(a, str) and a for a in self.agents)
        ):
            raise FieldError(
                "reward.params.agents", f"must be a non-empty list of agent names, got {self.agents!r:.80}"
            )
        object.__setattr__(self, "agents", tuple(self.agents))


class PlanVerifier(Verifier):
    """A planner's JSON DAG: valid structure, known agents, and agreement with a reference plan."""

    name = "plan"
    answer_policy = "json"
    Params = PlanParams
    parts = PARTS

    def prepare(self, ground_truth: Any, params: PlanParams) -> frozenset | None:
        if ground_truth is None:
            return None
        if isinstance(ground_truth, str):
            try:
                ground_truth = json.loads(ground_truth)
            except ValueError:
                raise FieldError("reward.ground_truth", "reference plan is not valid JSON") from None
        steps = parse_plan(ground_truth)
        if steps is None:
            raise FieldError(
                "reward.ground_truth",
                'reference plan must be {"steps": [{"id", "agent", "task", "depends_on"}]}',
            )
        problem = plan_problem(steps)
        if problem is not None:
            raise FieldError("reward.ground_truth", f"reference plan is not a valid DAG ({problem})")
        return agent_edges(steps)

    def score(self, text: str, gold: frozenset | None, params: PlanParams, ctx: Context) -> Verdict:
        s = plan_scores(extract(text, self.answer_policy), params.agents, gold)
        return Verdict(s["accuracy"], s["format"], {"valid_dag": s["valid_dag"]}, reason=s["reason"])
