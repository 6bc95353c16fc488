"""Orchestration of rewards: the router (TRL's reward protocol), the worker pool, the reward formula, the
settings and the per-sample row type. Imports verifiers and data, never the monitor or the trainer."""

from orsta_trl.rewards.formula import combine
from orsta_trl.rewards.pool import WorkerPool
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample
from orsta_trl.verifiers.base import RewardSettings

__all__ = ["RewardRouter", "RewardSettings", "Sample", "WorkerPool", "combine"]
