locals {
  # What each function may do: the single source of its permissions. Every binding of a function's
  # service account is generated from this table and nothing else grants them anything.
  # docs/deploy.md ("Permissions") shows the same table; tests/infra checks that both agree and that
  # each function's secrets match its secretAccessor rows.
  #
  # `on` names one resource: "topic:<name>", "secret:<name>", "bucket:<key of local.buckets>", "dataset:<logical name>",
  # "table:<dataset>.<table>" (logical names, as in sql/schema/<dataset>/tables.json), or "project" for
  # roles that only exist at project level. `role` is a predefined role, or "custom:<key>" for a role
  # of local.custom_roles. A project custom role can be granted on the project or on a resource of
  # the project; the generated bindings resolve "custom:" on "project" and on "table:" targets.
  function_roles = {
    collect = [
      { role = "roles/pubsub.publisher", on = "topic:beacons" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:ip-salt" },
      # Signs each bus message (attribute `sig`), which the loader checks (shared/signing.py).
      { role = "roles/secretmanager.secretAccessor", on = "secret:bus-key" },
      # Checks a click link's signature before it redirects (GET /c).
      { role = "roles/secretmanager.secretAccessor", on = "secret:click-key" },
    ]
    load_events = [
      # Streams rows (tabledata.insertAll) into each raw table it writes, and nothing else: no job,
      # no query, no table metadata call, no delete. See custom_roles.stream_rows.
      { role = "custom:stream_rows", on = "table:raw.page" },
      { role = "custom:stream_rows", on = "table:raw.land" },
      { role = "custom:stream_rows", on = "table:raw.user" },
      { role = "custom:stream_rows", on = "table:raw.conv" },
      { role = "custom:stream_rows", on = "table:raw.event" },
      { role = "custom:stream_rows", on = "table:raw.consent" },
      { role = "custom:stream_rows", on = "table:raw.subscription" },
      { role = "custom:stream_rows", on = "table:raw.bad_rows" },
      # A click's `clicked` row, the one row outside raw it takes from collect's messages.
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      # Checks collect's signature on each message and refuses unsigned ones.
      { role = "roles/secretmanager.secretAccessor", on = "secret:bus-key" },
    ]
    preferences = [
      # Reads the person's current state (one query per page) and streams their changes into the
      # two ledgers.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.consent" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.identities" },
      { role = "custom:stream_rows", on = "table:raw.consent" },
      { role = "custom:stream_rows", on = "table:raw.subscription" },
      # An unsubscribe through a message's link is an event of its delivery: reads that delivery's
      # ids (sql/messaging/link_delivery.sql) and streams the event.
      { role = "roles/bigquery.dataViewer", on = "table:audiences.deliveries" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:preference-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:ip-salt" },
    ]
    twilio_status = [
      # Checks each webhook's signature with the auth token.
      { role = "roles/secretmanager.secretAccessor", on = "secret:twilio-auth-token" },
      # Finds the delivery a report names (recipients.sql: the row and its recipient) or the sites
      # that messaged a number answering STOP; streams the event and the opt-out.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.deliveries" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.delivery_events" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.profiles" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.identities" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      { role = "custom:stream_rows", on = "table:raw.subscription" },
    ]
    nhn_status = [
      # Compares each webhook's X-Toast-Webhook-Signature with the configured value.
      { role = "roles/secretmanager.secretAccessor", on = "secret:alimtalk-webhook-signature" },
      # Finds the deliveries results name (recipients.sql: the row and its recipient) and streams
      # their events.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.deliveries" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.delivery_events" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.profiles" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.identities" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      # Moves a failed AlimTalk's claim (deliveries/{id}) to failed, records hooksIds (alimtalk_hooks)
      # and publishes the deliveries that fall back for deliver.
      { role = "roles/datastore.user", on = "project" },
      { role = "roles/pubsub.publisher", on = "topic:sends" },
    ]
    email_feedback = [
      # Checks the forwarder's token.
      { role = "roles/secretmanager.secretAccessor", on = "secret:email-feedback-token" },
      # Finds the delivery a report's Message-ID names (sql/messaging/complaint_delivery.sql, and
      # recipients.sql as twilio_status does), counts the site's complaints against its sends
      # (complaint_rate.sql), streams the `complained` and `unsubscribed` events and the opt-out.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.deliveries" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.delivery_events" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.profiles" },
      { role = "roles/bigquery.dataViewer", on = "table:refined.identities" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      { role = "custom:stream_rows", on = "table:raw.subscription" },
    ]
    load_dead_letters = [
      # Streams each dead letter into raw.bad_rows; table-level keeps it off the event tables.
      { role = "custom:stream_rows", on = "table:raw.bad_rows" },
    ]
    refine = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Reads the raw events, rewrites the refined tables (MERGE, delete/insert of partitions).
      { role = "roles/bigquery.dataViewer", on = "dataset:raw" },
      { role = "roles/bigquery.dataEditor", on = "dataset:refined" },
      # Records each run in Firestore `runs`. Firestore access is granted per project (one database).
      { role = "roles/datastore.user", on = "project" },
      # Drops the identifiers privacy erasures suppressed: reads privacy.suppressions, hashes with the salt.
      { role = "roles/bigquery.dataViewer", on = "dataset:privacy" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
    ]
    discover = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Reads refined.profiles; writes refined.clusters, cluster_staging, profiles.cluster_id and,
      # above the BigQuery ML threshold, the discovery_features table and discovery_kmeans model.
      { role = "roles/bigquery.dataEditor", on = "dataset:refined" },
      # Reads discoveries/config; writes discoveries/{run}, its status, the discovery segments and `runs`.
      { role = "roles/datastore.user", on = "project" },
    ]
    build_segments = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Reads refined.profiles, MERGEs audiences.segment_members and segment_member_history.
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      { role = "roles/bigquery.dataEditor", on = "dataset:audiences" },
      # Reads `segments`, writes their status, size and members' counts back; records `runs`.
      { role = "roles/datastore.user", on = "project" },
      # Asks publish_audiences to run the publications of the segments it built.
      { role = "roles/pubsub.publisher", on = "topic:jobs" },
    ]
    validate_config = [
      # The size estimate is a COUNT(*) query over refined.profiles.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      # Reads the segment, destination or publication (and those it names) and writes its status.
      { role = "roles/datastore.user", on = "project" },
      # Records each edit in the audit log (shared/services/audit.py).
      { role = "custom:stream_rows", on = "table:audit.config_changes" },
      # Checks that the token secret a destination names exists, from the version's metadata
      # (versions.get): the secrets publish_audiences reads, and never their values.
      { role = "roles/secretmanager.viewer", on = "secret:facebook-access-token" },
    ]
    privacy_requests = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Finds and deletes a person's rows: in the raw tables one by one (no dataset-wide role may
      # rewrite the system of record), in the derived datasets whole; adds to privacy.suppressions.
      { role = "roles/bigquery.dataEditor", on = "table:raw.page" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.land" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.user" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.conv" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.event" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.consent" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataEditor", on = "table:raw.bad_rows" },
      { role = "roles/bigquery.dataEditor", on = "dataset:refined" },
      { role = "roles/bigquery.dataEditor", on = "dataset:audiences" },
      { role = "roles/bigquery.dataEditor", on = "dataset:privacy" },
      # Records each request, by its id and hashes, in the audit log (shared/services/audit.py).
      { role = "custom:stream_rows", on = "table:audit.config_changes" },
      # Reads and answers privacy_requests, deletes documents naming the person, records `runs`.
      { role = "roles/datastore.user", on = "project" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
      # Writes each export request's files (privacy-exports/).
      { role = "roles/storage.objectUser", on = "bucket:files" },
    ]
    publish_audiences = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Reads members, profiles, identities, names (raw.user) and the consent ledgers; writes the
      # publication ledger, log and staging (audiences) and takes done erasures off privacy.audience_removals.
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.consent" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataEditor", on = "dataset:audiences" },
      { role = "roles/bigquery.dataEditor", on = "dataset:privacy" },
      # Reads publications, destinations and segments; writes publications' status and `runs`.
      { role = "roles/datastore.user", on = "project" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:facebook-access-token" },
      # Dry runs' request bodies (outbox/) and file exports (exports/).
      { role = "roles/storage.objectUser", on = "bucket:files" },
    ]
    send_messages = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # The plan: members, identities, profiles and names, the consent ledgers and suppressions
      # (the gate), the cap's counts; loads the run's rows into audiences.deliveries and streams
      # released and expired holds' events.
      { role = "roles/bigquery.dataViewer", on = "table:audiences.segment_members" },
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.consent" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataViewer", on = "table:privacy.suppressions" },
      # Event-triggered campaigns: the trigger's events (raw.event, raw.conv) since the last tick.
      { role = "roles/bigquery.dataViewer", on = "table:raw.event" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.conv" },
      { role = "roles/bigquery.dataEditor", on = "table:audiences.deliveries" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.delivery_events" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      # Reads campaigns, templates, messaging/policy and segments; writes campaigns' status, the
      # batches published (send_batches) and `runs`.
      { role = "roles/datastore.user", on = "project" },
      { role = "roles/pubsub.publisher", on = "topic:sends" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:preference-key" },
      # The tick polls NHN for AlimTalk results and for Korean SMS/LMS results.
      { role = "roles/secretmanager.secretAccessor", on = "secret:alimtalk-api-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:nhn-sms-secret-key" },
      # Dry runs' previews (outbox/).
      { role = "roles/storage.objectUser", on = "bucket:files" },
    ]
    deliver = [
      { role = "roles/bigquery.jobUser", on = "project" },
      # Decides each delivery again (the gate's tables, the cap's counts, the recipient's profile)
      # and streams its events, fallback rows and provider opt-outs.
      { role = "roles/bigquery.dataViewer", on = "table:audiences.segment_members" },
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.user" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.consent" },
      { role = "roles/bigquery.dataViewer", on = "table:raw.subscription" },
      { role = "roles/bigquery.dataViewer", on = "table:privacy.suppressions" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.deliveries" },
      { role = "roles/bigquery.dataViewer", on = "table:audiences.delivery_events" },
      { role = "custom:stream_rows", on = "table:audiences.deliveries" },
      { role = "custom:stream_rows", on = "table:audiences.delivery_events" },
      { role = "custom:stream_rows", on = "table:raw.subscription" },
      # Claims each delivery (deliveries/{id}), marks batches done, reads the campaign documents.
      { role = "roles/datastore.user", on = "project" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:preference-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:click-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:smtp-password" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:dkim-private-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:twilio-auth-token" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:nhn-sms-secret-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:alimtalk-api-key" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:vapid-private-key" },
    ]
    build_report = [
      # Reads only: the raw tables (the window's partitions: requests, events, bad rows), the refined
      # and audiences datasets (profiles, RFM, clusters, segments, publications, deliveries) and the
      # suppressions the consent gate checks; writes nothing in BigQuery.
      { role = "roles/bigquery.jobUser", on = "project" },
      { role = "roles/bigquery.dataViewer", on = "dataset:raw" },
      { role = "roles/bigquery.dataViewer", on = "dataset:refined" },
      { role = "roles/bigquery.dataViewer", on = "dataset:audiences" },
      { role = "roles/bigquery.dataViewer", on = "table:privacy.suppressions" },
      { role = "roles/secretmanager.secretAccessor", on = "secret:privacy-salt" },
      # Reads names, discovery results and `runs`; writes reports/latest and its own run.
      { role = "roles/datastore.user", on = "project" },
      # Writes the page (reports/).
      { role = "roles/storage.objectUser", on = "bucket:files" },
    ]
    sync_schedules = [
      # Reads `segments` and `publications`, writes their status.schedule and `runs`.
      { role = "roles/datastore.user", on = "project" },
      # Creates, updates and deletes the <prefix>-seg-* and <prefix>-pub-* Cloud Scheduler jobs (see
      # custom_roles).
      { role = "custom:schedule_jobs", on = "project" },
    ]
  }

  # Project custom roles, keyed by the name function_roles uses after "custom:"; deployed as
  # projects/<project>/roles/<prefix>_<key>.
  custom_roles = {
    # Cloud Scheduler jobs have no IAM policy of their own, so job management can only be granted
    # project-wide. roles/cloudscheduler.admin would add pause, resume, force-run and enable of every
    # job (the fixed ones included); this role keeps to what the sync does.
    # It cannot be narrowed to the sync's own jobs with an IAM condition: Cloud Scheduler
    # (cloudscheduler.googleapis.com) is not among the services that recognise resource attributes
    # in conditions (https://cloud.google.com/iam/docs/conditions-resource-attributes: "Other
    # services and resource types do not recognize resource attributes"), and a condition on the
    # job's name would not limit the job's target anyway. Any holder of jobs.create may create a job
    # that publishes to any topic of the project
    # (https://cloud.google.com/scheduler/docs/access-control), `beacons` included: the adapter
    # refuses every topic but `jobs` (shared/adapters/cloud_scheduler.py), the sync touches only jobs
    # named <prefix>-seg-* and <prefix>-pub-*, and the loader refuses every beacons message not
    # signed with `bus-key`, which only collect and the loader may read (secrets.tf).
    schedule_jobs = {
      title       = "CDP segment schedule sync"
      description = "List, read, create, update and delete Cloud Scheduler jobs: what sync_schedules needs to keep the per-segment and per-publication jobs in step with Firestore."
      permissions = [
        "cloudscheduler.jobs.create",
        "cloudscheduler.jobs.delete",
        "cloudscheduler.jobs.get",
        "cloudscheduler.jobs.list",
        "cloudscheduler.jobs.update",
      ]
    }
    # Streaming inserts, granted on single tables. tabledata.insertAll requires
    # bigquery.tables.updateData and bigquery.tables.get on the table and bigquery.datasets.get
    # (https://cloud.google.com/bigquery/docs/streaming-data-into-bigquery, "Required permissions").
    # roles/bigquery.dataEditor would add reading every row, changing the schema and deleting the
    # table (bigquery.tables.getData, update, delete): the raw tables are the system of record.
    stream_rows = {
      title       = "CDP stream rows"
      description = "Stream rows into a BigQuery table (tabledata.insertAll), nothing more: no read of its rows, no schema change, no delete."
      permissions = [
        "bigquery.datasets.get",
        "bigquery.tables.get",
        "bigquery.tables.updateData",
      ]
    }
  }

  # Buckets functions write to, by the key `on = "bucket:<key>"` uses.
  buckets = {
    files = google_storage_bucket.files.name
  }

  function_grants = merge([
    for fn, grants in local.function_roles : {
      for g in grants : "${fn} ${g.role} ${g.on}" => {
        function = fn
        role     = g.role
        kind     = split(":", g.on)[0]
        target   = try(split(":", g.on)[1], null)
      }
    }
  ]...)
}

# --- One runtime identity per function -------------------------------------------------------------
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = local.function_names[each.key]
  display_name = "CDP function ${each.key}"
  description  = "Runtime identity of ${each.key}; roles listed in infra/iam.tf local.function_roles."

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "topic" }

  topic  = google_pubsub_topic.topic[each.value.target].name
  role   = each.value.role
  member = google_service_account.function[each.value.function].member
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "secret" }

  secret_id = google_secret_manager_secret.secret[each.value.target].id
  role      = each.value.role
  member    = google_service_account.function[each.value.function].member
}

