"""Development tools the demo, the tests and the benchmarks share (not part of either service)."""
