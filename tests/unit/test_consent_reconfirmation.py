"""Re-confirmation (Art. 50(8)): the day each current marketing grant's two-yearly notice is due, in
Seoul days, reset by a notice or a new grant, never for a withdrawn consent; notices never grant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from shared.consent.vocabulary import ConsentError, Purpose
from shared.ports import Warehouse
from shared.services import consent as service
from tests.builders import SALT, SITE, link, new_warehouse

NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)


def kst(text: str) -> datetime:
    """'2024-05-01 23:30' read as a wall time in Seoul."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC) - timedelta(hours=9)


def decide(w: Warehouse, member: str, when: str, purposes: dict[str, object]) -> None:
    at = kst(when)
    service.record_consent(w, SITE, "member", member, purposes, at, "preference_centre", recorded_at=at)


@pytest.fixture(scope="module")
def warehouse() -> Warehouse:
    w = new_warehouse()
    for n in range(1, 9):
        link(w, f"c{n}", f"member:m{n}")
    decide(w, "m1", "2024-05-01 23:30", {"marketing": True})  # late evening in Seoul: due 2026-05-01
    decide(w, "m2", "2024-05-02 00:30", {"marketing": True, "night_marketing": True})  # already 2 May in Seoul
    decide(w, "m3", "2024-02-29 12:00", {"marketing": True})  # due 2026-02-28, as BigQuery's DATE_ADD clamps
    decide(w, "m4", "2024-03-01 12:00", {"marketing": True})
    service.record_reconfirmation(w, SITE, "member", "m4", ["marketing"], kst("2026-02-20 10:00"), request_id="run-1")
    decide(w, "m5", "2023-01-01 12:00", {"marketing": True})
    decide(w, "m5", "2024-01-01 12:00", {"marketing": False})  # withdrawn: no notice due
    decide(w, "m6", "2023-01-01 12:00", {"marketing": True})
    decide(w, "m6", "2024-01-01 12:00", {"marketing": False})
    decide(w, "m6", "2025-01-01 12:00", {"marketing": True})  # granted again: the clock restarts
    decide(w, "m7", "2024-01-01 12:00", {"marketing": False})
    service.record_reconfirmation(w, SITE, "member", "m7", ["marketing"], kst("2024-06-01 12:00"))  # by mistake
    decide(w, "m8", "2026-07-01 12:00", {"marketing": True})  # after NOW
    return w


def due(w: Warehouse, by: str) -> dict[tuple[str, Purpose], date]:
    return {
        (r.customer_id, r.purpose): r.due_on for r in service.reconfirmations_due(w, SITE, NOW, date.fromisoformat(by))
    }


def test_due_dates_in_seoul_days(warehouse: Warehouse) -> None:
    assert due(warehouse, "2099-01-01") == {
        ("c1", Purpose.MARKETING): date(2026, 5, 1),
        ("c2", Purpose.MARKETING): date(2026, 5, 2),
        ("c2", Purpose.NIGHT_MARKETING): date(2026, 5, 2),
        ("c3", Purpose.MARKETING): date(2026, 2, 28),
        ("c4", Purpose.MARKETING): date(2028, 2, 20),  # two years after the notice
        ("c6", Purpose.MARKETING): date(2027, 1, 1),
    }


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("2026-02-27", set()),
        ("2026-02-28", {"c3"}),
        ("2026-04-30", {"c3"}),
        ("2026-05-01", {"c1", "c3"}),
        ("2026-05-02", {"c1", "c2", "c3"}),
        ("2027-01-01", {"c1", "c2", "c3", "c6"}),
    ],
)
def test_only_those_due_by_the_day_asked(warehouse: Warehouse, by: str, expected: set[str]) -> None:
    assert {customer for customer, _ in due(warehouse, by)} == expected


def test_what_a_campaign_needs_to_send_and_record_the_notice(warehouse: Warehouse) -> None:
    [c4] = [r for r in service.reconfirmations_due(warehouse, SITE, NOW, date(2099, 1, 1)) if r.customer_id == "c4"]
    assert (c4.subject_type, c4.subject_value) == ("member", "m4")
    assert c4.granted_at == kst("2024-03-01 12:00") and c4.noticed_at == kst("2026-02-20 10:00")
    [c1] = [r for r in service.reconfirmations_due(warehouse, SITE, NOW, date(2099, 1, 1)) if r.customer_id == "c1"]
    assert c1.noticed_at is None


def test_a_notice_is_never_a_grant(warehouse: Warehouse) -> None:
    [c7] = service.eligible_audience(warehouse, SITE, "marketing", None, NOW, SALT, customer_ids=["c7"])
    assert c7.reason.value == "no_consent"
    states = [s for s in service.consent_states(warehouse, SITE, NOW) if s["customer_id"] == "c7"]
    assert [(s["granted"], s["source"]) for s in states] == [(False, "preference_centre")]


def test_only_marketing_consents_are_reconfirmed(warehouse: Warehouse) -> None:
    with pytest.raises(ConsentError, match="purposes.analytics: only marketing and night_marketing"):
        service.record_reconfirmation(warehouse, SITE, "member", "m1", ["marketing", "analytics"], NOW)
    with pytest.raises(ConsentError, match="purposes: at least one purpose"):
        service.record_reconfirmation(warehouse, SITE, "member", "m1", [], NOW)


def test_add_years_clamps_the_leap_day() -> None:
    assert service.add_years(date(2024, 2, 29), 2) == date(2026, 2, 28)
    assert service.add_years(date(2028, 2, 29), -2) == date(2026, 2, 28)
    assert service.add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