resource "google_bigquery_dataset_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "dataset" }

  dataset_id = google_bigquery_dataset.dataset[each.value.target].dataset_id
  role       = each.value.role
  member     = google_service_account.function[each.value.function].member
}

resource "google_bigquery_table_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "table" }

  dataset_id = google_bigquery_table.table[each.value.target].dataset_id
  table_id   = google_bigquery_table.table[each.value.target].table_id
  # A project custom role applies on the project's tables too, named in full.
  role   = startswith(each.value.role, "custom:") ? google_project_iam_custom_role.custom[trimprefix(each.value.role, "custom:")].name : each.value.role
  member = google_service_account.function[each.value.function].member
}

# objectUser, not objectCreator: a rerun replaces an object of the same name, which needs delete.
resource "google_storage_bucket_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "bucket" }

  bucket = local.buckets[each.value.target]
  role   = each.value.role
  member = google_service_account.function[each.value.function].member
}

resource "google_project_iam_member" "function" {
  for_each = { for k, g in local.function_grants : k => g if g.kind == "project" }

  project = var.project_id
  role    = startswith(each.value.role, "custom:") ? google_project_iam_custom_role.custom[trimprefix(each.value.role, "custom:")].name : each.value.role
  member  = google_service_account.function[each.value.function].member
}

