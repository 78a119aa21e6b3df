"""The machine's real PostgreSQL and Redis for tests: probes that skip with a reason, and isolated namespaces.

PostgreSQL tests get a fresh schema each (selected with libpq's `options=-csearch_path=...`, so every
connection made from the URL lands in it) that is dropped afterwards; Redis tests get unique key prefixes.
Override the servers with `CSM_TEST_POSTGRES_URL` / `CSM_TEST_REDIS_URL`.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
import pytest
from sqlalchemy.engine import make_url

from src.app.tools.store.postgres import libpq_conninfo

POSTGRES_URL = os.environ.get("CSM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CSM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@functools.cache
def postgres_unavailable() -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it answers."""
    try:
        with psycopg.connect(libpq_conninfo(POSTGRES_URL), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()} is not available: {error}".strip()
    return None


@functools.cache
def redis_unavailable() -> str | None:
    """Why the test Redis server cannot be used, or None when it answers PING."""
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError as error:
        return f"Redis at {parts.hostname}:{parts.port} is not available: {error}"
    if not reply.startswith(b"+PONG"):
        return f"Redis at {parts.hostname}:{parts.port} did not answer PING: {reply!r}"
    return None


def require_postgres() -> None:
    """Skip the calling test when the PostgreSQL server is absent."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)


def require_redis() -> None:
    """Skip the calling test when the Redis server is absent."""
    reason = redis_unavailable()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A `postgresql+psycopg://` URL whose connections all use a fresh schema, dropped after the test."""
    with fresh_postgres_schema() as url:
        yield url


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A URL on a new, empty schema (the test is skipped when PostgreSQL is absent); the schema is dropped after."""
    require_postgres()
    schema = f"csm_test_{uuid.uuid4().hex[:12]}"
    admin_url = libpq_conninfo(POSTGRES_URL)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
