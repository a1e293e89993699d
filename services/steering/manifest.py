"""Steering manifests for players: HLS Content Steering and DASH-IF content steering. Pure.

HLS (draft-pantos-hls-rfc8216bis, 'Content Steering'): the player GETs the SERVER-URI of
`#EXT-X-CONTENT-STEERING`, then the manifest's RELOAD-URI every TTL seconds, adding
`_HLS_pathway=<its current pathway>` and `_HLS_throughput=<bits/s>`. DASH-IF (CTS 00XX,
'Content Steering for DASH'): the same loop with `_DASH_pathway` and `_DASH_throughput`,
and `SERVICE-LOCATION-PRIORITY` naming the MPD's `BaseURL@serviceLocation`s; players may
quote the pathway and list several, comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.steering.errors import MalformedRequest

# HLS pathway ids are [a-zA-Z0-9._-]; our content ids keep to the same alphabet.
PATHWAY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
CONTENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
# A player's throughput estimate in bits/s; anything above 1 Tbit/s is not a measurement.
MAX_THROUGHPUT_BPS = 10**12
SESSION_PARAM = "session"


@dataclass(frozen=True, slots=True)
class SteeringRequest:
    """A validated steering request: which content, and what the player told us."""

    content_id: str
    session: str | None
    pathways: tuple[str, ...]
    throughput_bps: tuple[int, ...]

    @property
    def current_pathway(self) -> str | None:
        # A DASH player lists every location it used since its last request; the last is
        # where it is now.
        return self.pathways[-1] if self.pathways else None


def parse_request(
    content_id: str, query: Sequence[tuple[str, str]], *, dash: bool
) -> SteeringRequest:
    """Validate the path's content id and the query; MalformedRequest names what is wrong.

    Repeated parameters are refused rather than guessed at.
    """
    if CONTENT_ID.fullmatch(content_id) is None:
        raise MalformedRequest("malformed-content", f"content id {content_id!r} is not valid")
    prefix = "_DASH_" if dash else "_HLS_"
    values: dict[str, str] = {}
    for name, value in query:
        if name in values:
            raise MalformedRequest("malformed-query", f"{name} is given more than once")
        values[name] = value
    session = values.get(SESSION_PARAM)
    if session is not None and SESSION_ID.fullmatch(session) is None:
        raise MalformedRequest("malformed-session", "session must be 8-64 of [A-Za-z0-9_-]")
    pathway_arg = values.get(f"{prefix}pathway")
    throughput_arg = values.get(f"{prefix}throughput")
    return SteeringRequest(
        content_id=content_id,
        session=session,
        pathways=_pathways(pathway_arg, f"{prefix}pathway", dash) if pathway_arg else (),
        throughput_bps=(
            _throughputs(throughput_arg, f"{prefix}throughput", dash)
            if throughput_arg is not None
            else ()
        ),
    )


def _pathways(raw: str, name: str, dash: bool) -> tuple[str, ...]:
    items = raw.split(",") if dash else [raw]
    pathways = []
    for item in items:
        pathway = item.strip()
        if dash and len(pathway) >= 2 and pathway[0] == pathway[-1] == '"':
            pathway = pathway[1:-1]
        if PATHWAY_ID.fullmatch(pathway) is None:
            raise MalformedRequest("malformed-pathway", f"{name} {item!r} is not a pathway id")
        pathways.append(pathway)
    return tuple(pathways)


def _throughputs(raw: str, name: str, dash: bool) -> tuple[int, ...]:
    items = raw.split(",") if dash else [raw]
    values = []
    for item in items:
        text = item.strip()
        if not text.isascii() or not text.isdigit() or int(text) > MAX_THROUGHPUT_BPS:
            raise MalformedRequest(
                "malformed-throughput", f"{name} {item!r} is not a throughput in bits/s"
            )
        values.append(int(text))
    return tuple(values)


def hls_manifest(
    priority: Sequence[str],
    *,
    ttl_s: int,
    reload_uri: str,
    current_pathway: str | None,
    edge_hosts: Mapping[str, str],
) -> dict[str, Any]:
    """The HLS steering manifest.

    PATHWAY-CLONES: for a player on a pathway we know, every other pathway we can reach
    is offered as a clone of it with its edge as HOST (every edge serves the same paths).
    A player already holding a pathway of that id ignores the clone; one whose
    multivariant playlist predates a region or CDN gains it without reloading.
    """
    manifest: dict[str, Any] = {
        "VERSION": 1,
        "TTL": ttl_s,
        "RELOAD-URI": reload_uri,
        "PATHWAY-PRIORITY": list(priority),
    }
    if current_pathway in edge_hosts:
        clones = [
            {"BASE-ID": current_pathway, "ID": p, "URI-REPLACEMENT": {"HOST": edge_hosts[p]}}
            for p in priority
            if p != current_pathway and p in edge_hosts
        ]
        if clones:
            manifest["PATHWAY-CLONES"] = clones
    return manifest


def dash_manifest(priority: Sequence[str], *, ttl_s: int, reload_uri: str) -> dict[str, Any]:
    """The DASH-IF steering manifest (DCSM): service locations are our pathway ids."""
    return {
        "VERSION": 1,
        "TTL": ttl_s,
        "RELOAD-URI": reload_uri,
        "SERVICE-LOCATION-PRIORITY": list(priority),
    }
