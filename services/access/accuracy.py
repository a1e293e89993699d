"""The accuracy harness: labelled addresses with the decision they should get, errors by category.

A labelled set is a CSV file with the columns `ip, content, device_class,
expected_reason, category` (lines starting with # are comments). Each row runs through
the resolver and the policy book exactly as a token request would; a row whose reason
differs from the label is an error of its category. Garbage addresses are labelled
`bad-ip`.

The shipped set (`labelled.csv` beside this module) is labelled for the shipped policy
and MaxMind's test databases (or the test suite's copies of their networks); a deployment
labels its own addresses (known VPN exits, office networks, complaints) for its own DBs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Final

from services.access import AccessError
from services.access.geo import GeoError, GeoResolver
from services.access.policy import REASON_CODES, AccessRequest, PolicyBook, decide_access

COLUMNS: Final = ("ip", "content", "device_class", "expected_reason", "category")
BAD_IP: Final = "bad-ip"


class LabelledSetError(AccessError):
    """A labelled set that cannot be read, or labels a reason no decision can have."""

    reason = "labelled-set-invalid"


@dataclass(frozen=True, slots=True)
class LabelledCase:
    """One labelled address: what it asks for and the reason it should get."""

    ip: str
    content: str
    device_class: str
    expected_reason: str
    category: str
    line: int  # in the CSV file, for pointing at the label to check


@dataclass(frozen=True, slots=True)
class Miss:
    """A case whose decision differs from its label."""

    case: LabelledCase
    actual_reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class CategoryScore:
    category: str
    cases: int
    errors: int


@dataclass(frozen=True, slots=True)
class AccuracyReport:
    """Cases and errors per category (in first-seen order), and every miss."""

    scores: tuple[CategoryScore, ...]
    misses: tuple[Miss, ...]

    @property
    def cases(self) -> int:
        return sum(score.cases for score in self.scores)

    @property
    def errors(self) -> int:
        return len(self.misses)


def parse_labelled(text: str, source: str = "<labelled set>") -> list[LabelledCase]:
    """The cases in a labelled CSV text; LabelledSetError names the line at fault."""
    rows = [
        (number, next(csv.reader([line])))
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise LabelledSetError(f"{source}: no header and no cases")
    header = tuple(name.strip() for name in rows[0][1])
    if header != COLUMNS:
        raise LabelledSetError(f"{source}: header must be {','.join(COLUMNS)}, not {header}")
    known = {*REASON_CODES, BAD_IP}
    cases: list[LabelledCase] = []
    for number, row in rows[1:]:
        if len(row) != len(COLUMNS):
            raise LabelledSetError(f"{source}:{number}: {len(row)} fields, want {len(COLUMNS)}")
        ip, content, device_class, expected, category = (value.strip() for value in row)
        if expected not in known:
            raise LabelledSetError(f"{source}:{number}: unknown reason {expected!r}")
        cases.append(LabelledCase(ip, content, device_class, expected, category, number))
    return cases


def load_labelled(path: Path | None) -> list[LabelledCase]:
    """The labelled set in `path`, or the shipped one when None."""
    if path is None:
        resource = files("services.access") / "labelled.csv"
        return parse_labelled(resource.read_text(encoding="utf-8"), "shipped labelled set")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelledSetError(f"labelled set {path} cannot be read: {exc}") from exc
    return parse_labelled(text, str(path))


def run_accuracy(
    cases: Iterable[LabelledCase], resolver: GeoResolver, book: PolicyBook
) -> AccuracyReport:
    """Decide every case as a token request would and compare with its label."""
    counts: dict[str, list[int]] = {}
    misses: list[Miss] = []
    for case in cases:
        try:
            facts = resolver.resolve(case.ip)
        except GeoError as exc:
            if exc.reason != BAD_IP:
                raise
            actual, detail = BAD_IP, str(exc)
        else:
            request = AccessRequest(case.content, case.device_class, facts)
            decision = decide_access(request, book.for_content(case.content))
            actual, detail = decision.reason, decision.detail
        tally = counts.setdefault(case.category, [0, 0])
        tally[0] += 1
        if actual != case.expected_reason:
            tally[1] += 1
            misses.append(Miss(case, actual, detail))
    scores = tuple(CategoryScore(name, total, errors) for name, (total, errors) in counts.items())
    return AccuracyReport(scores, tuple(misses))
