"""A page of account records as a configured scorecard reads it: validated signal columns, merged fields, groups.

`PageColumns` checks each `CSMHealthSignals` field's values the way the per-account path validates them (a value
that is not plainly valid leaves its record to that path), derives `days_to_renewal` from the contract end, adds
derived signals, and hands each scorecard its rows (`CardRows`) with every field read once as a `FieldColumn`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo

import numpy as np
from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from src.app.analysis.derived_signals import StoredScores, derived_values, same_scorecard
from src.app.analysis.health import CSMHealthScorer
from src.app.analysis.health_batch import Flags, Floats, as_floats
from src.app.analysis.scorecard_model import COMPARATORS, Condition, as_number
from src.app.analysis.signals import EXACT_INT, days_until
from src.app.schemas import CSMHealthSignals

_BOUNDS: tuple[tuple[type, str, str], ...] = (
    (Ge, "ge", "at_least"),
    (Gt, "gt", "above"),
    (Le, "le", "at_most"),
    (Lt, "lt", "below"),
)


@dataclass(frozen=True, slots=True)
class _Rule:
    """Which values of one `CSMHealthSignals` field are plainly valid: exact types, allowed texts, bounds."""

    kinds: frozenset[type]
    choices: frozenset[str] | None
    bounds: tuple[tuple[str, float], ...]
    as_float: bool


def _rule(info: FieldInfo) -> _Rule:
    """The plain-validity rule of a signal field; a field of an unforeseen kind accepts no value plainly."""
    annotation: Any = info.annotation
    members = (
        [arg for arg in get_args(annotation) if arg is not NoneType]
        if get_origin(annotation) in (Union, UnionType)
        else [annotation]
    )
    bounds = [
        (comparator, float(getattr(constraint, attribute)))
        for constraint in info.metadata
        for kind, attribute, comparator in _BOUNDS
        if isinstance(constraint, kind)
    ]
    if len(members) != 1 or len(bounds) != len(info.metadata):
        return _Rule(frozenset(), None, (), as_float=False)
    member = members[0]
    if get_origin(member) is Literal and all(type(arg) is str for arg in get_args(member)) and not bounds:
        return _Rule(frozenset({str}), frozenset(get_args(member)), (), as_float=False)
    if member is float:
        return _Rule(frozenset({int, float}), None, tuple(bounds), as_float=True)
    if member is int:
        return _Rule(frozenset({int}), None, tuple(bounds), as_float=False)
    return _Rule(frozenset(), None, (), as_float=False)


_RULES: dict[str, _Rule] = {name: _rule(info) for name, info in CSMHealthSignals.model_fields.items()}


class FieldColumn:
    """One field's values over a group of records (None where missing), read the ways a scorecard reads them.

    `failed` marks the rows where reading a value raised (an integer too large for a float or for text): the
    per-account path reports those.
    """

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.present: Flags = np.fromiter((value is not None for value in values), np.bool_, len(values))
        self.failed: Flags = np.zeros(len(values), dtype=np.bool_)
        self._numbers: tuple[Floats, Flags] | None = None

    def numbers(self) -> tuple[Floats, Flags]:
        """`as_number` of each value (NaN where missing or not a number), and where a present value is not one."""
        if self._numbers is None:
            self._numbers = self._as_numbers()
        return self._numbers

    def _as_numbers(self) -> tuple[Floats, Flags]:
        numbers: Floats | None = None
        if set(map(type, self.values)) <= {int, float, NoneType}:
            try:
                numbers = np.array(self.values, dtype=np.float64)  # None becomes NaN
            except OverflowError:
                numbers = None
        if numbers is None:
            converted: list[float | None] = []
            for row, value in enumerate(self.values):
                try:
                    converted.append(as_number(value))
                except OverflowError:  # an integer beyond float64
                    converted.append(None)
                    self.failed[row] = True
            numbers = np.array(converted, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(numbers)
        return np.where(finite, numbers, np.nan), self.present & ~finite

    def lookup(self, table: Mapping[str, float]) -> tuple[Floats, Flags]:
        """Each present value's entry in a table keyed by `str(value)` (0 where none), and where there is one."""
        if set(map(type, self.values)) <= {str, NoneType}:
            found = [None if value is None else table.get(value) for value in self.values]
        else:
            found = []
            for row, value in enumerate(self.values):
                try:
                    found.append(None if value is None else table.get(str(value)))
                except ValueError:  # an integer too long for text
                    found.append(None)
                    self.failed[row] = True
        has = np.fromiter((entry is not None for entry in found), np.bool_, len(found))
        return np.array([0.0 if entry is None else entry for entry in found], dtype=np.float64), has

    def holds(self, condition: Condition) -> Flags:
        """`condition.holds` for each value, decided once per distinct value."""
        try:
            keys = [(type(value), value) for value in self.values]
            known = {key: _decided(condition, key[1]) for key in set(keys)}
            decided = [known[key] for key in keys]
        except TypeError:  # an unhashable value: each is decided on its own
            decided = [_decided(condition, value) for value in self.values]
        self.failed |= np.fromiter((result is None for result in decided), np.bool_, len(decided))
        return np.fromiter((result is True for result in decided), np.bool_, len(decided))


def _decided(condition: Condition, value: Any) -> bool | None:
    """Whether the condition holds for the value; None when deciding raised (the per-account path reports it)."""
    try:
        return condition.holds({condition.field: value})
    except Exception:
        return None


