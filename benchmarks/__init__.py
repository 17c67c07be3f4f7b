"""Benchmarks against normflows and FrEIA; scripts, not tests (see benchmarks/README.md)."""
