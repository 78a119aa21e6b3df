"""The offline writer reached in process: the same replies as through litellm, and no litellm import at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from src.app.config import CSMSettings
from src.app.context import build_context
from src.app.nodes.llm import LLM_OUTPUT_SCHEMAS, prompt_requests
from src.app.prompts import expansion, feature_adoption, health_scan, qbr
from src.app.tools.llm.litellm_service import LiteLLMService
from src.app.tools.llm.offline import OfflineLLMService
from tests.unit.test_offline_llm import ACCOUNT, ADOPTION_FACTS, CHURN_FACTS, INTEGRATION, QBR_FACTS, SEATS

ROOT = Path(__file__).resolve().parents[2]
EXPANSION_FACTS = {"account": ACCOUNT, "candidates": [SEATS, INTEGRATION]}
CASES = [
    (health_scan, "ChurnNarrative", CHURN_FACTS),
    (qbr, "QBRNarrative", QBR_FACTS),
    (expansion, "ExpansionPitches", EXPANSION_FACTS),
    (feature_adoption, "AdoptionInsights", ADOPTION_FACTS),
]


@pytest.mark.parametrize(("prompt", "schema_name", "facts"), CASES, ids=[case[1] for case in CASES])
async def test_in_process_replies_equal_the_litellm_provider_replies(
    prompt: object, schema_name: str, facts: dict[str, object]
) -> None:
    [request] = prompt_requests({"acct-001": facts}, prompt, schema_name)  # type: ignore[arg-type]
    schema: type[BaseModel] = LLM_OUTPUT_SCHEMAS[schema_name]
    direct = await OfflineLLMService().complete(request["messages"], schema=schema)
    via_litellm = await LiteLLMService(model="offline/csm").complete(request["messages"], schema=schema)
    assert direct.content == via_litellm.content
    assert (direct.prompt_tokens, direct.completion_tokens) == (
        via_litellm.prompt_tokens,
        via_litellm.completion_tokens,
    )
    assert direct.model == via_litellm.model == "offline/csm" and direct.cost_usd == 0
    schema.model_validate_json(direct.content or "")


def test_the_default_model_is_served_in_process_and_a_real_model_through_litellm(settings: CSMSettings) -> None:
    assert isinstance(build_context(settings).llm, OfflineLLMService)
    real = settings.model_copy(update={"llm_model": "openai/gpt-4o-mini"})
    assert isinstance(build_context(real).llm, LiteLLMService)


def test_a_qbr_on_the_offline_writer_never_imports_litellm(tmp_path: Path) -> None:
    argv = ["qbr", "acct-0001", "--data-dir", str(tmp_path), "--json"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from src.app.cli import main; main()", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "CSM_LLM_MODEL": "offline/csm"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"qbr_page_id"' in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "src.app.tools.llm.offline.service" in imported
    assert not [module for module in imported if module.startswith("litellm")]
