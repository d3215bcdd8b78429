"""Offline import: CRM customers and POS orders from CSV or NDJSON files into the raw tables.

Each record becomes a protocol event (`identify` or `conv`) and goes through the collector's own
`beacons.validate_event` and `beacons.event_rows`, so an imported row obeys the rules a tracked one
does. A record whose key is missing or invalid becomes a bad row and the import goes on; an invalid
optional field is dropped, the record kept, and the problem stored as a bad row. Event ids hash the normalised
content, so an unchanged re-import inserts nothing, and a state file per (file, mapping) lets an
interrupted import resume where it stopped. Usage and decisions: docs/import.md.

One module per step: `sources` reads and decodes a file, `mapping` resolves its columns to fields,
`shaping` turns records into validated rows (dropping invalid optional fields; `people` splits
names and names regions), `state` keeps the resume point and `runner` writes in
chunks. The command line is `cli/import_files.py`. The names below are re-exported for callers
outside; the modules import each other directly.
"""

from shared.offline_import.mapping import KINDS, TABLES, Plan, load_mapping, parse_map_args, plan_columns
from shared.offline_import.runner import BAD_ROWS, ImportReport, check_site, format_summary, run_import
from shared.offline_import.shaping import DEFAULT_TIMEZONE, ImportJob, parse_time
from shared.offline_import.sources import Source, UnusableFile, read_source
from shared.offline_import.state import DEFAULT_STATE_DIR, ImportState

__all__ = [
    "BAD_ROWS",
    "DEFAULT_STATE_DIR",
    "DEFAULT_TIMEZONE",
    "KINDS",
    "TABLES",
    "ImportJob",
    "ImportReport",
    "ImportState",
    "Plan",
    "Source",
    "UnusableFile",
    "check_site",
    "format_summary",
    "load_mapping",
    "parse_map_args",
    "parse_time",
    "plan_columns",
    "read_source",
    "run_import",
]
