"""Router presence with plain values: who lags behind a routing version, and when a silent router drops out."""
from __future__ import annotations

from datetime import datetime, timezone

from migrator.routing import presence
from migrator.routing.presence import RouterPresence

SEEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_lagging_are_the_routers_older_than_the_version() -> None:
    old, same, newer = (RouterPresence("h", pid, version, SEEN) for pid, version in ((1, 4), (2, 5), (3, 6)))
    assert presence.lagging([old, same, newer], 5) == [old]
    assert presence.lagging([old, same, newer], 4) == []
    assert presence.lagging([], 5) == []


def test_drop_out_bound_follows_the_slower_of_report_and_refresh() -> None:
    assert presence.drop_out_after(1.0) == presence.MISSED_REPORTS * presence.REPORT_EVERY
    assert presence.drop_out_after(10.0) == presence.MISSED_REPORTS * 10.0


def test_to_json() -> None:
    assert RouterPresence("web-1", 42, 7, SEEN).to_json() == {"host": "web-1", "pid": 42, "version": 7,
                                                            "last_seen": "2026-01-02T03:04:05+00:00"}
