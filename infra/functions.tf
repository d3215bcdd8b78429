locals {
  # One entry per export of main.py; the key is the entry point, the functions/<key>/ folder and
  # the deployed name's stem (tests/infra checks the keys against main.py). Adding a function is
  # one entry here plus its row in local.function_roles (iam.tf).
  #
  # trigger.type:
  #   http      served at its URL; public = true lets anyone call it (allUsers run.invoker),
  #             otherwise callers need run.invoker.
  #   pubsub    fed by our own push subscription on trigger.topic (pubsub.tf), with retry and
  #             dead-letter policy; optional trigger.filter selects messages (one job of `jobs`);
  #             dead_letter = false for a consumer of a dead-letter topic (nowhere further to go).
  #   firestore an Eventarc Firestore document trigger: trigger.event_type and trigger.document.
  # Omitted settings take the defaults of modules/function/variables.tf.
  functions = {
    collect = {
      description = "Public beacon endpoint: serves /tracker.js and accepts event batches, published to Pub/Sub."
      trigger     = { type = "http", public = true }
      env = {
        CDP_SITES         = jsonencode(var.sites)
        CDP_REGION_HEADER = var.region_header
      }
      secrets = { CDP_IP_SALT = "ip-salt" }
      # A beacon request is short and I/O bound: one instance serves many at once, and scaling to
      # zero keeps an idle site free. max bounds the cost of a flood.
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 80
      min_instances = 0
      max_instances = 50
      timeout       = 30
    }

    load_events = {
      description = "Loads beacon batches from Pub/Sub into the raw tables; bad rows to raw.bad_rows."
      trigger     = { type = "pubsub", topic = "beacons" }
      memory      = "512Mi"
      cpu         = "1"
      concurrency = 4
      # Bounded so a backlog drains at a pace BigQuery streaming quotas absorb.
      min_instances = 0
      max_instances = 20
      timeout       = 120
    }

    load_dead_letters = {
      description = "Stores each message the loader's subscription gave up on in raw.bad_rows, whole, for replay."
      # Its own failures are retried for the subscription's whole retention (7 days); the
      # beacons-dead-letter-inspect subscription keeps a second copy either way.
      trigger       = { type = "pubsub", topic = "beacons-dead-letter", dead_letter = false }
      max_instances = 5
      timeout       = 60
    }
  }

  # Settings every function reads (shared/config.py). Secrets never go here: see secrets.tf.
  common_env = {
    CDP_PROJECT               = var.project_id
    CDP_WAREHOUSE             = "bigquery"
    CDP_DATASET_PREFIX        = local.dataset_prefix
    CDP_BIGQUERY_LOCATION     = var.bigquery_location
    CDP_BEACON_TOPIC          = google_pubsub_topic.topic["beacons"].name
    CDP_MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts)
  }

  # functions/collect -> cdp-collect: Cloud Run service names allow no underscores.
  function_names = { for key in keys(local.functions) : key => "${var.prefix}-${replace(key, "_", "-")}" }
}

module "function" {
  source   = "./modules/function"
  for_each = local.functions

  project_id  = var.project_id
  region      = var.region
  name        = local.function_names[each.key]
  entry_point = each.key
  description = each.value.description

  source_bucket         = google_storage_bucket.source.name
  source_object         = google_storage_bucket_object.source.name
  docker_repository     = google_artifact_registry_repository.functions.id
  build_service_account = google_service_account.build.id

  service_account_email = google_service_account.function[each.key].email
  environment           = merge(local.common_env, try(each.value.env, {}))
  secrets = {
    for env_name, secret in try(each.value.secrets, {}) : env_name => {
      secret  = google_secret_manager_secret.secret[secret].secret_id
      version = local.secret_versions[secret]
    }
  }

  trigger = each.value.trigger
  # Event-fed functions are invoked only by the invoker identity: Pub/Sub push presents its OIDC
  # token (pubsub.tf) and Eventarc runs the Firestore triggers as it.
  invokers                = contains(["pubsub", "firestore"], each.value.trigger.type) ? { events = google_service_account.invoker.member } : {}
  trigger_service_account = each.value.trigger.type == "firestore" ? google_service_account.invoker.email : null

  # Unset sizes take the module's defaults.
  memory          = try(each.value.memory, null)
  cpu             = try(each.value.cpu, null)
  concurrency     = try(each.value.concurrency, null)
  min_instances   = try(each.value.min_instances, null)
  max_instances   = try(each.value.max_instances, null)
  timeout_seconds = try(each.value.timeout, null)

  depends_on = [
    google_project_service.enabled,
    # A function must not start before it may use what it uses, or its first requests fail.
    google_pubsub_topic_iam_member.function,
    google_secret_manager_secret_iam_member.function,
    google_bigquery_dataset_iam_member.function,
    google_bigquery_table_iam_member.function,
    google_project_iam_member.function,
    # The build needs its own grants in place before the first deployment.
    google_project_iam_member.build,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build,
  ]
}
