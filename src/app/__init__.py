"""AI Customer Success Manager: a LangGraph agent graph over a book of customer accounts."""
