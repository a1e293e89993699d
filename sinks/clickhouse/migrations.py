"""Numbered `.sql` migrations, applied once each and recorded in `schema_migrations`.

A migration is `migrations/NNNN_name.sql`: statements separated by `;` at the end of a
line, `--` comment lines, and `${database}` wherever the database name goes. Applying
is idempotent (applied versions are skipped) and safe to race: every statement is
`IF NOT EXISTS`-shaped and the bookkeeping table collapses duplicate records. An
applied migration must never be edited: its checksum is compared on every run.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from string import Template

from sinks.clickhouse.backends import ClickHouseBackend, qualified, quote_identifier
from sinks.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"

_FILE_NAME = re.compile(r"^(\d+)_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: its version, name and SQL text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self, database: str) -> list[str]:
        """The statements to run, with `${database}` filled in and comments removed."""
        try:
            sql = Template(self.sql).substitute(database=quote_identifier(database))
        except (KeyError, ValueError) as exc:
            raise MigrationError(
                f"migration {self.version} uses a placeholder other than ${{database}}: {exc}"
            ) from exc
        return split_statements(sql)


def split_statements(sql: str) -> list[str]:
    """Statements in sql, split at `;` ending a line, without `--` comment lines."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in _STATEMENT_END.split(code) if part.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration in directory, by version; MigrationError on a stray or duplicate file."""
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"{path.name} reuses version {version} of {migrations[version].name}"
            )
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


def pending_migrations(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations not yet applied, in order; MigrationError if an applied one was edited."""
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.version}_{migration.name} changed after it was "
                f"applied; add a new migration instead of editing it"
            )
    return [m for m in migrations if m.version not in applied]


def applied_migrations(backend: ClickHouseBackend) -> dict[int, str]:
    """Version -> checksum of every migration recorded as applied."""
    rows = backend.execute(
        f"SELECT version, any(checksum) FROM {qualified(backend, MIGRATIONS_TABLE)} "
        "GROUP BY version ORDER BY version"
    )
    return {int(version): str(checksum) for version, checksum in rows}


def apply_migrations(
    backend: ClickHouseBackend, migrations: list[Migration] | None = None
) -> list[Migration]:
    """Create the database and apply what is pending; returns the migrations applied now."""
    database = quote_identifier(backend.database)
    backend.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    backend.execute(
        f"CREATE TABLE IF NOT EXISTS {qualified(backend, MIGRATIONS_TABLE)} "
        "(version UInt32, name String, checksum String, applied_at UInt64) "
        "ENGINE = ReplacingMergeTree() ORDER BY version"
    )
    pending = pending_migrations(
        load_migrations() if migrations is None else migrations, applied_migrations(backend)
    )
    for migration in pending:
        for statement in migration.statements(backend.database):
            backend.execute(statement)
        backend.insert(
            MIGRATIONS_TABLE,
            ("version", "name", "checksum", "applied_at"),
            [(migration.version, migration.name, migration.checksum, int(time.time() * 1000))],
        )
    return pending
