"""Source-level monitoring: every metric per data_source."""
