"""Integrations: one Protocol per capability, with an embedded default adapter and real adapters."""
