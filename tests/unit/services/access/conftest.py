"""Test MaxMind databases written once per session, and a resolver and policy book over them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.access.geo import GeoResolver
from services.access.policy import PolicyBook

# The shared builders live in the `tests` package at the repository root, which the
# `pytest` script does not put on sys.path by itself (pytest's `pythonpath` setting would).
_ROOT = str(Path(__file__).resolve().parents[4])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.fixtures.geo import GeoDatabases, write_geo_databases  # noqa: E402


@pytest.fixture(scope="session")
def geo_dbs(tmp_path_factory: pytest.TempPathFactory) -> GeoDatabases:
    return write_geo_databases(tmp_path_factory.mktemp("geo"))


@pytest.fixture
def resolver(geo_dbs: GeoDatabases) -> Iterator[GeoResolver]:
    with GeoResolver(geo_dbs.city, geo_dbs.asn, geo_dbs.anonymous) as opened:
        yield opened


@pytest.fixture(scope="session")
def shipped_book() -> PolicyBook:
    return PolicyBook.load(None)
