"""Plateau test suite (a regular package so it shadows the stray top-level `tests` that sippy 2.5.0 installs)."""
