"""The seed's home of `CSMHealthScorer` (implemented, pure, in `src.app.analysis.health`)."""

from src.app.analysis.health import CSMHealthScorer, Scorecard

__all__ = ["CSMHealthScorer", "Scorecard"]
