"""`LLMService` for the offline writer that needs no litellm: the same answers and counts, without its import cost."""

from __future__ import annotations

from pydantic import BaseModel

from src.app.config import OFFLINE_MODEL
from src.app.tools.llm import LLMReply
from src.app.tools.llm.offline.answers import estimated_tokens, message_text, write_answer


class OfflineLLMService:
    """Answers every completion with the offline writer, in process (litellm's ~4 s import is never paid).

    The replies are the ones the litellm custom provider `offline/...` gives for the same prompt and schema,
    with the same token estimate and a cost of 0, so a run reads the same whichever way the writer is reached.
    """

    def __init__(self, model: str = OFFLINE_MODEL) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"OfflineLLMService(model={self.model!r})"

    async def complete(self, messages: list[dict[str, str]], *, schema: type[BaseModel]) -> LLMReply:
        """Write the answer `schema` asks for from the facts fenced in `messages`."""
        spec = {"name": schema.__name__, "schema": schema.model_json_schema()}
        content = write_answer(list(messages), {"type": "json_schema", "json_schema": spec})
        return LLMReply(
            content=content,
            prompt_tokens=estimated_tokens("".join(message_text(message) for message in messages)),
            completion_tokens=estimated_tokens(content),
            model=self.model,
        )
