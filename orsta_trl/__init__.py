"""orsta-trl."""
