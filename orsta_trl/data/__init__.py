"""Data: record loading and synthetic data generation."""
