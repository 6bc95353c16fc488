"""Model helpers for orsta-trl (tiny offline checkpoints, parameter counting)."""
