"""Benchmarks (make bench): figures against targets, never pass/fail."""
