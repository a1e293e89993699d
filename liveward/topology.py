"""Regions and CDNs: pathway ids and where each origin and CDN edge listens. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from liveward.settings import Settings

# HLS content steering allows [a-zA-Z0-9._-] in pathway ids; '.' joins region and CDN.
PATHWAY_SEPARATOR = "."


@dataclass(frozen=True, slots=True)
class Pathway:
    """One way to reach a stream: a region's origin through one CDN's edge."""

    region: str
    cdn: str
    edge_port: int

    @property
    def id(self) -> str:
        return f"{self.region}{PATHWAY_SEPARATOR}{self.cdn}"


def pathway_id(region: str, cdn: str) -> str:
    return f"{region}{PATHWAY_SEPARATOR}{cdn}"


def split_pathway(pathway: str) -> tuple[str, str]:
    """(region, cdn) of a pathway id; ValueError if it is not one."""
    region, sep, cdn = pathway.rpartition(PATHWAY_SEPARATOR)
    if not sep or not region or not cdn:
        raise ValueError(f"not a pathway id: {pathway!r}")
    return region, cdn


# Per-region instances of a service on one host: instance i listens on port + i * step
# (as Kafka's nodes do), so region 1's license service (8182) never lands on the next
# service's port (the bridge's 8083).
INSTANCE_PORT_STEP = 100


def instance_port(base: int, index: int) -> int:
    """The port of a service's instance `index` (one per region) on a shared host."""
    return base + index * INSTANCE_PORT_STEP


def origin_port(settings: Settings, region: str) -> int:
    return settings.media.origin_port_base + settings.regions.index(region)


def pathways(settings: Settings) -> list[Pathway]:
    """Every (region, CDN) pathway, regions in settings order, CDNs within each region."""
    cdns = settings.media.cdns
    return [
        Pathway(region, cdn, settings.media.edge_port_base + i * len(cdns) + j)
        for i, region in enumerate(settings.regions)
        for j, cdn in enumerate(cdns)
    ]
