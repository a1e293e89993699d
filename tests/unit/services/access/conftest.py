"""Test MaxMind databases written once per session, and a resolver and policy book over them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.access.demo_geo import GeoDatabases, write_geo_databases
from services.access.geo import GeoResolver
from services.access.policy import PolicyBook


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
