"""Engines, sessions and schema migrations for the job store (SQLite or PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, create_engine

from farm.core.errors import ServiceUnavailableError, first_line
from farm.core.locks import file_lock

MIGRATIONS = Path(__file__).parent / "migrations"
_engines: dict[tuple[int, str], Engine] = {}


def get_engine(url: str) -> Engine:
    # One engine per process: a pool inherited across a Celery prefork would share sockets.
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = _create_engine(url)
    return _engines[key]


def dispose_engines() -> None:
    """Close every pooled connection of this process (before dropping a database, say)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:  # a DB-API connection: untyped
    # WAL lets the CLI read while workers write; the busy timeout rides out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    try:
        with Session(get_engine(url), expire_on_commit=False) as session:
            yield session
            session.commit()
    except OperationalError as exc:
        raise _unavailable(url, exc) from exc


def upgrade_schema(url: str) -> None:
    """Bring the database to the newest migration; safe to call from many processes at once."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with _migration_lock(url), get_engine(url).begin() as connection:
            if connection.dialect.name == "postgresql":
                # Serialise concurrent upgrades from several hosts; released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(7146120)"))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise _unavailable(url, exc) from exc


# The newest migration's revision. Checking it with one query spares every CLI call importing
# Alembic (0.4 s here); tests/db assert that it equals Alembic's head, so it cannot drift.
HEAD_REVISION = "0005"


@cache
def ensure_schema(url: str) -> None:
    """upgrade_schema, at most once per process and URL, and only when not already at head."""
    if schema_revision(url) != HEAD_REVISION:
        upgrade_schema(url)


def schema_revision(url: str) -> str | None:
    """The database's migration, or None for a database without farm's tables yet."""
    try:
        with get_engine(url).connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as exc:
        raise _unavailable(url, exc) from exc


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        yield
        return
    with file_lock(Path(parsed.database + ".migrate.lock")):
        yield


def _unavailable(url: str, exc: OperationalError) -> ServiceUnavailableError:
    message = f"database {_safe(url)} unavailable: {first_line(exc)}"
    return ServiceUnavailableError(message, service="database")


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
