"""Migration files: naming, ordering, statement splitting, and refusing edited history."""

from __future__ import annotations

from pathlib import Path

import pytest

from sinks.clickhouse.migrations import (
    Migration,
    load_migrations,
    pending_migrations,
    split_statements,
)
from sinks.errors import ClickHouseQueryError, MigrationError


def test_migrations_apply_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10_late.sql", "2_middle.sql", "0001_first.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")

    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [
        (1, "first"),
        (2, "middle"),
        (10, "late"),
    ]


def test_two_files_with_one_version_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0003_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "3_b.sql").write_text("SELECT 1;\n")

    with pytest.raises(MigrationError, match="reuses version 3"):
        load_migrations(tmp_path)


def test_a_file_without_a_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "add_table.sql").write_text("SELECT 1;\n")

    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        load_migrations(tmp_path)


def test_the_shipped_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]

    assert versions == list(range(1, len(versions) + 1))


def test_statements_split_at_line_ends_and_lose_comment_lines() -> None:
    sql = """
-- a table; and a comment with a semicolon
CREATE TABLE a (x UInt8) ENGINE = Memory;

-- another
CREATE TABLE b (s String DEFAULT 'a;b') ENGINE = Memory;
"""
    assert split_statements(sql) == [
        "CREATE TABLE a (x UInt8) ENGINE = Memory",
        "CREATE TABLE b (s String DEFAULT 'a;b') ENGINE = Memory",
    ]


def test_the_database_placeholder_is_filled_quoted() -> None:
    migration = Migration(1, "t", "CREATE TABLE ${database}.t (x UInt8) ENGINE = Memory;\n")

    assert migration.statements("analytics") == [
        "CREATE TABLE `analytics`.t (x UInt8) ENGINE = Memory"
    ]


def test_a_database_name_that_is_not_an_identifier_is_refused() -> None:
    migration = Migration(1, "t", "CREATE DATABASE ${database};\n")

    with pytest.raises(ClickHouseQueryError):
        migration.statements("x`; DROP DATABASE y")


def test_an_unknown_placeholder_is_refused() -> None:
    with pytest.raises(MigrationError, match="placeholder"):
        Migration(1, "t", "SELECT ${table};\n").statements("db")


def test_applied_migrations_are_not_pending() -> None:
    first, second = Migration(1, "a", "SELECT 1;\n"), Migration(2, "b", "SELECT 2;\n")

    assert pending_migrations([first, second], {1: first.checksum}) == [second]
    assert pending_migrations([first, second], {1: first.checksum, 2: second.checksum}) == []


def test_an_applied_migration_edited_afterwards_is_refused() -> None:
    edited = Migration(1, "a", "SELECT 42;\n")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        pending_migrations([edited], {1: Migration(1, "a", "SELECT 1;\n").checksum})
