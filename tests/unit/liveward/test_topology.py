"""Pathway ids and ports follow the settings."""

from __future__ import annotations

import pytest

from liveward.settings import Settings
from liveward.topology import origin_port, pathway_id, pathways, split_pathway


def test_every_region_and_cdn_has_a_distinct_pathway_and_port() -> None:
    settings = Settings(regions=("eu-west", "us-east"))
    found = pathways(settings)
    assert [p.id for p in found] == [
        "eu-west.cdn-a", "eu-west.cdn-b", "us-east.cdn-a", "us-east.cdn-b",
    ]  # fmt: skip
    assert len({p.edge_port for p in found}) == 4
    assert origin_port(settings, "us-east") == settings.media.origin_port_base + 1


def test_pathway_ids_split_back() -> None:
    assert split_pathway(pathway_id("ap-south", "cdn-b")) == ("ap-south", "cdn-b")
    with pytest.raises(ValueError, match="not a pathway"):
        split_pathway("no-separator")
