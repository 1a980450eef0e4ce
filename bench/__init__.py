"""Benchmarks (not part of the unit tests): run with `make bench`."""
