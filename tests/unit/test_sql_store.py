"""The embedded SQL store: accounts, score history, idempotent artifacts, alerts, audit and runs."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic_core import from_json
from sqlalchemy import Text, cast, select

from src.app.schemas import CSMHealthScore, ExpansionOpportunity, FeatureAdoptionReport, QBRContent
from src.app.tools.store import AuditEntry, CSMStore, DraftRecord
from src.app.tools.store.sql import SQLStore
from src.app.tools.store.sql_review import ReviewStore
from src.app.tools.store.sql_tables import HEALTH_SCORES, JSONText

T0 = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One store database per test: in-memory SQLite, a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return "sqlite:///:memory:" if request.param == "sqlite-memory" else f"sqlite:///{tmp_path / 'csm.sqlite'}"


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that several stores (processes) can share: a SQLite file or a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'csm.sqlite'}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SQLStore]:
    sql_store = SQLStore(store_url)
    yield sql_store
    await sql_store.aclose()


def account(account_id: str, *, status: str = "active", name: str | None = None) -> dict[str, object]:
    return {"account_id": account_id, "name": name or f"Name {account_id}", "status": status, "arr": 1200.0}


def health_score(account_id: str, score: float, computed_at: datetime) -> CSMHealthScore:
    return CSMHealthScore(
        account_id=account_id,
        score=score,
        rag="AMBER",
        churn_risk_level="medium",
        signal_breakdown={"feature_adoption_rate": 10.0},
        computed_at=computed_at,
        previous_score=score - 5,
        signal_deltas={"feature_adoption_rate": 5.0},
    )


def qbr(account_id: str = "acc_1") -> QBRContent:
    return QBRContent(
        account_id=account_id,
        account_name="Acme",
        period="Q1 2026",
        trigger="quarterly",
        health_summary="Healthy.",
        roi_metrics={"hours_saved": 120.0},
        feature_adoption_scorecard={"reports": "used"},
        expansion_next_steps=["Add seats"],
    )


def opportunity(account_id: str = "acc_1") -> ExpansionOpportunity:
    return ExpansionOpportunity(
        account_id=account_id,
        opportunity_type="seats",
        evidence=["98% seats used"],
        estimated_arr_impact=5000.0,
        recommended_talk_track="Talk about seats.",
        confidence="high",
    )


def adoption_report(account_id: str = "acc_1") -> FeatureAdoptionReport:
    return FeatureAdoptionReport(
        account_id=account_id,
        features_used=["reports"],
        adoption_rate=0.5,
        underutilized_features=["api"],
        recommendations=["Run an API workshop"],
        benchmark_comparison={"peer_median": 0.6},
    )


def draft(key: str, *, draft_id: str | None = None, created_at: datetime = T0) -> DraftRecord:
    return DraftRecord(
        draft_id=draft_id or f"draft_{key}",
        idempotency_key=key,
        account_id="acc_1",
        kind="churn_alert",
        to="rep@example.com",
        subject="Churn risk: Acme",
        body_html="<p>&lt;b&gt;</p>",
        created_at=created_at,
    )


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is UTC


def test_sql_store_satisfies_the_store_protocol() -> None:
    protocol_view: CSMStore = SQLStore("sqlite:///:memory:")
    assert isinstance(protocol_view, SQLStore)


async def test_construction_does_no_io_and_first_use_creates_the_folder(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "data" / "csm.sqlite"
    sql_store = SQLStore(f"sqlite:///{database}")
    assert not database.parent.exists()

    await sql_store.upsert_accounts([account("acc_1")])
    await sql_store.aclose()

    assert database.exists()
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_new_sqlite_file_gets_8_kb_pages_and_an_existing_one_keeps_its_own(tmp_path: Path) -> None:
    fresh, existing = tmp_path / "fresh.sqlite", tmp_path / "existing.sqlite"
    with sqlite3.connect(existing) as connection:  # made by an earlier version: SQLite's default 4 KB pages
        connection.execute("CREATE TABLE earlier (id INTEGER)")
    connection.close()
    for database in (fresh, existing):
        sql_store = SQLStore(f"sqlite:///{database}")
        await sql_store.upsert_accounts([account("acc_1")])
        await sql_store.aclose()
    sizes = {}
    for database in (fresh, existing):
        with sqlite3.connect(database) as connection:
            sizes[database.name] = connection.execute("PRAGMA page_size").fetchone()[0]
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        connection.close()
    assert sizes == {"fresh.sqlite": 8192, "existing.sqlite": 4096}


async def test_data_survives_aclose_and_a_new_store_on_the_same_database(shared_url: str) -> None:
    first = SQLStore(shared_url)
    await first.upsert_accounts([account("acc_1")])
    await first.aclose()

    second = SQLStore(shared_url)
    assert [record["account_id"] for record in await second.load_accounts()] == ["acc_1"]
    await second.aclose()


async def test_load_accounts_returns_records_ordered_by_id_and_filters_active(store: SQLStore) -> None:
    written = await store.upsert_accounts([account("acc_3"), account("acc_1"), account("acc_2", status="churned")])

    active = await store.load_accounts()
    everything = await store.load_accounts(active_only=False)

    assert written == 3
    assert [record["account_id"] for record in active] == ["acc_1", "acc_3"]
    assert [record["account_id"] for record in everything] == ["acc_1", "acc_2", "acc_3"]
    assert everything[0] == account("acc_1")


async def test_load_accounts_by_ids_handles_more_ids_than_one_in_list(store: SQLStore) -> None:
    await store.upsert_accounts([account(f"acc_{index:05d}") for index in range(2500)])
    wanted = [f"acc_{index:05d}" for index in range(2499, 0, -2)] + ["acc_missing"]

    loaded = await store.load_accounts(wanted)

    assert [record["account_id"] for record in loaded] == sorted(wanted[:-1])


async def test_upsert_replaces_existing_records_and_last_duplicate_wins(store: SQLStore) -> None:
    await store.upsert_accounts([account("acc_1", name="Old"), account("acc_2")])

    written = await store.upsert_accounts(
        [account("acc_1", name="First"), account("acc_1", name="New", status="churned")]
    )

    assert written == 1
    assert [record["account_id"] for record in await store.load_accounts()] == ["acc_2"]
    (replaced,) = await store.load_accounts(["acc_1"], active_only=False)
    assert replaced["name"] == "New"
    assert await store.count("accounts") == 2


async def test_upsert_stores_dates_as_iso_strings(store: SQLStore) -> None:
    await store.upsert_accounts([{**account("acc_1"), "contract_end_date": date(2026, 3, 31)}])

    (record,) = await store.load_accounts()

    assert record["contract_end_date"] == "2026-03-31"


async def test_upsert_rejects_a_record_without_account_id(store: SQLStore) -> None:
    with pytest.raises(ValueError, match="account_id"):
        await store.upsert_accounts([{"name": "No id"}])


async def test_latest_scores_picks_the_newest_by_computed_at_not_insertion_order(store: SQLStore) -> None:
    await store.save_scores([health_score("acc_1", 80, T0 + timedelta(days=1)), health_score("acc_2", 30, T0)])
    await store.save_scores([health_score("acc_1", 20, T0), health_score("acc_2", 35, T0 + timedelta(days=1))])

    latest = await store.latest_scores()

    assert {account_id: score.score for account_id, score in latest.items()} == {"acc_1": 80, "acc_2": 35}
    assert latest["acc_1"].previous_score == 75
    assert latest["acc_1"].signal_deltas == {"feature_adoption_rate": 5.0}
    assert await store.count("health_scores") == 4


async def test_latest_scores_breaks_ties_by_insertion_and_filters_ids(store: SQLStore) -> None:
    await store.save_scores([health_score("acc_1", 50, T0), health_score("acc_1", 55, T0)])
    await store.save_scores([health_score("acc_2", 60, T0)])

    latest = await store.latest_scores(["acc_1", "acc_unknown"])

    assert list(latest) == ["acc_1"]
    assert latest["acc_1"].score == 55


async def test_prior_scores_are_the_latest_scores_columns_without_reading_payloads(store: SQLStore) -> None:
    paris_winter = timezone(timedelta(hours=1))
    await store.save_scores([health_score("acc_1", 80, T0 + timedelta(days=1)), health_score("acc_2", 30, T0)])
    await store.save_scores(
        [health_score("acc_1", 20, T0), health_score("acc_2", 35, datetime(2026, 1, 6, 9, tzinfo=paris_winter))]
    )

    prior = await store.prior_scores(["acc_1", "acc_2", "acc_unknown"])
    latest = await store.latest_scores(["acc_1", "acc_2"])

    assert sorted(prior) == ["acc_1", "acc_2"]
    for account_id, score in latest.items():
        expected = (score.score, score.rag, score.churn_risk_level, score.signal_breakdown, score.scorecard)
        got = prior[account_id]
        assert (got.score, got.rag, got.churn_risk_level, got.signal_breakdown, got.scorecard) == expected
        assert got.computed_at == score.computed_at
        assert_utc(got.computed_at)


async def test_prior_scores_of_rows_written_before_scorecards_were_recorded_are_the_default_scorecards(
    store: SQLStore,
) -> None:
    await store.save_scores([health_score("acc_1", 50, T0)])
    with store._transaction(write=True) as connection:
        connection.execute(HEALTH_SCORES.update().values(scorecard_name=None, scorecard_version=None))

    assert (await store.prior_scores(["acc_1"]))["acc_1"].scorecard == ("default", "1")


async def test_scores_come_back_as_aware_utc_datetimes(store: SQLStore) -> None:
    paris_winter = timezone(timedelta(hours=1))
    await store.save_scores([health_score("acc_1", 50, datetime(2026, 1, 5, 9, 30, tzinfo=paris_winter))])

    computed_at = (await store.latest_scores())["acc_1"].computed_at

    assert_utc(computed_at)
    assert computed_at == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


async def test_a_score_reads_back_whole_from_its_columns_and_payload_and_so_does_an_older_whole_payload_row(
    store: SQLStore,
) -> None:
    scores = [
        health_score("acc_1", 50, T0).model_copy(update={"missing_signals": ["nps_score"], "coverage": 0.9}),
        health_score("acc_2", 70, T0).model_copy(update={"churn_triggered_by": "behavioral", "alert_rule": True}),
    ]
    await store.save_scores(scores)
    with store._transaction(write=True) as connection:  # acc_2's row as a version before this one wrote it
        connection.execute(
            HEALTH_SCORES.update()
            .where(HEALTH_SCORES.c.account_id == "acc_2")
            .values(payload=JSONText(scores[1].model_dump_json()))
        )
        stored = dict(connection.execute(select(HEALTH_SCORES.c.account_id, cast(HEALTH_SCORES.c.payload, Text))).all())
    assert "signal_breakdown" not in from_json(stored["acc_1"]) and "signal_breakdown" in from_json(stored["acc_2"])

    latest = await store.latest_scores(["acc_1", "acc_2"])
    history = await store.score_history(["acc_1", "acc_2"], since=None)
    desk = [(await ReviewStore(store).score_history(account_id))[0] for account_id in ("acc_1", "acc_2")]

    for read in ([latest["acc_1"], latest["acc_2"]], [history["acc_1"][0], history["acc_2"][0]], desk):
        assert [score.model_dump() for score in read] == [score.model_dump() for score in scores]
        assert all(score.computed_at.tzinfo is UTC for score in read[:1])


async def test_save_qbr_is_idempotent_by_key(store: SQLStore) -> None:
    first = await store.save_qbr(qbr(), idempotency_key="qbr:acc_1:Q1 2026")
    again = await store.save_qbr(qbr(), idempotency_key="qbr:acc_1:Q1 2026")
    other = await store.save_qbr(qbr("acc_2"), idempotency_key="qbr:acc_2:Q1 2026")

    assert first.created and not again.created and other.created
    assert again.artifact_id == first.artifact_id != other.artifact_id
    assert first.artifact_id.startswith("qbr_")
    stored = await store.list_qbrs()
    assert [row.content.account_id for row in stored] == ["acc_2", "acc_1"]
    assert stored[1].content == qbr()
    assert_utc(stored[1].created_at)


async def test_save_opportunity_is_idempotent_by_key(store: SQLStore) -> None:
    first = await store.save_opportunity(opportunity(), idempotency_key="opp:acc_1:seats")
    again = await store.save_opportunity(opportunity(), idempotency_key="opp:acc_1:seats")

    assert (first.created, again.created) == (True, False)
    assert again.artifact_id == first.artifact_id
    assert [row.content for row in await store.list_opportunities()] == [opportunity()]


async def test_save_adoption_report_is_idempotent_by_key(store: SQLStore) -> None:
    first = await store.save_adoption_report(adoption_report(), idempotency_key="adopt:acc_1:2026-01")
    again = await store.save_adoption_report(adoption_report(), idempotency_key="adopt:acc_1:2026-01")

    assert (first.created, again.created) == (True, False)
    assert again.artifact_id == first.artifact_id
    assert await store.count("adoption_reports") == 1
    assert [row.idempotency_key for row in await store.list_adoption_reports()] == ["adopt:acc_1:2026-01"]


async def test_concurrent_saves_with_one_key_create_one_row_across_stores(shared_url: str) -> None:
    stores = [SQLStore(shared_url), SQLStore(shared_url)]
    await stores[0].count("qbr_pages")
    entry = AuditEntry(artifact="event", target="churn_alerts", idempotency_key="same-key", at=T0)

    results = await asyncio.gather(
        *(stores[index % 2].save_qbr(qbr(), idempotency_key="same-key") for index in range(10))
    )
    await asyncio.gather(*(stores[index % 2].record_audit(entry) for index in range(10)))

    assert sum(result.created for result in results) == 1
    assert len({result.artifact_id for result in results}) == 1
    assert await stores[0].count("qbr_pages") == 1
    assert await stores[1].count("audit_log") == 1
    for sql_store in stores:
        await sql_store.aclose()


async def test_concurrent_claims_of_one_occurrence_have_one_winner_across_stores(shared_url: str) -> None:
    stores = [SQLStore(shared_url) for _ in range(4)]
    await stores[0].count("runs")
    lease = T0 + timedelta(hours=1)

    claims = await asyncio.gather(
        *(
            store.claim_run("job", "2026-01-05", owner=f"o{n}", lease_until=lease, now=T0)
            for n, store in enumerate(stores)
        )
    )
    later = lease + timedelta(minutes=1)
    takeovers = await asyncio.gather(
        *(
            store.claim_run("job", "2026-01-05", owner=f"t{n}", lease_until=later + timedelta(hours=1), now=later)
            for n, store in enumerate(stores)
        )
    )

    assert sum(claim.run_id is not None for claim in claims) == 1
    assert all("held by o" in (claim.reason or "") for claim in claims if claim.run_id is None)
    assert sum(claim.run_id is not None for claim in takeovers) == 1
    [run] = await stores[0].list_runs()
    assert run.attempts == 2 and run.owner.startswith("t")
    for sql_store in stores:
        await sql_store.aclose()


async def test_text_too_long_for_its_column_or_with_nul_is_refused_naming_the_column(store: SQLStore) -> None:
    with pytest.raises(ValueError, match=r"accounts\.status allows 64 characters, got 65"):
        await store.upsert_accounts([account("acc_1", status="s" * 65)])
    with pytest.raises(ValueError, match=r"accounts\.name contains a NUL character"):
        await store.upsert_accounts([account("acc_1", name="Acme\x00")])
    with pytest.raises(ValueError, match=r"drafts\.kind allows 64 characters"):
        await store.save_draft(draft("k1").model_copy(update={"kind": "k" * 100}))
    with pytest.raises(ValueError, match=r"runs\.owner allows 128 characters"):
        await store.claim_run("job", "key", owner="o" * 129, lease_until=T0, now=T0)

    assert await store.count("accounts") == 0 and await store.count("drafts") == 0 and await store.count("runs") == 0


async def test_pages_and_loads_order_ids_by_code_point_on_every_database(store: SQLStore) -> None:
    ids = ["acct_1", "acct-a", "acct-B", "acct-1", "Acct-2", "acct-é"]
    await store.upsert_accounts([account(account_id) for account_id in ids])

    loaded = [record["account_id"] for record in await store.load_accounts()]
    paged = [record["account_id"] async for page in store.iter_accounts(page_size=2) for record in page]

    assert loaded == paged == sorted(ids)


async def test_save_draft_is_idempotent_and_drafts_list_newest_first(store: SQLStore) -> None:
    first = await store.save_draft(draft("k1"))
    again = await store.save_draft(draft("k1", draft_id="draft_other"))
    newer = await store.save_draft(draft("k2", created_at=T0 + timedelta(hours=1)))

    assert (first.created, again.created, newer.created) == (True, False, True)
    assert again.artifact_id == "draft_k1"
    drafts = await store.list_drafts()
    assert [stored.draft_id for stored in drafts] == ["draft_k2", "draft_k1"]
    assert drafts[1] == draft("k1")
    assert_utc(drafts[0].created_at)


async def test_record_alert_is_idempotent_and_last_alerts_are_the_newest(store: SQLStore) -> None:
    assert await store.last_alerts(["acc_1"]) == {}

    assert await store.record_alert("acc_1", "RED", idempotency_key="alert:1", at=T0) is True
    assert await store.record_alert("acc_1", "RED", idempotency_key="alert:1", at=T0) is False
    await store.record_alert("acc_1", "critical", idempotency_key="alert:2", at=T0 + timedelta(days=8))
    await store.record_alert("acc_2", "RED", idempotency_key="alert:3", at=T0 + timedelta(days=9))

    last = await store.last_alerts(["acc_1", "acc_2", "acc_3"])
    keys = {account: alert.idempotency_key for account, alert in last.items()}
    assert keys == {"acc_1": "alert:2", "acc_2": "alert:3"}
    assert last["acc_1"].risk_state == "critical"
    assert_utc(last["acc_1"].alerted_at)
    assert [alert.idempotency_key for alert in await store.list_alerts()] == ["alert:3", "alert:2", "alert:1"]
    assert len(await store.list_alerts("acc_1")) == 2


async def test_audit_entries_are_appended_stamped_and_listed_newest_first(store: SQLStore) -> None:
    await store.record_audit(AuditEntry(artifact="draft", target="outbox", idempotency_key="k1", at=T0))
    await store.record_audit(
        AuditEntry(
            artifact="event",
            target="churn_alerts",
            idempotency_key="k2",
            account_id="acc_1",
            detail={"sent_at": T0, "channels": ["event_bus"]},
        )
    )

    entries = await store.list_audit()

    assert [entry.idempotency_key for entry in entries] == ["k2", "k1"]
    assert entries[0].at is not None and entries[0].at > T0
    assert_utc(entries[0].at)
    assert entries[0].detail == {"sent_at": "2026-01-05T07:00:00Z", "channels": ["event_bus"]}
    assert len(await store.list_audit(limit=1)) == 1


async def test_runs_are_claimed_finished_and_listed(store: SQLStore) -> None:
    lease = T0 + timedelta(hours=2)
    claim = await store.claim_run("csm_daily_health_scan", "2026-01-05", owner="a", lease_until=lease, now=T0)
    assert claim.run_id is not None and not claim.resumed
    (running,) = await store.list_runs()
    assert (running.run_id, running.status, running.owner, running.finished_at) == (claim.run_id, "running", "a", None)

    await store.finish_run(claim.run_id, "succeeded", {"scanned": 3})

    (finished,) = await store.list_runs()
    assert (finished.status, finished.summary) == ("succeeded", {"scanned": 3})
    assert finished.finished_at is not None
    assert_utc(finished.finished_at)
    with pytest.raises(KeyError, match="run_missing"):
        await store.finish_run("run_missing", "failed")


async def test_a_job_occurrence_has_one_holder_until_its_lease_expires(store: SQLStore) -> None:
    lease = T0 + timedelta(hours=1)
    first = await store.claim_run("job", "2026-01-05", owner="a", lease_until=lease, now=T0)
    blocked = await store.claim_run("job", "2026-01-05", owner="b", lease_until=lease, now=T0)
    assert first.run_id and blocked.run_id is None and "held by a" in (blocked.reason or "")
    taken = await store.claim_run("job", "2026-01-05", owner="b", lease_until=lease, now=T0, take_over=True)
    assert taken.run_id == first.run_id and taken.resumed
    other_day = await store.claim_run("job", "2026-01-06", owner="b", lease_until=lease, now=T0)
    assert other_day.run_id and other_day.run_id != first.run_id
    later = lease + timedelta(seconds=1)
    takeover = await store.claim_run("job", "2026-01-05", owner="b", lease_until=later + timedelta(hours=1), now=later)
    assert takeover.run_id == first.run_id and takeover.resumed
    await store.finish_run(first.run_id, "succeeded")
    done = await store.claim_run("job", "2026-01-05", owner="c", lease_until=later, now=later)
    assert done.run_id is None and "already completed by b" in (done.reason or "")
    forced = await store.claim_run("job", "2026-01-05", owner="c", lease_until=later, now=later, force=True)
    assert forced.run_id == first.run_id and not forced.resumed
    runs = {run.key: run for run in await store.list_runs()}
    assert (runs["2026-01-05"].owner, runs["2026-01-05"].attempts) == ("c", 4)


async def test_accounts_with_qbr_filter_by_period_and_trigger(store: SQLStore) -> None:
    for account_id, period, trigger in [
        ("a", "Q1 2026", "quarterly"),
        ("b", "Q1 2026", "contract_proximity"),
        ("c", "Q2 2026", "quarterly"),
    ]:
        qbr = QBRContent(
            account_id=account_id,
            account_name=account_id,
            period=period,
            trigger=trigger,
            health_summary="s",
            roi_metrics={},
            feature_adoption_scorecard={},
            expansion_next_steps=[],
        )
        key = f"qbr:{account_id}:{period}:{trigger}"
        await store.save_qbr(qbr, idempotency_key=key)
        await store.record_audit(AuditEntry(artifact="page:qbr", target="store:qbr_pages", idempotency_key=key))
    await store.save_qbr(qbr.model_copy(update={"account_id": "d", "period": "Q1 2026"}), idempotency_key="qbr:d")
    assert await store.accounts_with_qbr("Q1 2026") == {"a", "b"}  # d has no page:qbr audit row: not finished
    assert await store.accounts_with_qbr("Q1 2026", "quarterly") == {"a"}


async def test_count_rejects_unknown_tables(store: SQLStore) -> None:
    assert await store.count("accounts") == 0
    with pytest.raises(ValueError, match="Unknown table 'accounts; drop table accounts'"):
        await store.count("accounts; drop table accounts")


async def test_a_single_id_string_is_refused_instead_of_read_as_characters(store: SQLStore) -> None:
    with pytest.raises(TypeError, match="acc_1"):
        await store.load_accounts("acc_1")
    with pytest.raises(TypeError, match="acc_1"):
        await store.latest_scores("acc_1")


async def test_iter_accounts_leaves_omitted_keys_out_and_keeps_the_rest(store: SQLStore) -> None:
    detail = {"tickets": [{"subject": "x"}], "usage_history": [1, 2], "notes": "long text"}
    await store.upsert_accounts([{"account_id": "a", "name": "A", "nps_score": 40, **detail}])
    [[trimmed]] = [page async for page in store.iter_accounts(omit=("tickets", "usage_history", "notes"))]
    assert trimmed == {"account_id": "a", "name": "A", "nps_score": 40}
    [[whole]] = [page async for page in store.iter_accounts()]
    assert whole["tickets"] == detail["tickets"] and whole["notes"] == "long text"


async def test_scores_reach_sqlite_as_plain_text_not_through_an_adapter(tmp_path: Path) -> None:
    """Serialised JSON (`JSONText`) is handed to sqlite3 as a plain `str`: its adapter lookup costs twice as much."""
    sql_store = SQLStore(f"sqlite:///{tmp_path / 'csm.sqlite'}")

    def refuse(value: JSONText) -> str:
        raise AssertionError(f"sqlite3 was handed a JSONText to adapt: {value[:40]}")

    sqlite3.register_adapter(JSONText, refuse)
    try:
        score = CSMHealthScore.model_validate(
            {
                "account_id": "acct-1",
                "score": 55.0,
                "rag": "AMBER",
                "churn_risk_level": "medium",
                "signal_breakdown": {"nps_score": 3.5},
                "computed_at": datetime(2026, 12, 3, tzinfo=UTC),
            }
        )
        await sql_store.save_scores([score])
        stored = await sql_store.latest_scores(["acct-1"])
    finally:
        sqlite3.adapters.pop((JSONText, sqlite3.PrepareProtocol), None)
        await sql_store.aclose()
    assert stored["acct-1"].signal_breakdown == {"nps_score": 3.5}
    assert stored["acct-1"].score == 55.0
