"""Hostile documents: schedules that never fire, validation and sync agreeing, special time zones,
huge or malformed documents, numbers beyond INT64, lone surrogates, deep YAML, Unicode normalisation.

Each case here once crashed a job or let through what a later stage refused."""

from __future__ import annotations

import io
import json
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from functions_framework import create_app
from google.events.cloud.firestore import DocumentEventData

from cli.segments import Context, main
from shared import bootstrap
from shared.config import ScheduleSettings
from shared.cron import MIN_INTERVAL_MINUTES, cron_error, time_zone_error
from shared.services import segments as service
from shared.services.sync_schedules import sync_schedules
from shared.tam.compiler import compile_segment
from shared.tam.events import DocumentChange, EventError, decode_document_event, firestore_value
from shared.tam.files import UnreadableSegmentFile, load_file
from shared.tam.rules import MAX_CONDITIONS, MAX_ERRORS, InvalidSegment, definition_hash, parse_segment
from tests.builders import SEGMENTS_NOW as NOW
from tests.builders import TODAY, firestore_event_headers, planted_warehouse, proto_event
from tests.fakes import FakeDocumentStore

GOOD: dict[str, Any] = {
    "name": "Seoul",
    "template": "behaviour",
    "period": {"last_days": 3650},
    "rules": {"all": [{"segmentlet": "region", "op": "eq", "value": "Seoul"}]},
    "schedule": {"cron": "0 7 * * *", "timezone": "Asia/Seoul"},
}


def store(**segments: dict[str, Any]) -> FakeDocumentStore:
    documents = FakeDocumentStore(docs={"segments": {}, "segmentlets": {}, "templates": {}, "runs": {}})
    for segment_id, doc in segments.items():
        documents.set("segments", segment_id, doc)
    return documents


def problems(document: Any, segment_id: str = "s1", **kwargs: Any) -> list[str]:
    with pytest.raises(InvalidSegment) as caught:
        parse_segment(segment_id, document, **kwargs)
    return [str(p) for p in caught.value.problems]


def with_value(segmentlet: str, op: str, value: Any) -> dict[str, Any]:
    return {**GOOD, "rules": {"all": [{"segmentlet": segmentlet, "op": op, "value": value}]}}


# --- schedules: one check for validation and sync ---------------------------------------------------

# (schedule as the document holds it, the one message both validation and sync give)
SCHEDULES: list[tuple[Any, str]] = [
    ({"cron": "0 0 30 2 *"}, "schedule.cron: '0 0 30 2 *' never fires within 2 years"),
    ({"cron": "0 0 29 2 *"}, "schedule.cron: '0 0 29 2 *' fires less than once every 2 years"),
    ({"cron": "0 0 31 4,6,9,11 *"}, "schedule.cron: '0 0 31 4,6,9,11 *' never fires within 2 years"),
    (
        {"cron": "*/5 * * * *"},
        "schedule.cron: '*/5 * * * *' fires every 5 minutes; a schedule may fire at most once every 60 minutes",
    ),
    ({"cron": "*/10 9 1 1 *"}, "schedule.cron: '*/10 9 1 1 *' fires every 10 minutes"),
    ({"cron": "0 9 L * *"}, "schedule.cron: '0 9 L * *': the day of month field 'L' is not valid unix-cron"),
    ({"cron": "61 * * * *"}, "schedule.cron: '61 * * * *' has a value out of range"),
    ({"cron": "0 6 * * *", "timezone": "localtime"}, "schedule.timezone: unknown time zone 'localtime'"),
    ({"cron": "0 6 * * *", "timezone": "posixrules"}, "schedule.timezone: unknown time zone 'posixrules'"),
    ({"cron": "0 6 * * *", "timezone": "Factory"}, "schedule.timezone: unknown time zone 'Factory'"),
    ({"cron": "0 6 * * *", "timezone": "posix/Asia/Seoul"}, "schedule.timezone: unknown time zone"),
    ({"cron": "0 6 * * *", "timezone": "Asia/Seol"}, "schedule.timezone: unknown time zone 'Asia/Seol'"),
    ({"cron": "0 6 * * *", "timezone": ""}, "schedule.timezone: must be an IANA time zone name"),
    ({"cron": "0 6 * * *", "time_zone": "UTC"}, "schedule.time_zone: unknown field; a schedule has cron and timezone"),
    (["0 6 * * *"], "schedule: must be a map {cron, timezone} or a cron string"),
]


