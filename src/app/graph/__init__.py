"""Graph wiring only: each module exposes `build_<name>_graph()` and a compiled module-level `graph`."""
