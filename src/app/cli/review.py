"""`csm drafts`, `csm accounts` and `csm users`: the review queue, the book and desk users from a terminal."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the store and the desk load only when a command runs, so `csm --help` stays fast
    from contextlib import AbstractAsyncContextManager

    from src.app.desk.review import DraftReview
    from src.app.tools.store import DraftRecord, DraftStatus
    from src.app.tools.store.sql_review import AccountRow, Role

T = TypeVar("T")
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Folder for the store and outbox.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
ByOption = Annotated[
    str | None, typer.Option("--as", help="Who decides (default: $CSM_REVIEWER, else the login name).")
]
STATUS_STYLE = {"pending": "yellow", "approved": "green", "edited": "cyan", "rejected": "red"}

drafts_app = typer.Typer(help="The review queue: list, show, approve, edit or reject drafts (nothing is ever sent).")
accounts_app = typer.Typer(help="Accounts in the store: list (owner filter, search) and show one with its history.")
users_app = typer.Typer(help="People who may sign in to the review desk.")


def _run(work: Awaitable[T]) -> T:
    from src.app.desk.review import ReviewError
    from src.app.tools.store.sql_review import UserExists

    try:
        return asyncio.run(work)  # type: ignore[arg-type]
    except (ReviewError, UserExists, ValueError) as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(code=1) from None


def _review(data_dir: Path | None) -> AbstractAsyncContextManager[DraftReview]:
    """The review queue on the configured store (see `open_review`)."""
    from src.app.config import settings_for
    from src.app.desk.review import open_review

    return open_review(settings_for(data_dir))


def _reviewer(by: str | None) -> str:
    return by or os.environ.get("CSM_REVIEWER") or f"{getpass.getuser()}@cli"


def _emit(payload: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload, default=str))


@drafts_app.callback(invoke_without_command=True)
def drafts(ctx: typer.Context, data_dir: DataDirOption = None, limit: int = 20, as_json: JsonOption = False) -> None:
    """List drafts, newest first (same as `csm drafts list`)."""
    if ctx.invoked_subcommand is None:
        list_drafts(data_dir=data_dir, limit=limit, as_json=as_json)


@drafts_app.command("list")
def list_drafts(
    status: Annotated[str | None, typer.Option(help="pending, approved, edited or rejected.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account (id or name).")] = None,
    owner: Annotated[str | None, typer.Option(help="Only accounts of this rep (email).")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. qbr, churn_alert.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List drafts with status, account, kind, age and recipient."""
    if status is not None and status not in STATUS_STYLE:
        raise typer.BadParameter(f"unknown status {status!r}; one of {', '.join(STATUS_STYLE)}", param_hint="--status")

    async def work() -> list[DraftRecord]:
        async with _review(data_dir) as review:
            account_id = None if account is None else await _account_id(review, account)
            wanted: DraftStatus | None = status  # type: ignore[assignment]
            return await review.records.drafts(
                status=wanted, account_id=account_id, owner=owner, kind=kind, limit=limit
            )

    found = _run(work())
    render_draft_list(Console(quiet=as_json), found)
    _emit({"drafts": [d.model_dump(mode="json", exclude={"body_html"}) for d in found]}, as_json)


