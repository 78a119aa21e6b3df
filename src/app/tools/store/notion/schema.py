"""Check configured Notion databases against the properties the agent reads and writes (`csm notion check`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from src.app.config import CSMSettings
from src.app.tools.store.notion.api import NotionAPI, NotionError
from src.app.tools.store.notion.properties import (
    ACCEPTED_TYPES,
    ACCOUNT_PROPERTIES,
    EXPANSION_PROPERTIES,
    QBR_PROPERTIES,
    REQUIRED_ACCOUNT_FIELDS,
    WRITE_BACK_PROPERTIES,
    ArtifactProperty,
)

CheckStatus = Literal["ok", "missing", "wrong_type"]


@dataclass(frozen=True)
class Expectation:
    """A property the agent uses: the names it may have, the types it may be, and whether it must exist."""

    names: tuple[str, ...]
    types: frozenset[str]
    required: bool
    purpose: str


@dataclass(frozen=True)
class PropertyCheck:
    """How one expected property was found in a data source."""

    name: str
    expected_types: list[str]
    required: bool
    purpose: str
    status: CheckStatus
    found_name: str | None = None
    found_type: str | None = None


@dataclass
class DatabaseCheck:
    """The check of one configured database: its data source and each expected property, or why it failed."""

    database: str
    database_id: str
    data_source_id: str | None = None
    error: str | None = None
    properties: list[PropertyCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when readable, nothing required is missing and nothing present has a type the agent cannot use."""
        if self.error is not None:
            return False
        return not any(p.status == "wrong_type" or (p.status == "missing" and p.required) for p in self.properties)


def account_expectations() -> list[Expectation]:
    """The accounts database: one property per mapped account field, plus the three write-back properties."""
    fields = [
        Expectation(spec.accepted_names, ACCEPTED_TYPES[spec.kind], spec.field in REQUIRED_ACCOUNT_FIELDS, spec.field)
        for spec in ACCOUNT_PROPERTIES
    ]
    write_back = [
        Expectation((name,), frozenset({kind}), True, f"write-back: {role}")
        for role, (name, kind) in WRITE_BACK_PROPERTIES.items()
    ]
    return fields + write_back


def artifact_expectations(properties: Sequence[ArtifactProperty]) -> list[Expectation]:
    """A QBR or expansion database: the properties the agent writes."""
    return [Expectation((p.name,), p.types, p.required, "written") for p in properties]


EXPECTATIONS: dict[str, list[Expectation]] = {
    "accounts": account_expectations(),
    "qbr": artifact_expectations(QBR_PROPERTIES),
    "expansion": artifact_expectations(EXPANSION_PROPERTIES),
}


def check_properties(schema: Mapping[str, str], expectations: Sequence[Expectation]) -> list[PropertyCheck]:
    """Each expectation against a schema ({property name: type}); names match case-insensitively.

    An expectation that accepts a title is met by the data source's title property whatever its name.
    """
    by_name = {name.casefold(): name for name in schema}
    title = next((name for name, kind in schema.items() if kind == "title"), None)
    checks = []
    for expected in expectations:
        found = next((by_name[n.casefold()] for n in expected.names if n.casefold() in by_name), None)
        if found is None and "title" in expected.types and expected.required:
            found = title
        status: CheckStatus = "missing" if found is None else "ok" if schema[found] in expected.types else "wrong_type"
        checks.append(
            PropertyCheck(
                name=expected.names[0],
                expected_types=sorted(expected.types),
                required=expected.required,
                purpose=expected.purpose,
                status=status,
                found_name=found,
                found_type=None if found is None else schema[found],
            )
        )
    return checks


def configured_databases(settings: CSMSettings) -> dict[str, str]:
    """The configured database ids by role (accounts, qbr, expansion)."""
    ids = {
        "accounts": settings.notion_accounts_database_id,
        "qbr": settings.notion_qbr_database_id,
        "expansion": settings.notion_expansion_database_id,
    }
    return {role: database_id for role, database_id in ids.items() if database_id}


async def check_database(api: NotionAPI, database: str, database_id: str) -> DatabaseCheck:
    """Retrieve one database's data source schema and check it; a Notion error is reported, not raised."""
    check = DatabaseCheck(database=database, database_id=database_id)
    try:
        check.data_source_id = await api.data_source_id(database_id)
        source = await api.retrieve_data_source(check.data_source_id)
    except NotionError as error:
        check.error = str(error)
        return check
    schema = {name: str(prop["type"]) for name, prop in source["properties"].items()}
    check.properties = check_properties(schema, EXPECTATIONS[database])
    return check
