"""scripts/campaigns: campaigns, message templates and the messaging policy as YAML files, and a
preview of what a campaign run would send (docs/campaigns.md#examples, #preview).

    scripts/campaigns validate FILE|DIR…   check files offline (exit 1 on any error)
    scripts/campaigns apply FILE|DIR…      validate, then write them to Firestore (idempotent)
    scripts/campaigns preview ID|FILE      N recipients' messages with every policy decision, and
                                           the run's funnel; writes and sends nothing
    scripts/campaigns list                 every campaign with its status

A folder holds `policy.yaml`, `templates/*.yaml` and campaigns (shared/messaging/files.py). The
preview reads the warehouse the demo built (.local/demo/warehouse.duckdb; CDP_DUCKDB_PATH or
--warehouse for another, BigQuery with CDP_WAREHOUSE=bigquery); the work is in
shared/services/campaign_preview.py, and this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from google.auth.exceptions import DefaultCredentialsError

from shared.activation.publications import InvalidConfig
from shared.config import ConfigError, Settings
from shared.consent.policy import SEOUL
from shared.cron import MIN_INTERVAL_MINUTES
from shared.messaging import MessageReason, files, ledger
from shared.messaging.campaigns import CAMPAIGNS, POLICY, TEMPLATES, Campaign, MessagingPolicy, parse_policy
from shared.messaging.campaigns import validate_campaign as check_campaign_doc
from shared.messaging.templates import PARTS, MessageTemplate, parse_template
from shared.ports import DocumentStore, Warehouse
from shared.services import campaign_preview as service
from shared.services.deliver import Links
from shared.services.segments import SEGMENTS
from shared.tam.files import UnreadableSegmentFile
from shared.tam.rules import Problem

DEMO_WAREHOUSE: Final = ".local/demo/warehouse.duckdb"
SENDERS: Final = frozenset(channel.value for channel in PARTS)
"""Channels with an adapter and templates: what files are checked against. Whether this deployment
has the sender's credentials is validate_config's check, and the preview's note."""
_SUFFIXES: Final = (".yaml", ".yml")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


@dataclass
class Context:
    out: TextIO
    documents: Callable[[], DocumentStore]
    warehouse: Callable[[], Warehouse]
    now: Callable[[], datetime]
    cwd: Path
    salt: str
    links: Links | None
    available: Collection[str]  # the channels this deployment has a sender for
    min_interval_minutes: int = MIN_INTERVAL_MINUTES


# -- files --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookups:
    """What a campaign's checks read: the policy document and templates by id."""

    policy_doc: Callable[[], Any]
    template_doc: Callable[[str], Any]
    segment_exists: Callable[[str], bool]


def _read(ctx: Context, names: Sequence[str]) -> tuple[list[files.DocumentFile], bool]:
    found, failed = [], False
    for path in files.expand(ctx.cwd / name for name in names):
        try:
            found.append(files.read(path))
        except UnreadableSegmentFile as exc:
            print(f"error {exc}", file=ctx.out)
            failed = True
    return found, failed


def _problems(ctx: Context, found: files.DocumentFile, lookups: Lookups) -> list[str]:
    """One document's problems, `path: message` each; none when it is valid."""
    try:
        if found.collection == TEMPLATES:
            parse_template(found.doc_id, found.doc)
        elif found.collection == CAMPAIGNS:
            _campaign(ctx, found.doc_id, found.doc, lookups)
        else:
            parse_policy(found.doc)
    except InvalidConfig as exc:
        return [str(problem) for problem in exc.problems]
    return []