@pytest.mark.parametrize(("schedule", "message"), SCHEDULES)
def test_validation_and_sync_refuse_the_same_schedules_with_the_same_message(schedule: Any, message: str) -> None:
    found = problems({**GOOD, "schedule": schedule})
    assert any(p.startswith(message) for p in found), found
    documents = store(bad={**GOOD, "schedule": schedule})
    report = sync_schedules(documents, FakeJobs(), ScheduleSettings(), NOW)
    assert report.errors["bad"].startswith(message), report.errors


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron": "0 6 * * *", "timezone": "UTC"},
        {"cron": "0 6 * * *", "timezone": "Etc/UTC"},
        {"cron": "0 6 * * *", "timezone": "Etc/GMT+9"},
        {"cron": "0 6 * * *", "timezone": "America/Argentina/Buenos_Aires"},
        {"cron": "0 6 * * *", "timezone": None},  # null means the default, in both
        {"cron": "0 */2 * * *"},
        {"cron": "0 0 1 1 *"},  # yearly
        "0 8,20 1-7 jan,jul sun",
    ],
)
def test_validation_and_sync_accept_the_same_schedules(schedule: Any) -> None:
    segment = parse_segment("s1", {**GOOD, "schedule": schedule})
    assert segment.schedule.timezone in ("Asia/Seoul", (schedule.get("timezone") if isinstance(schedule, dict) else ""))
    report = sync_schedules(store(ok={**GOOD, "schedule": schedule}), FakeJobs(), ScheduleSettings(), NOW)
    assert report.errors == {} and len(report.created) == 1


def test_the_minimum_interval_is_one_setting_for_both() -> None:
    assert ScheduleSettings().min_interval_minutes == MIN_INTERVAL_MINUTES == 60
    every_30 = {**GOOD, "schedule": {"cron": "*/30 * * * *"}}
    assert problems(every_30) == [
        "schedule.cron: '*/30 * * * *' fires every 30 minutes; a schedule may fire at most once every 60 minutes"
    ]
    assert parse_segment("s1", every_30, min_interval_minutes=30).schedule.cron == "*/30 * * * *"
    assert parse_segment("s1", every_30, min_interval_minutes=0).schedule.cron == "*/30 * * * *"
    # A schedule that never fires is refused even with the interval check off.
    assert cron_error("0 0 30 2 *", 0) == "'0 0 30 2 *' never fires within 2 years"
    assert problems({**GOOD, "schedule": "0 0 30 2 *"}, min_interval_minutes=0) == [
        "schedule.cron: '0 0 30 2 *' never fires within 2 years"
    ]


def test_special_zone_files_are_not_time_zones() -> None:
    for name in ("localtime", "posixrules", "Factory", "right/UTC", "posix/UTC", "\ud800", "Asia/Seoul\x00"):
        assert time_zone_error(name) is not None, name
    for name in ("UTC", "Etc/UTC", "Etc/GMT-14", "Asia/Seoul", "Europe/London"):
        assert time_zone_error(name) is None, name


def test_echoed_values_are_truncated() -> None:
    cron = "0 " * 300_000
    error = cron_error(cron)
    assert error is not None and len(error) < 200 and error.startswith("'0 0 0 0 0 0")
    found = problems({**GOOD, "schedule": {"cron": "0 6 * * *", "x" * 100_000: 1}})
    assert len(found[0]) < 200, found


# --- build_segments: no segment stops the others -------------------------------------------------------


def stored_definition(doc: dict[str, Any]) -> dict[str, Any]:
    """The definition a build stamped as computed_hash (Segment.definition, defaults resolved)."""
    return {
        "name": doc["name"],
        "description": "",
        "template": doc["template"],
        "site_id": None,
        "period": doc["period"],
        "rules": doc["rules"],
        "schedule": doc["schedule"],
        "enabled": True,
    }


