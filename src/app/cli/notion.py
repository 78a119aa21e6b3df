"""`csm notion check`: validate the configured Notion databases' schemas and list missing or mistyped properties."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from src.app.config import CSMSettings

notion_app = typer.Typer(help="Notion backend: check the configured databases.", no_args_is_help=True)


@notion_app.command()
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")] = False,
) -> None:
    """Check each configured database: which expected properties are missing or have the wrong type.

    Exits 1 when a database cannot be read, a required property is missing or a property has an unusable type.
    """
    from src.app.config import CSMSettings

    report = asyncio.run(run_check(CSMSettings()))
    if as_json:
        typer.echo(json.dumps(report))
    else:
        _render(report)
    if not report["ok"]:
        raise typer.Exit(code=1)


async def run_check(settings: CSMSettings) -> dict[str, Any]:
    """The check report of every configured database (JSON-safe)."""
    from dataclasses import asdict

    from src.app.tools.store.notion.api import NotionAPI, RetryPolicy
    from src.app.tools.store.notion.schema import check_database, configured_databases

    databases = configured_databases(settings)
    if settings.notion_token is None or "accounts" not in databases:
        error = "Set CSM_NOTION_TOKEN and CSM_NOTION_ACCOUNTS_DATABASE_ID to use Notion"
        return {"ok": False, "error": error, "databases": []}
    api = NotionAPI(
        token=settings.notion_token.get_secret_value(),
        base_url=settings.notion_base_url,
        requests_per_s=settings.notion_requests_per_s,
        retry=RetryPolicy(max_attempts=3),
    )
    try:
        checks = [await check_database(api, role, database_id) for role, database_id in databases.items()]
    finally:
        await api.aclose()
    return {
        "ok": all(c.ok for c in checks),
        "error": None,
        "databases": [{**asdict(c), "ok": c.ok} for c in checks],
    }


def _render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if report["error"]:
        console.print(f"[red]{report['error']}[/red]")
    for database in report["databases"]:
        verdict = "[green]OK[/green]" if database["ok"] else "[red]PROBLEMS[/red]"
        console.print(f"[bold]{database['database']}[/bold] database {database['database_id']}: {verdict}")
        if database["error"]:
            console.print(f"  [red]{database['error']}[/red]")
            continue
        problems = [p for p in database["properties"] if p["status"] != "ok"]
        problems.sort(key=lambda p: not (p["required"] or p["status"] == "wrong_type"))
        present = len(database["properties"]) - len(problems)
        console.print(f"  {present} of {len(database['properties'])} expected properties present and usable")
        if not problems:
            continue
        table = Table("property", "problem", "expected type", "found", "required", "used for")
        for prop in problems:
            found = f"{prop['found_name']} ({prop['found_type']})" if prop["found_name"] else "-"
            style = "red" if prop["required"] or prop["status"] == "wrong_type" else "dim"
            table.add_row(
                prop["name"],
                prop["status"].replace("_", " "),
                " | ".join(prop["expected_types"]),
                found,
                "yes" if prop["required"] else "no",
                prop["purpose"],
                style=style,
            )
        console.print(table)