def _campaign(
    ctx: Context, campaign_id: str, doc: Any, lookups: Lookups
) -> tuple[Campaign, MessageTemplate, MessagingPolicy]:
    """A campaign checked as validate_config checks it (the deployment's senders aside); InvalidConfig."""
    try:
        policy = parse_policy(lookups.policy_doc())
    except InvalidConfig as exc:
        problem = Problem(
            "policy", f"messaging/policy is invalid ({exc.problems[0]}); fix it before this campaign sends"
        )
        raise InvalidConfig([problem]) from exc
    campaign, template = check_campaign_doc(
        campaign_id,
        doc,
        segment_exists=lookups.segment_exists,
        template_doc=lookups.template_doc,
        policy=policy,
        available_channels=SENDERS,
        min_interval_minutes=ctx.min_interval_minutes,
        now=ctx.now(),
    )
    return campaign, template, policy


def _check(ctx: Context, found: list[files.DocumentFile], lookups: Callable[[files.DocumentFile], Lookups]) -> bool:
    """Print each file's verdict; True when every one is valid."""
    ok = True
    for item in found:
        problems = _problems(ctx, item, lookups(item))
        if problems:
            print(f"error {_shown(ctx, item.path)} ({item.name}):", file=ctx.out)
            for problem in problems:
                print(f"  {problem}", file=ctx.out)
            ok = False
        else:
            print(f"ok    {_shown(ctx, item.path)} ({item.name})", file=ctx.out)
    return ok


def _shown(ctx: Context, path: Path) -> str:
    """A path as the user wrote it: relative to where they are, when it is below."""
    return str(path.relative_to(ctx.cwd)) if path.is_relative_to(ctx.cwd) else str(path)


def _given(found: Sequence[files.DocumentFile]) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    policy = next((f.doc for f in found if f.collection == POLICY[0]), None)
    return policy, {f.doc_id: f.doc for f in found if f.collection == TEMPLATES}


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    found, failed = _read(ctx, args.files)
    policy, templates = _given(found)

    def offline(item: files.DocumentFile) -> Lookups:
        """The files given, then those beside the campaign's file; the segment is checked on apply."""
        near_policy, near = files.beside(item.path) if item.collection == CAMPAIGNS else (None, {})
        chosen = policy if policy is not None else near_policy
        return Lookups(lambda: chosen, lambda t: templates.get(t, near.get(t)), lambda _: True)

    return 0 if _check(ctx, found, offline) and not failed else 1


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    found, failed = _read(ctx, args.files)
    if failed:
        print("nothing applied: fix the errors above first", file=ctx.out)
        return 1
    documents = ctx.documents()
    policy, templates = _given(found)

    def stored(_: files.DocumentFile) -> Lookups:
        """The files given, then what Firestore holds: what validate_config will read after this."""
        return Lookups(
            lambda: policy if policy is not None else documents.get(*POLICY),
            lambda t: templates[t] if t in templates else documents.get(TEMPLATES, t),
            lambda s: documents.get(SEGMENTS, s) is not None,
        )

    if not _check(ctx, found, stored):
        print("nothing applied: fix the errors above first", file=ctx.out)
        return 1
    for item in found:
        current = documents.get(item.collection, item.doc_id)
        new = files.to_store(item, current)
        if new is None:
            outcome = "unchanged"
        else:
            documents.set(item.collection, item.doc_id, new)
            outcome = "created" if current is None else "updated"
        print(f"{outcome:<9} {item.name} ({item.path.name})", file=ctx.out)
    missing = sorted(SENDERS - set(ctx.available))
    if missing and any(f.collection == CAMPAIGNS for f in found):
        print(f"note: this deployment has no sender for {', '.join(missing)}: validate_config marks campaigns "
              "using it invalid until it has one (docs/channels.md)", file=ctx.out)  # fmt: skip
    return 0


# -- preview ------------------------------------------------------------------------------------------


def _at(ctx: Context, text: str | None) -> datetime:
    if text is None:
        return ctx.now()
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise CliError(f"--at: expected a time with its offset, such as 2026-06-03T22:00:00+09:00, got {text!r}")
    return at.astimezone(UTC)


