"""Seeded, deterministic generators of synthetic source data for the drop-folder inbox."""
