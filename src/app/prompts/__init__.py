"""Prompt text only: one module per subgraph, with documented placeholders."""
