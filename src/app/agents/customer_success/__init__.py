"""The customer-success agent facade and its scheduler."""

from src.app.agents.customer_success.agent import CustomerSuccessAgent
from src.app.agents.customer_success.scheduler import CSMScheduler

__all__ = ["CSMScheduler", "CustomerSuccessAgent"]