def test_the_stamp_of_a_build_is_the_definition_hash() -> None:
    assert parse_segment("s1", GOOD).definition_hash == definition_hash(stored_definition(GOOD))


def test_a_schedule_that_never_fires_does_not_stop_the_other_segments() -> None:
    warehouse = planted_warehouse()
    feb30 = {**GOOD, "schedule": {"cron": "0 0 30 2 *", "timezone": "UTC"}}
    documents = store(**{"a-feb30": feb30, "b-good": GOOD})
    # Built once, as happened before validation refused such a cron: later builds run the due check.
    built = {"computed_at": NOW - timedelta(days=1), "computed_hash": definition_hash(stored_definition(feb30))}
    documents.set("segments", "a-feb30", built, merge=True)
    report = service.build_segments(warehouse, documents, NOW)
    assert list(report.built) == ["b-good"]
    assert report.invalid == ["a-feb30"]
    status = (documents.get("segments", "a-feb30") or {})["status"]
    assert status["state"] == "error" and status["message"] == (
        "schedule.cron: '0 0 30 2 *' never fires within 2 years"
    )


def test_a_due_check_that_raises_is_that_segments_failure_only(monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse, documents = planted_warehouse(), store(**{"a-broken": GOOD, "b-good": GOOD})
    real = service.is_due

    def is_due(segment: Any, doc: Any, now: datetime) -> bool:
        if segment.id == "a-broken":
            raise ValueError("failed to find next date")
        return real(segment, doc, now)

    monkeypatch.setattr(service, "is_due", is_due)
    report = service.build_segments(warehouse, documents, NOW)
    assert list(report.built) == ["b-good"]
    assert report.failed == {"a-broken": "due check failed: ValueError: failed to find next date"}
    status = (documents.get("segments", "a-broken") or {})["status"]
    assert (status["state"], status["message"]) == ("error", "due check failed: ValueError: failed to find next date")


def test_a_malformed_stored_status_does_not_stop_the_build() -> None:
    bad = {**GOOD, "rules": {"all": [{"segmentlet": "age", "op": "gte", "value": "abc"}]}, "status": "garbage"}
    documents = store(**{"a-bad": bad, "b-good": GOOD})
    report = service.build_segments(planted_warehouse(), documents, NOW)
    assert report.invalid == ["a-bad"] and list(report.built) == ["b-good"]
    assert (documents.get("segments", "a-bad") or {})["status"]["state"] == "error"


# --- huge documents --------------------------------------------------------------------------------


def huge_invalid() -> dict[str, Any]:
    rule = {"segmentlet": "age", "op": "gte", "value": "x" * 60}
    return {**GOOD, "rules": {"any": [dict(rule) for _ in range(10_000)]}}


def test_a_huge_invalid_document_gets_a_short_error_list() -> None:
    document = huge_invalid()
    assert len(json.dumps(document)) > 800_000
    found = problems(document)
    assert len(found) == MAX_ERRORS + 1 == 21
    # Checking stopped at the 51st condition: the limit first, then 50 conditions' problems, 20 listed.
    assert found[0] == "rules: has more than 50 conditions; at most 50 (checking stopped there)"
    assert found[-1] == f"… and {51 - MAX_ERRORS} more problems (the first {MAX_ERRORS} are listed)"
    result = service.validate_segment("s1", document, planted_warehouse(), NOW)
    assert result["state"] == "error" and len(result["errors"]) == MAX_ERRORS + 1
    assert len(json.dumps(result, default=str)) < 20_000


def test_checking_stops_past_the_condition_limit() -> None:
    many = [{"segmentlet": "age", "op": "gte", "value": i} for i in range(MAX_CONDITIONS + 1)]
    assert problems({**GOOD, "rules": {"all": many}}) == [
        f"rules: has more than {MAX_CONDITIONS} conditions; at most {MAX_CONDITIONS} (checking stopped there)"
    ]


def test_validate_config_writes_a_status_for_a_huge_cron_and_a_huge_document() -> None:
    warehouse = planted_warehouse()
    for doc in ({**GOOD, "schedule": {"cron": "0 " * 300_000}}, huge_invalid()):
        documents = store(s1=doc)
        outcome = service.handle_segment_write(DocumentChange("segments", "s1", None, doc), warehouse, documents, NOW)
        assert outcome == "error"
        written = (documents.get("segments", "s1") or {})["status"]
        assert written["state"] == "error" and len(json.dumps(written, default=str)) < 20_000


def test_validate_config_acknowledges_malformed_firestore_values(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = store(s1=GOOD)
    monkeypatch.setattr(bootstrap, "warehouse", planted_warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    client = create_app("validate_config", "functions/validate_config/main.py").test_client()
    headers = firestore_event_headers(content_type="application/json")
    name = "projects/p/databases/(default)/documents/segments/s1"
    for fields in (
        {"name": {"timestampValue": "not a time"}},
        {"name": {"integerValue": "12x"}},
        {"name": {"integerValue": "9" * 5000}},
        {"name": {"bytesValue": "%%%"}},
        {"name": {"mapValue": "x"}},
        {"name": {"arrayValue": {"values": "x"}}},
        {"name": "plain"},
    ):
        body = json.dumps({"value": {"name": name, "fields": fields}})
        assert client.post("/", data=body, headers=headers).status_code == 200, fields
    assert "status" not in (documents.get("segments", "s1") or {})


@pytest.mark.parametrize(
    "value",
    [
        {"timestampValue": "not a time"},
        {"integerValue": "12x"},
        {"integerValue": "9" * 5000},
        {"bytesValue": "%%%"},
        {"mapValue": "x"},
        {"arrayValue": {"values": "x"}},
        "plain",
    ],
)
def test_malformed_firestore_values_are_event_errors(value: Any) -> None:
    with pytest.raises(EventError):
        firestore_value(value)


def test_events_nested_deeper_than_python_recurses_are_event_errors() -> None:
    # (functions-framework unmarshals JSON data itself and answers 500 before the handler runs;
    # Eventarc sends Firestore events as protobuf, so only this decoder meets them in production.)
    name = "projects/p/databases/(default)/documents/segments/s1"
    deep = '{"value": {"name": "' + name + '", "fields": {"a": ' + '{"mapValue": {"fields": {"a": ' * 2000
    deep += '{"nullValue": null}' + "}}}" * 2000 + "}}}"
    for data in (deep.encode(), b'{"value": ' + b"[" * 100_000, {"value": 5}):
        with pytest.raises(EventError):
            decode_document_event(data)
    nested: dict[str, Any] = {"nullValue": None}
    for _ in range(5000):
        nested = {"mapValue": {"fields": {"a": nested}}}
    with pytest.raises(EventError):
        firestore_value(nested)


def test_a_timestamp_beyond_the_year_9999_in_a_protobuf_event_is_an_event_error() -> None:
    event = DocumentEventData.pb(DocumentEventData.deserialize(proto_event(None, {"at": NOW})))
    event.value.fields["at"].timestamp_value.seconds = 253_402_300_800 + 86_400 * 400  # in the year 10001
    with pytest.raises(EventError):
        decode_document_event(event.SerializeToString())


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (10**308, "rules.all[0].value: a 309-digit number is outside the whole numbers BigQuery takes"),
        (2**63, "rules.all[0].value: 9223372036854775808 is outside the whole numbers BigQuery takes"),
        (-(2**63) - 1, "rules.all[0].value: -9223372036854775809 is outside the whole numbers BigQuery takes"),
        (10**5000, "rules.all[0].value: a 5001-digit number is outside the whole numbers BigQuery takes"),
        (float("inf"), "rules.all[0].value: expected a finite number for age, got Infinity"),
        (float("nan"), "rules.all[0].value: expected a finite number for age, got NaN"),
    ],
    ids=["309-digits", "2^63", "-2^63-1", "5001-digits", "inf", "nan"],
)
def test_numbers_beyond_int64_or_not_finite_are_refused(value: Any, message: str) -> None:
    found = problems(with_value("age", "gte", value))
    assert len(found) == 1 and found[0].startswith(message), found


def test_int64_bounds_are_accepted_and_between_checks_each_end() -> None:
    for value in (2**63 - 1, -(2**63)):
        assert parse_segment("s1", with_value("rvn_ltv", "gte", value)).conditions()[0].value == value
    found = problems(with_value("age", "between", [0, 2**64]))
    assert found == [
        "rules.all[0].value[1]: 18446744073709551616 is outside the whole numbers BigQuery takes "
        "(-9223372036854775808 to 9223372036854775807)"
    ]
    assert problems({**GOOD, "period": {"last_days": 10**5000}}) == [
        "period.last_days: must be between 1 and 3650, got a 5001-digit number"
    ]


# --- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({**GOOD, "name": "bad \ud800 name"}, "name: must be valid Unicode text (a lone surrogate at character 5)"),
        ({**GOOD, "description": "\udfff"}, "description: must be valid Unicode text"),
        (with_value("region", "eq", "Seoul\ud800"), "rules.all[0].value: must be valid Unicode text"),
        (with_value("kw_inner", "contains_any", ["a", "\ud800"]), "rules.all[0].value[1]: must be valid Unicode"),
        ({**GOOD, "\ud800": 1}, "\\ud800: unknown field"),
    ],
)
def test_lone_surrogates_are_refused(document: dict[str, Any], message: str) -> None:
    found = problems(document)
    assert any(p.startswith(message) for p in found), found
    for p in found:
        p.encode("utf-8")  # printable and storable


