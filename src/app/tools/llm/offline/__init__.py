"""Zero-config LLM: a deterministic writer served through litellm as the custom provider `offline/csm`.

It reads the JSON facts fenced in the last user message and writes a schema-valid answer from their
structured fields only (never free text such as notes), so output is grounded, repeatable and free of
anything a customer might have planted in their data.
"""

from src.app.tools.llm.offline.provider import OFFLINE_PROVIDER, OfflineWriter, register_offline_provider

__all__ = ["OFFLINE_PROVIDER", "OfflineWriter", "register_offline_provider"]