def _load(ctx: Context, ref: str) -> tuple[Campaign, MessageTemplate, MessagingPolicy, bool | None]:
    """The campaign a reference names, checked, and whether its segment was built (None: unknown,
    the warehouse tells)."""
    path = ctx.cwd / ref
    if ref.endswith(_SUFFIXES) or path.is_file():
        item = files.read(path)
        if item.collection != CAMPAIGNS:
            raise CliError(f"{ref}: not a campaign file (policy.yaml and templates/ hold other documents)")
        policy_doc, templates = files.beside(path)
        lookups = Lookups(lambda: policy_doc, templates.get, lambda _: True)
        campaign_id, doc, built = item.doc_id, item.doc, None
    else:
        documents = ctx.documents()
        stored = documents.get(CAMPAIGNS, ref)
        if stored is None:
            raise CliError(f"no campaign {ref!r} in Firestore (scripts/campaigns list shows them)")
        lookups = Lookups(
            lambda: documents.get(*POLICY),
            lambda t: documents.get(TEMPLATES, t),
            lambda s: documents.get(SEGMENTS, s) is not None,
        )
        campaign_id, doc = ref, stored
        segment = documents.get(SEGMENTS, str(doc.get("segment_id")))
        built = True if segment is not None and segment.get("computed_at") is not None else None
    try:
        campaign, template, policy = _campaign(ctx, campaign_id, doc, lookups)
    except InvalidConfig as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise CliError(f"campaign {campaign_id} is invalid (its status.error says the same):\n{lines}") from exc
    return campaign, template, policy, built


def cmd_preview(ctx: Context, args: argparse.Namespace) -> int:
    campaign, template, policy, built = _load(ctx, args.ref)
    at = _at(ctx, args.at)
    warehouse = ctx.warehouse()
    if campaign.segment_id is None:
        raise CliError(f"campaign {campaign.id} is sent to {campaign.audience}: it has no segment to preview")
    if not built:
        [row] = ledger.run(warehouse, "segment_built", {"segment_id": campaign.segment_id})
        if not row["built"]:
            raise CliError(
                f"segment {campaign.segment_id} has never been built in this warehouse (no members, now or "
                "before): build_segments builds it on its schedule; scripts/demo builds the examples"
            )
    if sys.stderr.isatty():  # a large audience takes seconds: say what is happening, off the output
        print(f"preview: deciding segment {campaign.segment_id}'s members at {_seoul(at)} …", file=sys.stderr)
    try:
        preview = service.preview_campaign(
            warehouse, campaign, template, policy, at, salt=ctx.salt, links=ctx.links, count=args.n,
            customers=args.customer,
        )  # fmt: skip
    except service.UnknownCustomers as exc:
        raise CliError(f"--customer: {exc}") from exc
    if args.json:
        print(json.dumps(preview.to_json(), ensure_ascii=False, indent=2), file=ctx.out)
    else:
        _print_preview(ctx, preview, template)
    return 0


def _seoul(at: datetime) -> str:
    return f"{at.astimezone(SEOUL):%Y-%m-%d %H:%M} KST"


_GROUPS: Final = (("send", "message now"), ("hold", "held (decided again when released)"), ("skip", "skipped"))


