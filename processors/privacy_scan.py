"""The privacy scanner's detector: does a value, a record or a name carry a direct identifier?

Pure: it sees values and names, never Kafka or ClickHouse (`sinks/privacy.py` feeds it).
What analytics may hold, from the architecture's privacy boundary: keyed pseudonyms,
coarse geo, truncated addresses (an IPv4 /24 or IPv6 /48 written as a network at most)
and aggregates. What the detector reports:

- `ipv4`, `ipv6`: an address anywhere inside a string, unless written as a network no
  longer than /24 (IPv4) or /48 (IPv6), e.g. `203.0.113.0/24`;
- `email`, `mac-address`, `phone-number`: those patterns anywhere inside a string;
- `raw-viewer-id`: a value (or a token of it) that is a known raw viewer id, e.g. one
  the subscribers topic holds;
- `not-a-pseudonym`: a pseudonym field (`viewer_pseudonym`, `session_ref`) whose value is
  not a keyed hash (lowercase hex, 32 to 64 digits): a raw id slipped through;
- `identifier-field`: a field or column named like a direct identifier (`client_ip`,
  `viewer_id`, `email`, ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

PSEUDONYM_FIELDS = frozenset({"viewer_pseudonym", "session_ref"})
PSEUDONYM = re.compile(r"[0-9a-f]{32,64}")
IDENTIFIER_FIELDS = frozenset(
    {
        "ip",
        "ip_address",
        "client_ip",
        "remote_addr",
        "x_forwarded_for",
        "viewer_id",
        "user_id",
        "subscriber_id",
        "email",
        "phone",
        "phone_number",
        "mac_address",
        "user_agent",
    }
)
# Widest networks analytics may name: a /24 of IPv4, a /48 of IPv6.
MAX_IPV4_PREFIX = 24
MAX_IPV6_PREFIX = 48

_IPV4 = re.compile(r"(?<![0-9.])(\d{1,3}(?:\.\d{1,3}){3})(?:/(\d{1,2}))?(?![0-9.]|/\d)")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])([0-9A-Fa-f:]*:[0-9A-Fa-f:]+)(?:/(\d{1,3}))?(?![0-9A-Za-z:])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_MAC = re.compile(
    r"(?<![0-9A-Fa-f:-])(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-])"
)
_PHONE = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}(?!\d)")
_TOKENS = re.compile(r"[\s|:/,;=&?#()\[\]{}<>\"']+")

# A cheap first pass (RE2-compatible, so ClickHouse's match() can run it server-side):
# anything the precise checks could report contains one of these.
CANDIDATE_RE2 = (
    r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"
    r"|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:"
    r"|@[A-Za-z0-9-]+\."
    r"|[0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-]"
    r"|\+[1-9][0-9]{7}"
)
_CANDIDATE = re.compile(CANDIDATE_RE2)


@dataclass(frozen=True, slots=True)
class Hit:
    """One identifier found: what kind, in which field, and the value (masked for reports)."""

    kind: str
    field: str
    value: str

    @property
    def masked(self) -> str:
        """The value with most of it hidden, so a report does not spread what it found."""
        text = self.value
        keep = max(2, len(text) // 4)
        return text[:keep] + "…" if len(text) > keep else "…"


def _ipv4_hits(text: str) -> Iterator[str]:
    for match in _IPV4.finditer(text):
        address, prefix = match.group(1), match.group(2)
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            continue
        if prefix is not None and int(prefix) <= MAX_IPV4_PREFIX:
            continue  # a network such as 203.0.113.0/24: truncated, allowed
        yield match.group(0)


def _ipv6_hits(text: str) -> Iterator[str]:
    for match in _IPV6.finditer(text):
        address, prefix = match.group(1), match.group(2)
        try:
            parsed = ipaddress.IPv6Address(address)
        except ValueError:
            continue
        # `::`, `a::b` and the like appear in code and version strings; a real address
        # has at least three groups written out.
        if parsed.is_unspecified or sum(1 for g in address.split(":") if g) < 3:
            continue
        if prefix is not None and int(prefix) <= MAX_IPV6_PREFIX:
            continue
        yield match.group(0)


def scan_text(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for every direct identifier pattern inside text."""
    if not _CANDIDATE.search(text):
        return []
    found = [("ipv4", m) for m in _ipv4_hits(text)]
    found += [("ipv6", m) for m in _ipv6_hits(text)]
    found += [("email", m.group(0)) for m in _EMAIL.finditer(text)]
    found += [("mac-address", m.group(0)) for m in _MAC.finditer(text)]
    found += [("phone-number", m.group(0)) for m in _PHONE.finditer(text)]
    return found


class Detector:
    """Finds direct identifiers in values, records and names; `known_ids` are raw viewer ids."""

    def __init__(
        self,
        known_ids: Iterable[str] = (),
        *,
        pseudonym_fields: frozenset[str] = PSEUDONYM_FIELDS,
    ) -> None:
        # Very short ids ("1", "ab") would match everywhere; no real subscriber id is that short.
        self.known_ids = frozenset(i for i in known_ids if len(i) >= 4)
        self.pseudonym_fields = pseudonym_fields

    def scan_value(self, field: str, value: object) -> list[Hit]:
        """Hits in one field's value (strings, and strings inside lists and maps)."""
        if isinstance(value, str):
            return self._scan_string(field, value)
        if isinstance(value, Mapping):
            return [hit for k, v in value.items() for hit in self.scan_value(f"{field}.{k}", v)]
        if isinstance(value, list | tuple):
            return [hit for item in value for hit in self.scan_value(f"{field}[]", item)]
        return []

    def scan_record(self, record: Mapping[str, object]) -> list[Hit]:
        """Hits in every field of a record, field names included."""
        hits = self.scan_names(record)
        for field, value in record.items():
            hits += self.scan_value(field, value)
        return hits

    def scan_names(self, names: Iterable[str]) -> list[Hit]:
        return [Hit("identifier-field", n, n) for n in names if n.lower() in IDENTIFIER_FIELDS]

    def _scan_string(self, field: str, value: str) -> list[Hit]:
        hits = [Hit(kind, field, found) for kind, found in scan_text(value)]
        name = field.rsplit(".", 1)[-1]
        if name in self.pseudonym_fields and not PSEUDONYM.fullmatch(value):
            hits.append(Hit("not-a-pseudonym", field, value))
        if self.known_ids and (
            value in self.known_ids or any(t in self.known_ids for t in _TOKENS.split(value))
        ):
            hits.append(Hit("raw-viewer-id", field, value))
        return hits