@drafts_app.command("show")
def show_draft(draft_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Show one draft: headers, status and the text a person will read."""

    async def work() -> DraftRecord:
        async with _review(data_dir) as review:
            draft = await review.records.draft(draft_id)
        if draft is None:
            raise ValueError(f"No draft {draft_id!r}")
        return draft

    from src.app.tools.mail.outbox import html_to_text

    draft = _run(work())
    console = Console(quiet=as_json)
    console.print(f"[bold]{escape(draft.subject)}[/bold]")
    console.print(f"To: {escape(draft.to)}   kind: {draft.kind}   account: {draft.account_id or '-'}")
    console.print(f"Status: [{STATUS_STYLE[draft.status]}]{draft.status}[/]" + _decided(draft))
    console.print(f"Mailbox copy: {draft.location or 'none yet (held until approved)'}\n")
    console.print(escape(draft.body_text or html_to_text(draft.body_html)))
    _emit(draft.model_dump(mode="json"), as_json)


@drafts_app.command("approve")
def approve(
    draft_ids: list[str], by: ByOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False
) -> None:
    """Approve drafts as written; held drafts are created in the mailbox now (still drafts, never sent)."""

    async def work() -> list[dict[str, Any]]:
        async with _review(data_dir) as review:
            outcomes = [await review.approve(draft_id, by=_reviewer(by)) for draft_id in draft_ids]
        return [
            {
                "draft_id": o.draft.draft_id,
                "status": o.draft.status,
                "changed": o.changed,
                "delivered": o.delivered,
                "location": o.draft.location,
            }
            for o in outcomes
        ]

    results = _run(work())
    console = Console(quiet=as_json)
    for result in results:
        note = "approved" if result["changed"] else f"already {result['status']}"
        console.print(
            f"{result['draft_id']}: {note}"
            + (f"; draft created at {result['location']}" if result["delivered"] else "")
        )
    _emit({"approved": results}, as_json)


@drafts_app.command("reject")
def reject(
    draft_id: str,
    reason: Annotated[str, typer.Option(help="Why: 'false alarm', 'already handled', 'wrong owner' or free text.")],
    by: ByOption = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a draft with a reason (a churn alert rejected as 'false alarm' is kept as a label)."""

    async def work() -> dict[str, Any]:
        async with _review(data_dir) as review:
            outcome = await review.reject(draft_id, by=_reviewer(by), reason=reason)
        return {"draft_id": draft_id, "status": outcome.draft.status, "changed": outcome.changed, "reason": reason}

    result = _run(work())
    Console(quiet=as_json).print(f"{draft_id}: {'rejected' if result['changed'] else 'already rejected'} ({reason})")
    _emit(result, as_json)


@drafts_app.command("edit")
def edit(draft_id: str, by: ByOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Edit a draft's subject and body in $EDITOR, then approve it as edited."""
    from src.app.tools.mail.outbox import html_to_text

    async def load() -> DraftRecord:
        async with _review(data_dir) as review:
            draft = await review.records.draft(draft_id)
        if draft is None:
            raise ValueError(f"No draft {draft_id!r}")
        if draft.status != "pending":
            raise ValueError(f"Draft {draft_id} is {draft.status}; only pending drafts can be edited")
        return draft

    draft = _run(load())
    original = f"Subject: {draft.subject}\n\n{draft.body_text or html_to_text(draft.body_html)}\n"
    changed = click.edit(original, extension=".txt")
    if changed is None or changed.strip() == original.strip():
        typer.echo("No changes; the draft is left as it was.")
        raise typer.Exit(code=0)
    subject, body = parse_edited(changed)

    async def save(review: DraftReview) -> dict[str, Any]:
        outcome = await review.edit(draft_id, by=_reviewer(by), subject=subject, body_text=body)
        return {"draft_id": draft_id, "status": outcome.draft.status, "location": outcome.draft.location}

    async def work() -> dict[str, Any]:
        async with _review(data_dir) as review:
            return await save(review)

    result = _run(work())
    Console(quiet=as_json).print(f"{draft_id}: edited and approved")
    _emit(result, as_json)


def parse_edited(text: str) -> tuple[str, str]:
    """The subject (a first `Subject:` line) and body of a draft edited as text."""
    head, _, body = text.lstrip().partition("\n")
    if not head.lower().startswith("subject:"):
        raise ValueError("The edited text must start with a 'Subject:' line")
    return head.split(":", 1)[1].strip(), body.strip()


def render_draft_list(console: Console, drafts: list[DraftRecord]) -> None:
    """Drafts as a table: id, status, account, kind, age, recipient, subject."""
    table = Table(title=f"Drafts ({len(drafts)}, newest first; nothing was sent)")
    for column in ("id", "status", "account", "kind", "created", "to", "subject"):
        table.add_column(column)
    for d in drafts:
        table.add_row(
            d.draft_id,
            f"[{STATUS_STYLE[d.status]}]{d.status}[/]",
            escape(d.account_id or "-"),
            d.kind,
            d.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(d.to),
            escape(d.subject),
        )
    console.print(table)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.0f}"


def _decided(draft: DraftRecord) -> str:
    if draft.reviewed_by is None or draft.reviewed_at is None:
        return ""
    reason = f" ({escape(draft.reason)})" if draft.reason else ""
    return f" by {escape(draft.reviewed_by)} at {draft.reviewed_at:%Y-%m-%d %H:%M}{reason}"


async def _account_id(review: DraftReview, name_or_id: str) -> str:
    found = await review.records.find_accounts(name_or_id)
    if len(found) != 1:
        names = ", ".join(f"{a.name} ({a.account_id})" for a in found[:5])
        raise ValueError(
            f"{'No' if not found else 'More than one'} account matches {name_or_id!r}" + (f": {names}" if names else "")
        )
    return found[0].account_id


@accounts_app.command("list")
def list_accounts(
    owner: Annotated[str | None, typer.Option(help="Only this rep's accounts (email).")] = None,
    search: Annotated[str | None, typer.Option(help="Part of a name or id.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """List accounts by name with owner, ARR, segment and renewal date."""

    async def work() -> list[AccountRow]:
        async with _review(data_dir) as review:
            return await review.records.accounts(owner=owner, search=search, limit=limit)

    rows = _run(work())
    table = Table(title=f"Accounts ({len(rows)})")
    for column in ("id", "name", "owner", "ARR", "segment", "renewal", "status"):
        table.add_column(column)
    for r in rows:
        arr = f"${r.arr:,.0f}" if r.arr is not None else "-"
        table.add_row(
            escape(r.account_id),
            escape(r.name),
            escape(r.rep_email or "-"),
            arr,
            r.segment or "-",
            r.renewal_date or "-",
            r.status,
        )
    Console(quiet=as_json).print(table)
    _emit({"accounts": [r.__dict__ for r in rows]}, as_json)


@accounts_app.command("show")
def show_account(name_or_id: str, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """One account by id or name: owner, ARR, renewal, score history, drafts and audit rows."""

    async def work() -> dict[str, Any]:
        async with _review(data_dir) as review:
            account_id = await _account_id(review, name_or_id)
            found = await review.records.account(account_id)
            assert found is not None
            history = await review.records.score_history(account_id, limit=12)
            drafts = await review.records.drafts(account_id=account_id, limit=20)
            audit = await review.records.store.list_audit(account_id=account_id, limit=20)
        return {"account": found[0].__dict__, "history": history, "drafts": drafts, "audit": audit}

    shown = _run(work())
    console = Console(quiet=as_json)
    a = shown["account"]
    console.print(
        f"[bold]{escape(a['name'])}[/bold] ({escape(a['account_id'])})  owner {escape(a['rep_email'] or '-')}"
        f"  ARR {_money(a['arr'])}"
        f"  segment {a['segment'] or '-'}  renewal {a['renewal_date'] or '-'}"
    )
    for score in shown["history"]:
        delta = score.score_delta
        console.print(
            f"  {score.computed_at:%Y-%m-%d}  {score.score:5.1f}  {score.rag:<5}"
            + (f"  ({delta:+.1f})" if delta is not None else "")
        )
    render_draft_list(console, shown["drafts"])
    for entry in shown["audit"]:
        console.print(f"  {entry.at:%Y-%m-%d %H:%M}  {escape(entry.artifact)}  {escape(entry.target)}")
    _emit(
        {
            "account": a,
            "history": [s.model_dump(mode="json") for s in shown["history"]],
            "drafts": [d.model_dump(mode="json", exclude={"body_html"}) for d in shown["drafts"]],
            "audit": [e.model_dump(mode="json") for e in shown["audit"]],
        },
        as_json,
    )


@users_app.command("add")
def add_user(
    email: str,
    role: Annotated[str, typer.Option(help="lead (sees the whole book) or rep (sees the accounts they own).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    replace: Annotated[bool, typer.Option(help="Reset the password and role of an existing user.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Add a person who may sign in to the desk (the password is stored as an argon2 hash)."""
    from src.app.desk.auth import hash_password
    from src.app.tools.store.sql_review import ROLES

    if role not in ROLES:
        raise typer.BadParameter(f"unknown role {role!r}; one of {', '.join(ROLES)}", param_hint="--role")
    checked: Role = "lead" if role == "lead" else "rep"

    async def work() -> None:
        async with _review(data_dir) as review:
            await review.records.add_user(
                email.strip().lower(), role=checked, password_hash=hash_password(password), replace=replace
            )

    _run(work())
    typer.echo(f"Desk user {email.strip().lower()} ({checked}) {'updated' if replace else 'added'}.")
