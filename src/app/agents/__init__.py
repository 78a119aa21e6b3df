"""Agent facades: the platform-facing `execute(task, context)` contract over the graphs."""