def test_values_are_normalised_to_nfc_and_match_nfc_data() -> None:
    nfd = unicodedata.normalize("NFD", "셔츠")
    assert nfd != "셔츠"
    segment = parse_segment("s1", with_value("kw_inner", "contains", nfd))
    assert segment.conditions()[0].value == "셔츠"
    compiled = compile_segment(segment, TODAY)
    assert compiled.params["p0"] == "셔츠"
    warehouse = planted_warehouse()
    rows = warehouse.query(compiled.members_sql(), compiled.params)
    assert {r["customer_id"] for r in rows} == {"c01"}
    same = parse_segment("s1", with_value("kw_inner", "contains", "셔츠"))
    assert segment.definition_hash == same.definition_hash  # the same segment, however it was typed
    listed = parse_segment("s1", with_value("kw_inner", "contains_any", [nfd, "셔츠"]))
    assert listed.conditions()[0].value == ("셔츠",)


def test_a_valid_segment_always_has_a_definition_hash_and_a_storable_status() -> None:
    result = service.validate_segment("s1", with_value("region", "eq", "서울"), planted_warehouse(), NOW)
    json.dumps(result, default=str).encode("utf-8")


# --- files and the command line -------------------------------------------------------------------


def cli(tmp_path: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    documents = store()
    ctx = Context(out, lambda: documents, planted_warehouse, lambda: NOW, tmp_path)
    code = main(list(argv), ctx)
    return code, out.getvalue()


def test_deep_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(UnreadableSegmentFile, match="nests too deeply"):
        load_file(tmp_path / "deep.yaml")
    code, out = cli(tmp_path, "validate", "deep.yaml")
    assert code == 1 and out.startswith("error ") and "deep.yaml: nests too deeply" in out


def test_a_huge_integer_in_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text("name: x\nperiod: {last_days: " + "9" * 5000 + "}\n", encoding="utf-8")
    code, out = cli(tmp_path, "validate", "big.yaml")
    assert code == 1 and "big.yaml: not valid YAML" in out


def test_a_lone_surrogate_in_yaml_is_refused_by_validate(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        'name: "bad \\ud800"\ntemplate: behaviour\nrules: {segmentlet: region, op: eq, value: "x\\udc00"}\n',
        encoding="utf-8",
    )
    code, out = cli(tmp_path, "validate", "s.yaml")
    assert code == 1
    assert "  name: must be valid Unicode text (a lone surrogate at character 5)\n" in out
    assert "  rules.value: must be valid Unicode text (a lone surrogate at character 2)\n" in out
    out.encode("utf-8")


# --- a fake scheduler ------------------------------------------------------------------------------


class FakeJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, Any] = {}

    def list_jobs(self, prefix: str) -> list[Any]:
        return [job for name, job in sorted(self.jobs.items()) if name.startswith(prefix)]

    def upsert_job(self, spec: Any) -> None:
        self.jobs[spec.name] = spec

    def delete_job(self, name: str) -> None:
        self.jobs.pop(name, None)


