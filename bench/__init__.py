"""Benchmarks: each script compares the suite with its usual peer side by side in one run."""
