"""The benchmarks: `make bench` (or `python -m bench`) runs every scenario against one
fresh local broker, with its references measured in the same run, and writes the report."""
