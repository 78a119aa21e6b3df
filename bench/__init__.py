"""Benchmarks (not tests): each module runs alone as `python -m bench.<name>` and prints one JSON line last."""