resource "google_project_iam_custom_role" "custom" {
  for_each = local.custom_roles

  role_id     = "${var.prefix}_${each.key}"
  title       = each.value.title
  description = each.value.description
  permissions = each.value.permissions
  stage       = "GA"

  depends_on = [google_project_service.enabled]
}

# --- The identities event deliveries present --------------------------------------------------------
# Pub/Sub push (OIDC token) invokes the Pub/Sub-fed functions as this account. Its only permission is
# run.invoker on those functions (modules/function), so a leaked token can call nothing else, and it
# is distinct from the functions' own identities.
resource "google_service_account" "invoker" {
  account_id   = "${var.prefix}-invoker"
  display_name = "CDP event invoker"
  description  = "Identity of the Pub/Sub push subscriptions; holds run.invoker on the Pub/Sub-fed functions only."

  depends_on = [google_project_service.enabled]
}

# Eventarc runs each Firestore trigger as that function's own account, <prefix>-<function>-trg. It
# holds run.invoker on that function alone (modules/function) and eventarc.eventReceiver, which
# Eventarc requires of a trigger identity and which exists only at project level: it lets the
# account receive events, nothing more.
locals {
  firestore_fed = toset([for name, f in local.functions : name if f.trigger.type == "firestore"])
}

resource "google_service_account" "trigger" {
  for_each = local.firestore_fed

  account_id   = "${local.function_names[each.key]}-trg"
  display_name = "CDP ${each.key} trigger"
  description  = "Identity Eventarc delivers ${each.key}'s Firestore events as; run.invoker on that function only."

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "trigger_event_receiver" {
  for_each = local.firestore_fed

  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.trigger[each.key].member
}

# --- The identity builds run as --------------------------------------------------------------------
# Without it, Cloud Build would use the Compute Engine default account. This one may only write
# build logs, read the source, and push images to our repository.
resource "google_service_account" "build" {
  account_id   = "${var.prefix}-build"
  display_name = "CDP function builds"
  description  = "Cloud Build identity for building the functions from the source zip."

  depends_on = [google_project_service.enabled]
}

resource "google_project_iam_member" "build" {
  for_each = toset(["roles/logging.logWriter"])

  project = var.project_id
  role    = each.value
  member  = google_service_account.build.member
}

# Cloud Functions copies the zip into its own gcf-v2-sources-* bucket before the build reads it, so
# read access is granted on that bucket family and ours, not project-wide.
resource "google_project_iam_member" "build_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.build.member

  condition {
    title       = "function-sources-only"
    description = "Objects of the function source buckets only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\") || resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}\")"
  }
}

resource "google_artifact_registry_repository_iam_member" "build" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.build.member
}