def _print_preview(ctx: Context, preview: service.CampaignPreview, template: MessageTemplate) -> None:
    out, c = ctx.out, preview.campaign
    print(f"{c.id}: {c.name}" if c.name else c.id, file=out)
    chain = " then ".join(channel.value for channel in c.channels)
    print(f"  {c.kind} to {c.audience} by {chain}, template {template.id}", file=out)
    print(f"  a run at {_seoul(preview.at)}, previewed: nothing written or sent", file=out)
    notes = [f"no sender for {ch.value} on this deployment" for ch in c.channels if ch.value not in ctx.available]
    notes += ["disabled: a run plans nothing until enabled"] * (not c.enabled)
    notes += ["dry run: a run renders to the outbox and sends nothing"] * c.dry_run
    for note in notes:
        print(f"  note: {note}", file=out)
    print("Funnel", file=out)
    print(f"  {'audience':<44}{preview.audience:>7,}", file=out)
    for outcome, label in _GROUPS:
        reasons = {r: n for (o, r), n in preview.people.items() if o == outcome}
        print(f"  {label:<44}{sum(reasons.values()):>7,}", file=out)
        if outcome != "send":
            for reason, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
                print(f"    {reason:<24}{service.WHY[MessageReason(reason)]:<44}{n:>7,}", file=out)
    if preview.funnel.planned:
        print("  rows per channel (* a fallback's)", file=out)
        for (channel, fallback, outcome, reason), n in sorted(preview.funnel.planned.items()):
            name = f"{channel}*" if fallback else channel
            print(f"    {name:<10}{outcome:<6}{reason:<28}{n:>7,}", file=out)
    shown = len(preview.recipients)
    for number, recipient in enumerate(preview.recipients, 1):
        print(f"\nRecipient {number} of {shown}: customer {recipient.customer_id} (site {recipient.site_id})", file=out)
        if recipient.values:
            values = ", ".join(f"{k}={_cell(v)}" for k, v in recipient.values.items())
            print(f"  values: {values}", file=out)
        for row in recipient.channels:
            _print_channel(out, row)


def _print_channel(out: TextIO, row: service.ChannelPreview) -> None:
    to = f" -> {row.address}" if row.address else ""
    fallback = " (fallback)" if row.fallback else ""
    release = f" until {_seoul(row.release_at)}" if row.release_at is not None else ""
    print(f"  {row.channel}{to}{fallback}: {row.outcome} {row.reason}{release}", file=out)
    for step in row.steps:
        state = "-" if step.state is service.StepState.NOT_REACHED else step.state.value
        print(f"    {step.stage.value:<14}{state:<9}{step.detail}".rstrip(), file=out)
    if row.failed is not None:
        print(f"    render: {row.failed.reason} ({row.failed.detail}); deliver tries the next channel", file=out)
    message = row.message
    if message is None:
        return
    if message.subject is not None:
        print(f"    subject: {message.subject}", file=out)
    for name, value in message.headers.items():
        print(f"    {name}: {value}", file=out)
    if message.channel == "sms":
        size, kind = service.sms_size(message.text)
        print(f"    text ({kind}, {size:,} bytes in EUC-KR):", file=out)
    else:
        print("    text:", file=out)
    for line in message.text.rstrip("\n").splitlines():
        print(f"      | {line}", file=out)
    if message.html is not None:
        print(f"    html: {len(message.html):,} characters (--json prints it)", file=out)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return "-" if value is None else str(value)


# -- list ---------------------------------------------------------------------------------------------


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    rows = []
    for campaign_id, doc in ctx.documents().list(CAMPAIGNS):
        status = doc.get("status") or {}
        channels = doc.get("channels")
        rows.append(
            {
                "id": campaign_id,
                "kind": doc.get("kind", ""),
                "segment": doc.get("segment_id", ""),
                "channels": ",".join(map(str, channels)) if isinstance(channels, list) else "",
                "enabled": doc.get("enabled", False),
                "status": status.get("state", "-") if isinstance(status, Mapping) else "-",
                "last_run": _cell(
                    doc.get("last_run", {}).get("at") if isinstance(doc.get("last_run"), Mapping) else None
                ),
            }
        )
    if not rows:
        print("no campaigns (scripts/campaigns apply examples/campaigns creates the examples)", file=ctx.out)
        return 0
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    print("  ".join(k.ljust(w) for k, w in widths.items()).rstrip(), file=ctx.out)
    for row in rows:
        print("  ".join(str(row[k]).ljust(w) for k, w in widths.items()).rstrip(), file=ctx.out)
    return 0


