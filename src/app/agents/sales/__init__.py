"""The Sales agent facade: the target of the CSM agent's expansion hand-offs."""

from src.app.agents.sales.agent import SalesAgent

__all__ = ["SalesAgent"]
