"""Parley's benchmarks (``make bench``): they print their numbers and write ``bench/results/latest.json``.

Not tests: nothing here asserts a target; ``docs/performance.md`` reads the numbers.
"""