# --- the setting reaches every path -----------------------------------------------------------------


def test_the_handlers_apply_the_deployments_minimum_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    every_30 = {**GOOD, "schedule": {"cron": "*/30 * * * *", "timezone": "UTC"}}
    documents = store(s1=every_30)
    monkeypatch.setattr(bootstrap, "warehouse", planted_warehouse)
    monkeypatch.setattr(bootstrap, "documents", lambda: documents)
    monkeypatch.setattr(bootstrap, "schedule_config", lambda: ScheduleSettings(min_interval_minutes=30))
    headers = firestore_event_headers()
    client = create_app("validate_config", "functions/validate_config/main.py").test_client()
    assert client.post("/", data=proto_event(None, every_30), headers=headers).status_code == 200
    assert (documents.get("segments", "s1") or {})["status"]["state"] == "ok"
    builder = create_app("build_segments", "functions/build_segments/main.py").test_client()
    assert builder.post("/", json=pubsub_body({"job": "build_segments"}), headers=ce_headers()).status_code == 200
    assert (documents.get("segments", "s1") or {})["size"] == 5


def test_validation_that_raises_still_writes_a_status(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = store(s1=GOOD)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(service, "parse_segment", broken)
    change = DocumentChange("segments", "s1", None, dict(GOOD))
    assert service.handle_segment_write(change, planted_warehouse(), documents, NOW) == "error"
    written = (documents.get("segments", "s1") or {})["status"]
    assert written["message"] == "could not be checked: RecursionError: maximum recursion depth exceeded"


def test_a_segment_sync_cannot_plan_is_an_error_on_that_segment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.services import sync_schedules as sync

    real = sync.segment_job

    def segment_job(segment_id: str, *args: Any) -> Any:
        if segment_id == "a-broken":
            raise TypeError("unexpected value")
        return real(segment_id, *args)

    monkeypatch.setattr(sync, "segment_job", segment_job)
    jobs = FakeJobs()
    report = sync.sync_schedules(store(**{"a-broken": GOOD, "b-good": GOOD}), jobs, ScheduleSettings(), NOW)
    assert report.errors == {"a-broken": "schedule: could not be planned: TypeError: unexpected value"}
    assert sorted(jobs.jobs) == ["cdp-seg-b-good"]


def test_a_surrogate_segment_id_in_a_file_prints(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text('id: "a\\ud800"\nname: x\ntemplate: all_users\n', encoding="utf-8")
    code, out = cli(tmp_path, "validate", "s.yaml")
    assert code == 1 and "error s.yaml (a\\ud800):\n" in out
    out.encode("utf-8")


def pubsub_body(body: dict[str, Any]) -> dict[str, Any]:
    import base64

    data = base64.b64encode(json.dumps(body).encode()).decode()
    return {"message": {"data": data, "attributes": {"job": body["job"]}, "messageId": "m1"}, "subscription": "s"}


def ce_headers() -> dict[str, str]:
    return {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub/test",
        "ce-id": "m1",
        "Content-Type": "application/json",
    }


def test_the_command_line_applies_the_same_minimum_interval(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text('name: x\ntemplate: all_users\nschedule: "*/30 * * * *"\n', encoding="utf-8")
    code, out = cli(tmp_path, "validate", "s.yaml")
    assert code == 1 and "  schedule.cron: '*/30 * * * *' fires every 30 minutes; a schedule may fire" in out
    ctx = Context(io.StringIO(), store, planted_warehouse, lambda: NOW, tmp_path, min_interval_minutes=30)
    assert main(["validate", "s.yaml"], ctx) == 0


def test_a_run_at_beyond_the_last_representable_time_is_a_body_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="run_at '9999-12-31T23:59:59-14:00' is out of range"):
        service.build_job({"job": "build_segments", "run_at": "9999-12-31T23:59:59-14:00"}, NOW)
    assert service.parse_build_job(b'{"job": "build_segments", "run_at": "9999-12-31T23:59:59-14:00"}', NOW) is None
