"""`liveward geo check | verify | accuracy` over the test databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from liveward.commands.geo import app
from services.access.geo import GeoError
from tests.fixtures.geo import GeoDatabases


def _run(args: list[str]) -> Result:
    # Wide enough that rich does not wrap the lines the tests look for.
    return CliRunner().invoke(app, args, env={"COLUMNS": "250"})


@pytest.fixture
def db_options(geo_dbs: GeoDatabases, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    # Settings come from the environment; a developer's own must not leak in.
    for name in ("GEO_CITY_DB", "GEO_ASN_DB", "GEO_ANONYMOUS_DB", "POLICY_FILE"):
        monkeypatch.delenv(f"LIVEWARD_AUTH__{name}", raising=False)
    return [
        "--geo-city-db",
        str(geo_dbs.city),
        "--geo-asn-db",
        str(geo_dbs.asn),
        "--geo-anonymous-db",
        str(geo_dbs.anonymous),
    ]


def test_check_prints_an_allowed_decision_and_its_facts(db_options: list[str]) -> None:
    result = _run(["check", "89.160.20.130", *db_options])
    assert result.exit_code == 0, result.output
    assert "allowed" in result.output
    for fact in ("89.160.20.0/24", "SE", "AS29518"):
        assert fact in result.output


def test_check_exits_1_with_the_reason_when_denied(db_options: list[str]) -> None:
    result = _run(
        ["check", "2.125.160.218", "--content", "cup-final", "--device-class", "tv", *db_options]
    )
    assert result.exit_code == 1
    assert "blackout" in result.output
    assert "GB-ENG" in result.output


def test_check_can_test_the_binding_to_a_token_address(
    db_options: list[str], tmp_path: Path
) -> None:
    args = ["check", "214.0.1.5", "--token-ip", "214.78.120.5", *db_options]
    assert _run(args).exit_code == 0  # the same ASN: the shipped asn binding holds
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nip_binding = "network"\n', encoding="utf-8")
    result = _run([*args, "--policy-file", str(policy)])
    assert result.exit_code == 1
    assert "ip-moved-network" in result.output


def test_check_uses_the_policy_file_given(db_options: list[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[default]\nallowed_countries = ["GB"]\n', encoding="utf-8")
    args = ["check", "89.160.20.130", "--policy-file", str(policy), *db_options]
    result = _run(args)
    assert result.exit_code == 1
    assert "country-not-allowed" in result.output


def test_check_refuses_garbage_with_a_reason(db_options: list[str]) -> None:
    result = _run(["check", "not-an-ip", *db_options])
    assert isinstance(result.exception, GeoError)
    assert result.exception.reason == "bad-ip"


def test_verify_counts_every_network(db_options: list[str]) -> None:
    result = _run(["verify", *db_options])
    assert result.exit_code == 0, result.output
    assert sum(line.startswith("ok ") for line in result.output.splitlines()) == 3


def test_accuracy_on_the_shipped_set_prints_the_table_and_exits_0(db_options: list[str]) -> None:
    result = _run(["accuracy", *db_options])
    assert result.exit_code == 0, result.output
    assert "anonymizer" in result.output
    assert "100.0%" in result.output


def test_accuracy_exits_1_and_lists_misses(db_options: list[str], tmp_path: Path) -> None:
    labelled = tmp_path / "set.csv"
    labelled.write_text(
        "ip,content,device_class,expected_reason,category\n8.8.8.8,c,web,allowed,dns\n",
        encoding="utf-8",
    )
    result = _run(["accuracy", str(labelled), *db_options])
    assert result.exit_code == 1
    assert "expected allowed, got unknown-location" in result.output
