"""`csm scorecard show|validate|diff` and `csm backtest HISTORY`: read, check and compare scorecards, and test one.

Every bad input ends in one line on stderr and a non-zero exit: a scorecard's problems name the field and the TOML
line, a history's unusable rows are counted with the first few lines. The backtest's libraries (numpy, scipy,
scikit-learn, matplotlib) are the optional `backtest` extra, imported only here, only when a backtest runs.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:  # the scorecard models load when a command runs, so `csm --help` stays fast
    from src.app.analysis.scorecard_model import ScorecardSet, ScorecardSpec

scorecard_app = typer.Typer(help="Show, validate and compare scorecards (how the health score is computed).")

BACKTEST_MODULES = ("numpy", "scipy", "sklearn")
PLOT_MODULES = ("matplotlib",)
INSTALL_HINT = "pip install 'csm-agent[backtest]'"
_HORIZON = re.compile(r"^\s*(\d+)\s*([dw]?)\s*$")
MAX_LISTED_PROBLEMS = 3
WIDTH = 80


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print one line of error on stderr and exit with `code`."""
    typer.echo(f"Error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code=code)


def configured_scorecard_path() -> Path | None:
    """The tenant's scorecard file (`CSM_SCORECARD`), if set."""
    from src.app.config import CSMSettings

    return CSMSettings().scorecard


def load_set(path: Path | None) -> ScorecardSet:
    """The scorecard set in `path`, else the configured one, else the shipped default; errors exit."""
    from src.app.analysis.scorecard_model import ScorecardSet
    from src.app.analysis.scorecards import ScorecardError, load_default_scorecard, load_scorecard_set

    path = path or configured_scorecard_path()
    if path is None:
        card = load_default_scorecard()
        return ScorecardSet.model_validate(
            {"name": card.name, "scorecards": {card.name: card}, "segments": [{"name": "all", "scorecard": card.name}]}
        )
    try:
        return load_scorecard_set(path)
    except ScorecardError as error:
        fail(str(error))


def single(path: Path | None) -> ScorecardSpec:
    """The one scorecard of `path` (or the configured/default one); a segmented set is refused."""
    cards = load_set(path)
    if len(cards.scorecards) != 1:
        names = ", ".join(cards.scorecards)
        fail(f"{path}: a set of {len(cards.scorecards)} scorecards ({names}); name one scorecard file here")
    return next(iter(cards.scorecards.values()))


def describe(card: ScorecardSpec) -> str:
    """A scorecard for people: its thresholds, then one line per signal (weight, mapping, missing policy)."""
    lines = [
        f"Scorecard {card.name!r} version {card.version!r}: {card.total_weight():g} points"[:WIDTH],
        *([card.description[:WIDTH]] if card.description else []),
        f"RAG: GREEN >= {card.rag.green:g}, AMBER >= {card.rag.amber:g}, else RED; "
        f"insufficient data below {card.coverage_floor:.0%} coverage",
        "",
        f"{'signal':<28} {'field':<22} {'weight':>6}  {'maps by':<10} missing",
    ]
    for name, spec in card.signals.items():
        mapping = "curve" if spec.curve else "bands" if spec.bands else "categories"
        missing = f"neutral {spec.neutral_points:g}" if spec.missing == "neutral" else spec.missing
        field = spec.field or name
        lines.append(f"{name[:28]:<28} {field[:22]:<22} {spec.weight:>6g}  {mapping:<10} {missing}")
    for multiplier in card.multipliers:
        factors = ", ".join(f"{value} x{factor:g}" for value, factor in multiplier.factors.items())
        lines.append(f"multiplier {multiplier.field}: {factors}"[:WIDTH])
    alert = card.alert
    rule = f"alert when RAG in {', '.join(alert.rag_in) or '-'} or risk in {', '.join(alert.churn_risk_in) or '-'}"
    extra = f" or any of {len(alert.conditions_any)} conditions" if alert.conditions_any else ""
    lines.append((rule + extra)[:WIDTH])
    return "\n".join(lines)


@scorecard_app.command("show")
def show(
    file: Annotated[
        Path | None, typer.Argument(help="A scorecard or set file (default: CSM_SCORECARD, else the shipped one).")
    ] = None,
    as_toml: Annotated[bool, typer.Option("--toml", help="Print the scorecard(s) as TOML.")] = False,
) -> None:
    """Show a scorecard: thresholds, each signal's weight and mapping, multipliers and the alert rule."""
    from src.app.analysis.scorecard_toml import scorecard_to_toml

    cards = load_set(file)
    if len(cards.scorecards) > 1:
        for segment in cards.segments:
            when = " and ".join(c.field for c in segment.when) or "every other account"
            typer.echo(f"segment {segment.name}: {segment.scorecard} (when {when})"[:WIDTH])
        typer.echo("")
    texts = [scorecard_to_toml(card) if as_toml else describe(card) for card in cards.scorecards.values()]
    typer.echo("\n\n".join(texts))


@scorecard_app.command("validate")
def validate(file: Annotated[Path, typer.Argument(help="The scorecard or set file to check.")]) -> None:
    """Check a scorecard file: every problem is listed with its field and line (exit 1 if any)."""
    from src.app.analysis.scorecards import ScorecardError, load_scorecard_set

    try:
        cards = load_scorecard_set(file)
    except ScorecardError as error:
        for problem in error.problems:
            typer.echo(f"{error.source}: {problem}", err=True)
        raise typer.Exit(code=1) from None
    names = ", ".join(f"{card.name} v{card.version}" for card in cards.scorecards.values())
    typer.echo(f"ok: {file}: {names}")


@scorecard_app.command("diff")
def diff(
    a: Annotated[Path, typer.Argument(help="The scorecard to compare from.")],
    b: Annotated[Path, typer.Argument(help="The scorecard to compare to.")],
) -> None:
    """Every field that differs between two scorecards (`~` changed, `+` only in B, `-` only in A)."""
    from src.app.analysis.scorecard_toml import scorecard_diff

    typer.echo(scorecard_diff(single(a), single(b)))


def horizon_days(text: str) -> int:
    """`90d`, `12w` or `90` as days; a bad value exits."""
    match = _HORIZON.match(text)
    if match is None or int(match.group(1)) < 1:
        fail(f"--horizon {text!r}: use a number of days such as 90d (or weeks: 13w)", code=2)
    return int(match.group(1)) * (7 if match.group(2) == "w" else 1)


def require(modules: tuple[str, ...], purpose: str) -> None:
    """Exit with the install hint when any of the backtest extra's modules is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        fail(f"{purpose} needs {', '.join(missing)}: {INSTALL_HINT}")


def backtest(
    history: Annotated[
        Path, typer.Argument(help="A .csv, .json or .jsonl history: account rows as `csm import` reads.")
    ],
    outcome: Annotated[
        str, typer.Option("--outcome", help="Column: did the account churn (true/false, 1/0).")
    ] = "churned",
    as_of: Annotated[str, typer.Option("--as-of", help="Column: the date the row's signals were observed.")] = "as_of",
    outcome_date: Annotated[
        str, typer.Option("--outcome-date", help="Column: date of the churn or renewal.")
    ] = "outcome_date",
    arr: Annotated[str, typer.Option("--arr", help="Column: the account's ARR.")] = "arr",
    horizon: Annotated[
        str, typer.Option("--horizon", help="Churn within this long after as-of counts, e.g. 90d.")
    ] = "90d",
    scorecard: Annotated[
        Path | None,
        typer.Option("--scorecard", help="The scorecard to test (default: CSM_SCORECARD, else the shipped one)."),
    ] = None,
    suggest: Annotated[
        bool, typer.Option("--suggest", help="Fit weights and cut-offs on older rows; judge them on newer ones.")
    ] = False,
    write: Annotated[
        Path | None, typer.Option("--write", help="With --suggest: write the suggested scorecard here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Save a PNG of score buckets, churn rates, cut-offs and ROC.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the report.")] = False,
) -> None:
    """Backtest a scorecard on a churn history: does the score rank, band and alert the accounts that churned?"""
    from src.app.analysis.backtest_data import BacktestError, load_history

    if write is not None and not suggest:
        fail("--write writes the suggested scorecard: add --suggest", code=2)
    days = horizon_days(horizon)
    require(BACKTEST_MODULES, "csm backtest")
    if plot is not None:
        require(PLOT_MODULES, "--plot")
    card = single(scorecard)
    try:
        rows = load_history(history, outcome_col=outcome, as_of_col=as_of, outcome_date_col=outcome_date, arr_col=arr)
        if not rows.rows:
            first = rows.problems[0] if rows.problems else None
            detail = f"; line {first.line}: {first.message}" if first else ""
            fail(f"{history}: no usable rows ({len(rows.problems)} left out{detail}); check --outcome and --as-of")
        result = _run(rows.rows, card, days, suggest)
    except BacktestError as error:
        fail(str(error) + _left_out(rows.problems) if "rows" in locals() else str(error))
    if rows.problems:
        typer.echo(f"warning: {_left_out(rows.problems).strip(' ;')}", err=True)
    if write is not None:
        from src.app.analysis.backtest import write_suggested

        write_suggested(result, write)
    if plot is not None:
        from src.app.analysis.backtest_report import plot_backtest

        plot_backtest(result, plot)
    if as_json:
        payload: dict[str, Any] = result.model_dump(mode="json")
        payload["rows_left_out"] = [{"line": p.line, "message": p.message} for p in rows.problems]
        typer.echo(json.dumps(payload))
        return
    from src.app.analysis.backtest_report import render_report_text

    typer.echo(render_report_text(result), nl=False)
    for path, what in ((write, "suggested scorecard"), (plot, "plot")):
        if path is not None:
            typer.echo(f"wrote the {what} to {path}")


def _run(rows: Any, card: ScorecardSpec, days: int, suggest: bool) -> Any:
    from src.app.analysis.backtest import run_backtest

    return run_backtest(rows, card, horizon_days=days, suggest=suggest)


def _left_out(problems: list[Any]) -> str:
    if not problems:
        return ""
    listed = ", ".join(f"line {p.line}: {p.message}" for p in problems[:MAX_LISTED_PROBLEMS])
    more = f" and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
    return f"; {len(problems)} rows left out ({listed}{more})"
