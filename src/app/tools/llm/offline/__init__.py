"""Zero-config LLM: a deterministic writer, reached in process (`OfflineLLMService`) or through litellm.

It reads the JSON facts fenced in the last user message and writes a schema-valid answer from their
structured fields only (never free text such as notes), so output is grounded, repeatable and free of
anything a customer might have planted in their data. `provider.py` serves the same answers to litellm as the
custom provider `offline/...` (importing it imports litellm).
"""

from src.app.tools.llm.offline.service import OfflineLLMService

__all__ = ["OfflineLLMService"]