# -- main ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/campaigns",
        description="Campaigns, message templates and the messaging policy as YAML files; previews of a run.",
        epilog="docs/campaigns.md#examples and #preview",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (("validate", "check files offline"), ("apply", "validate, then write to Firestore")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("files", nargs="+", metavar="FILE|DIR")
    s = sub.add_parser("preview", help="recipients' messages with every policy decision, and the funnel")
    s.add_argument(
        "ref", metavar="ID|FILE", help="a campaign in Firestore, or a campaign file (policy, templates beside it)"
    )
    most = service.MAX_RECIPIENTS
    s.add_argument("--n", type=int, default=5, choices=range(1, most + 1), metavar="N",
                   help=f"recipients to show (1-{most}; default 5), those with a message first")  # fmt: skip
    s.add_argument("--customer", action="append", default=[], metavar="ID", help="show this customer (repeatable)")
    s.add_argument(
        "--at", metavar="TIME", help="the run's time with its offset (default now), e.g. 2026-06-03T22:00+09:00"
    )
    s.add_argument("--json", action="store_true", help="print the preview as JSON")
    s.add_argument(
        "--warehouse", metavar="FILE", help=f"a DuckDB file (default CDP_DUCKDB_PATH, else {DEMO_WAREHOUSE})"
    )
    sub.add_parser("list", help="campaigns in Firestore with their status")
    return p


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "apply": cmd_apply,
    "preview": cmd_preview,
    "list": cmd_list,
}


def _warehouse(settings: Settings, cwd: Path, given: str | None) -> Callable[[], Warehouse]:
    """The warehouse the preview reads: BigQuery when configured, else a DuckDB file that exists."""

    def build() -> Warehouse:
        from shared import bootstrap

        if settings.warehouse != "duckdb":
            return bootstrap.warehouse()
        path = cwd / given if given else Path(os.environ.get("CDP_DUCKDB_PATH") or DEMO_WAREHOUSE)
        if not path.is_file():
            raise CliError(f"no warehouse at {path}: scripts/demo builds one (or pass --warehouse FILE)")
        return bootstrap.build_warehouse(replace(settings, duckdb_path=str(path)))

    return build


def _context(args: argparse.Namespace) -> Context:
    os.environ.setdefault("CDP_PROJECT", os.environ.get("GOOGLE_CLOUD_PROJECT", "cdp-local"))
    from shared import bootstrap

    if isinstance(sys.stdout, io.TextIOWrapper):  # a value that is not valid Unicode still prints
        sys.stdout.reconfigure(errors="backslashreplace")
    settings = bootstrap.settings()
    root = logging.getLogger()  # the services' INFO lines would mix with what is printed (and --json)
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    prefs = settings.preferences
    cwd = Path(os.environ.get("CDP_CAMPAIGNS_CWD", "."))
    return Context(
        out=sys.stdout,
        documents=bootstrap.documents,
        warehouse=_warehouse(settings, cwd, getattr(args, "warehouse", None)),
        now=lambda: datetime.now(UTC),
        cwd=cwd,
        salt=settings.privacy.require_salt(),
        links=Links(prefs.url, prefs.key, timedelta(days=prefs.link_days)) if prefs.key else None,
        available=bootstrap.build_available_channels(settings),
        min_interval_minutes=settings.schedules.min_interval_minutes,
    )


def main(argv: Sequence[str] | None = None, ctx: Context | None = None) -> int:
    args = parser().parse_args(argv)
    out = ctx.out if ctx is not None else sys.stdout
    try:
        ctx = ctx or _context(args)
        return COMMANDS[args.command](ctx, args)
    except (CliError, UnreadableSegmentFile, ConfigError) as exc:
        print(f"error: {exc}", file=out)
        return 1
    except DefaultCredentialsError:
        print(
            "error: no Firestore to talk to: set FIRESTORE_EMULATOR_HOST for the local emulator, or log in "
            "with `gcloud auth application-default login` (a campaign file previews without Firestore)",
            file=out,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
