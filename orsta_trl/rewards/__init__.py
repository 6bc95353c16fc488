"""Orchestration of rewards: the router (TRL's reward protocol), the worker pool, the judges, the per-sample row
type; the reward formula and settings are re-exported from the verifiers layer, where they live. Imports
verifiers and data, never the monitor or the trainer."""

from orsta_trl.rewards.pool import WorkerPool
from orsta_trl.rewards.router import RewardRouter
from orsta_trl.rewards.sample import Sample
from orsta_trl.verifiers.base import RewardSettings
from orsta_trl.verifiers.reward import combine

__all__ = ["RewardRouter", "RewardSettings", "Sample", "WorkerPool", "combine"]