class PageColumns:
    """A page's records as the per-account path merges them: validated signals over the raw (and derived) fields."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        scorer: CSMHealthScorer,
        now: datetime,
        tz: ZoneInfo,
        history: Mapping[str, StoredScores],
    ) -> None:
        self.records = records
        self.ok: Flags = np.ones(len(records), dtype=np.bool_)
        self.signals: dict[str, list[Any]] = {}
        for name, rule in _RULES.items():
            raw = [record.get(name) for record in records]
            if name == "days_to_renewal":
                raw = self._with_renewal_from_contract(raw, now=now, tz=tz)
            self.signals[name] = self._checked(raw, rule)
        self.derived = self._derived(scorer, now=now, history=history) if scorer.derived_fields else None
        self._values: dict[str, list[Any]] = {}

    def _with_renewal_from_contract(self, raw: list[Any], *, now: datetime, tz: ZoneInfo) -> list[Any]:
        """`days_to_renewal` as `signals_from_record` derives it from `contract_end_date` when a record has none."""
        derived = list(raw)
        known: dict[str, int | None] = {}  # a page's accounts share many contract end dates
        for row, (value, record) in enumerate(zip(raw, self.records, strict=True)):
            end = record.get("contract_end_date")
            if value is not None or end is None:
                continue
            try:
                days = known[end] if type(end) is str and end in known else days_until(end, now=now, tz=tz)
            except (TypeError, ValueError):
                self.ok[row] = False  # the per-account path names the bad date
                continue
            if type(end) is str:
                known[end] = days
            derived[row] = days
        return derived

    def _checked(self, raw: list[Any], rule: _Rule) -> list[Any]:
        """The field's values as `CSMHealthSignals` validates them; a value not plainly valid fails its record."""
        types = set(map(type, raw)) - {NoneType}
        if rule.choices is not None:
            if types <= rule.kinds and set(raw) <= rule.choices | {None}:
                return raw
            plain = [value is None or (type(value) is str and value in rule.choices) for value in raw]
        elif types <= rule.kinds:
            plain = self._in_bounds(raw, rule)
        else:  # a bool, a string...: that record scores per account
            typed = [value if type(value) in rule.kinds else None for value in raw]
            plain = [
                fine and (value is None) == (kept is None)
                for value, kept, fine in zip(raw, typed, self._in_bounds(typed, rule), strict=True)
            ]
        if not all(plain):
            self.ok &= np.array(plain, dtype=np.bool_)
            raw = [value if fine else None for value, fine in zip(raw, plain, strict=True)]
        if rule.as_float and int in types:
            raw = [float(value) if type(value) is int else value for value in raw]
        return raw

    def _in_bounds(self, raw: list[Any], rule: _Rule) -> list[bool]:
        """Per value of plain types, whether it is exact as a float, finite and within the field's bounds."""
        present = np.fromiter((value is not None for value in raw), np.bool_, len(raw))
        numbers = as_floats(raw)
        with np.errstate(invalid="ignore"):
            within = np.abs(numbers) < EXACT_INT  # False for NaN and infinities
            for comparator, threshold in rule.bounds:
                within &= COMPARATORS[comparator](numbers, threshold)
        plain: list[bool] = (~present | within).tolist()
        return plain

    def _derived(
        self, scorer: CSMHealthScorer, *, now: datetime, history: Mapping[str, StoredScores]
    ) -> list[dict[str, Any]]:
        """Each record's derived signals, as `score_record` computes them (history of its raw record's scorecard)."""
        found: list[dict[str, Any]] = []
        for row, record in enumerate(self.records):
            try:
                card = scorer.scorecard_for(record)
                past = same_scorecard(history.get(str(record["account_id"]), ()), (card.name, card.version))
                found.append(derived_values(record, scorer.derived_fields, as_of=now, history=past))
            except Exception:  # the per-account path reports it
                self.ok[row] = False
                found.append({})
        return found

    def values(self, field: str) -> list[Any]:
        """A field's merged values over the whole page, read once."""
        values = self._values.get(field)
        if values is None:
            values = self._values[field] = self._merged(field)
        return values

    def _merged(self, field: str) -> list[Any]:
        if field in self.signals:
            return self.signals[field]
        if self.derived is None:
            return [record.get(field) for record in self.records]
        return [
            extra[field] if field in extra else record.get(field)
            for record, extra in zip(self.records, self.derived, strict=True)
        ]


class CardRows:
    """The rows of a page that one scorecard scores, with each field's column read once."""

    def __init__(self, page: PageColumns, rows: list[int]) -> None:
        self.page = page
        self.rows = rows
        self.size = len(rows)
        self._whole = rows == list(range(len(page.records)))
        self._columns: dict[str, FieldColumn] = {}

    def column(self, field: str) -> FieldColumn:
        """The field's merged values over these rows."""
        column = self._columns.get(field)
        if column is None:
            values = self.page.values(field)
            column = self._columns[field] = FieldColumn(values if self._whole else [values[row] for row in self.rows])
        return column

    def failed(self) -> Flags:
        """The rows where reading any of the columns read so far raised."""
        failed = np.zeros(self.size, dtype=np.bool_)
        for column in self._columns.values():
            failed |= column.failed
        return failed
