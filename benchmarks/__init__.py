"""Benchmarks run by `scripts/bench <name>`; each module here with a `main()` is one benchmark."""
