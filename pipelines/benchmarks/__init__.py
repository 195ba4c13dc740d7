"""Speed and accuracy benchmarks; results and commands in docs/BENCHMARKS.md."""
