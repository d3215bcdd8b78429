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
  #   firestore an Eventarc Firestore document trigger: trigger.event_type, trigger.document (a path
  #             pattern), trigger.database and trigger.region (the database's location);
  #             trigger.retry (default false); trigger.more_documents, more patterns by a short
  #             name (each one more Eventarc trigger). Invoked as its own <name>-trg account (iam.tf).
  # Omitted settings take the defaults of modules/function/variables.tf. No resource may be referenced
  # here: project.tf derives the APIs to enable from this map, and every resource depends on them.
  functions = {
    collect = {
      description = "Public beacon endpoint: serves /tracker.js and the web push worker /sw.js and accepts event batches, published to Pub/Sub."
      trigger     = { type = "http", public = true }
      env = {
        CDP_SITES              = jsonencode(var.sites)
        CDP_REGION_HEADER      = var.region_header
        CDP_TRUSTED_PROXY_HOPS = tostring(var.trusted_proxy_hops)
        # functions-framework serves with cores x 4 gunicorn threads unless told: as many threads as
        # the instance takes concurrent requests, or requests queue behind a publish acknowledgement.
        THREADS = "80"
      }
      # CDP_BUS_KEY signs each bus message, which the loader checks (shared/signing.py); CDP_CLICK_KEY
      # checks the click links of messages before GET /c redirects (shared/messaging/clicks.py).
      secrets = { CDP_IP_SALT = "ip-salt", CDP_BUS_KEY = "bus-key", CDP_CLICK_KEY = "click-key" }
      # A beacon request is short and I/O bound: one instance serves many at once, and scaling to
      # zero keeps an idle site free. max bounds the cost of a flood.
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 80
      min_instances = 0
      max_instances = 50
      timeout       = 30
    }

    preferences = {
      description = "Preference centre: the page a sealed link from any message opens (channels, consents) and the RFC 8058 one-click unsubscribe."
      trigger     = { type = "http", public = true }
      env = {
        CDP_TRUSTED_PROXY_HOPS = tostring(var.trusted_proxy_hops)
      }
      # Opens the links; hashes the client address kept as proof of each change.
      secrets       = { CDP_PREFERENCE_KEY = "preference-key", CDP_IP_SALT = "ip-salt" }
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 20
      min_instances = 0
      max_instances = 10
      timeout       = 30
    }

    twilio_status = {
      description = "Twilio's SMS StatusCallback and incoming-message webhook: checks X-Twilio-Signature against its public URL and turns each report into delivery events and opt-out signals (STOP, error 21610)."
      trigger     = { type = "http", public = true }
      # Signatures cover the URL Twilio called, which behind Cloud Run is not the one the function
      # sees: the public URL is configured (local.twilio_status_url) and checked against.
      env = { CDP_TWILIO_STATUS_URL = local.twilio_status_url }
      # The auth token is read through the Secret Manager API (cached 5 min), not bound: a deployment
      # that sends no SMS must start without a version of the secret.
      reads_secrets = ["twilio-auth-token"]
      # One short request per status change of each message: many at once, little work each.
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 40
      min_instances = 0
      max_instances = 10
      timeout       = 30
    }

    nhn_status = {
      description = "NHN Cloud's KakaoTalk Bizmessage webhook: checks X-Toast-Webhook-Signature, records AlimTalk delivery results as delivery events and publishes the deliveries that must fall back (3018, 3019, 3020) on `sends` again; deduplicated on hooksId."
      trigger     = { type = "http", public = true }
      # The signature NHN sends (a static value set in its console) is read through the Secret
      # Manager API (cached 5 min), not bound: a deployment without AlimTalk starts without it.
      reads_secrets = ["alimtalk-webhook-signature"]
      # One request per batch of results (up to 1,000 hooks): little work each, several at once.
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 20
      min_instances = 0
      max_instances = 10
      timeout       = 60
    }

    email_feedback = {
      description = "E-mail complaints from mailbox providers' feedback loops (ARF reports, forwarded by the relay's inbound-mail webhook): checks the token, records each complaint as a `complained` event and unsubscribes the address on its site; logs the site's complaint rate when it reaches 0.1 %."
      trigger     = { type = "http", public = true }
      # The token the forwarder sends (HTTP Basic password or Bearer) is read through the Secret
      # Manager API (cached 5 min), not bound: a deployment without e-mail starts without it.
      reads_secrets = ["email-feedback-token"]
      # One report per request, a few an hour: little work each.
      memory        = "512Mi"
      cpu           = "1"
      concurrency   = 20
      min_instances = 0
      max_instances = 5
      timeout       = 60
    }

    load_events = {
      description = "Loads beacon batches from Pub/Sub into the raw tables; bad rows to raw.bad_rows."
      trigger     = { type = "pubsub", topic = "beacons" }
      # Refuses a message without collect's signature under this key (stored as a bad row).
      secrets     = { CDP_BUS_KEY = "bus-key" }
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

    # --- Scheduled jobs: messages on `jobs` (scheduler.tf), one filter per job --------------------
    refine = {
      description = "Refines raw events into sessions, identities, profiles and RFM for a range of event dates (jobs message {\"job\": \"refine\"})."
      trigger     = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"refine\"" }
      # Drops identifiers an erasure suppressed (privacy.suppressions, hashed with this salt).
      secrets = { CDP_PRIVACY_SALT = "privacy-salt" }
      # One run at a time: runs rewrite the same partitions and the identity graph, so they must not
      # overlap. A message pushed while a run is busy is answered 429 and retried with backoff.
      # The work runs in BigQuery; the function waits for it, up to the 600 s push ack deadline.
      memory        = "1Gi"
      cpu           = "1"
      concurrency   = 1
      max_instances = 1
      timeout       = 540
    }

    discover = {
      description = "Finds K-Means discovery segments over the profiles and explains them (jobs message {\"job\": \"discover\"})."
      trigger     = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"discover\"" }
      # Up to bigquery_ml_threshold customers are clustered in process (1M profiles with 20
      # features peak under 2 GB); above it the work runs in BigQuery ML and the function waits.
      memory        = "4Gi"
      cpu           = "2"
      concurrency   = 1
      max_instances = 1 # one run at a time: runs replace refined.clusters and the cluster segments
      timeout       = 540
    }

    build_segments = {
      description = "Builds every due segment (or the segment_id(s) a message names) into the audiences tables (jobs message {\"job\": \"build_segments\"})."
      # Also fed by the per-segment jobs sync_schedules manages: same topic, same attribute.
      trigger       = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"build_segments\"" }
      memory        = "512Mi"
      concurrency   = 1
      max_instances = 1 # builds MERGE into the same audiences tables: one at a time
      timeout       = 540
    }

    publish_audiences = {
      description = "Keeps each publication's audience on its ad platform equal to its segment's consented members: adds, removes, replace sessions (jobs message {\"job\": \"publish_audiences\"})."
      # Fed by each publication's schedule (sync_schedules) and by build_segments after a build.
      trigger = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"publish_audiences\"" }
      env = {
        CDP_JOBS_TOPIC     = "jobs"
        CDP_PUBLISH_BUCKET = local.files_bucket # outbox/ and exports/ (storage.tf)
      }
      # The consent gate matches suppressed identifiers with the salt of their hashes.
      secrets = { CDP_PRIVACY_SALT = "privacy-salt" }
      # Access tokens a destination may name (access_token_secret), read at each run through the
      # Secret Manager API rather than bound at deploy: a rotated token needs no redeploy. Another
      # ad account's token is one more secret in secrets.tf, here, and a secretAccessor row (iam.tf).
      reads_secrets = ["facebook-access-token"]
      memory        = "1Gi"
      cpu           = "1"
      # One run at a time: two runs of one publication would both send the same delta. Throttling
      # waits (up to 15 min in all) happen inside the run, so the timeout is the maximum.
      concurrency   = 1
      max_instances = 1
      timeout       = 540
    }

    send_messages = {
      description = "Plans each campaign run (audience, consent gate, caps, policy) into audiences.deliveries and fans its sends out on `sends`; the five-minute tick releases due holds and starts one-off campaigns (jobs message {\"job\": \"send_messages\"})."
      # Fed by each campaign's schedule (sync_schedules' <prefix>-cmp-* jobs) and the fixed tick.
      trigger = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"send_messages\"" }
      env     = local.messaging_env # the senders' settings (only previews here) and the outbox bucket
      # The gate matches suppressed identifiers with the salt; previews carry sealed preference links.
      secrets = { CDP_PRIVACY_SALT = "privacy-salt", CDP_PREFERENCE_KEY = "preference-key" }
      # The tick asks NHN for AlimTalk results no webhook brought and for the delivery results of
      # Korean SMS/LMS (read at run time, not bound: a deployment without them starts without them).
      reads_secrets = ["alimtalk-api-key", "nhn-sms-secret-key"]
      # One run at a time: a run's rows are written once (a second plan of the same run could add a
      # copy, which readers collapse, but costs a query). The planning runs in BigQuery.
      memory        = "1Gi"
      cpu           = "1"
      concurrency   = 1
      max_instances = 1
      timeout       = 540
    }

    deliver = {
      description = "Sends one batch of planned deliveries by e-mail (SMTP), SMS (NHN Cloud for Korean numbers, Twilio for others), Kakao AlimTalk (NHN Cloud, up to 1,000 a request) or web push (VAPID), each claimed in Firestore before the provider call so nothing is sent twice, falling back along the campaign's chain (push from `sends`)."
      trigger     = { type = "pubsub", topic = "sends" }
      env         = local.messaging_env
      # Seals preference links and signs click links into each message.
      secrets = { CDP_PRIVACY_SALT = "privacy-salt", CDP_PREFERENCE_KEY = "preference-key", CDP_CLICK_KEY = "click-key" }
      # Read at send time through the Secret Manager API (cached), not bound: a deployment without
      # one of the channels starts without its secret, and a rotated password needs no redeploy.
      reads_secrets = ["smtp-password", "dkim-private-key", "twilio-auth-token", "nhn-sms-secret-key", "alimtalk-api-key", "vapid-private-key"]
      # Batches of 500 paced by messaging/policy throttles per provider, shared by the threads of an
      # instance: instances x throttle must stay within the provider's limit (docs/campaigns.md).
      memory        = "1Gi"
      cpu           = "1"
      concurrency   = 4
      min_instances = 0
      max_instances = 5
      timeout       = 540
    }

    privacy_requests = {
      description = "Erases or exports the people the pending Firestore privacy_requests name, in batches, and writes each receipt back (jobs message {\"job\": \"privacy_requests\"})."
      trigger     = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"privacy_requests\"" }
      env         = { CDP_PRIVACY_EXPORT_BUCKET = local.files_bucket } # privacy-exports/ (storage.tf)
      # Suppresses erased identifiers as salted hashes (privacy.suppressions).
      secrets = { CDP_PRIVACY_SALT = "privacy-salt" }
      # One run at a time: two runs would take the same pending requests. The statements run in
      # BigQuery (one per table per batch of 100); the function waits for them.
      memory        = "1Gi"
      cpu           = "1"
      concurrency   = 1
      max_instances = 1
      timeout       = 540
    }

    build_report = {
      description = "Builds the report page (funnel, freshness, segments, RFM, clusters, campaigns, publications, consent coverage) into the files bucket's reports/ and points Firestore reports/latest at it (jobs message {\"job\": \"build_report\"})."
      trigger     = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"build_report\"" }
      env         = { CDP_REPORT_BUCKET = local.files_bucket } # reports/ (storage.tf)
      # Consent coverage asks the gate, which matches suppressed identifiers with the salt.
      secrets = { CDP_PRIVACY_SALT = "privacy-salt" }
      # Read-only statements in BigQuery; the page is built in memory (a few hundred KB). One run at a time.
      memory        = "1Gi"
      cpu           = "1"
      concurrency   = 1
      max_instances = 1
      timeout       = 540
    }

    sync_schedules = {
      description = "Makes the Cloud Scheduler jobs <prefix>-seg-*, <prefix>-pub-* and <prefix>-cmp-* match the schedules of the Firestore segments, publications and campaigns (jobs message {\"job\": \"sync_schedules\"})."
      trigger     = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"sync_schedules\"" }
      # shared/config.py ScheduleSettings.from_env.
      env = {
        CDP_SCHEDULER_LOCATION              = var.region # where scheduler.tf puts the fixed jobs too
        CDP_SCHEDULE_JOB_PREFIX             = local.schedule_job_prefix
        CDP_SCHEDULE_PUBLICATION_JOB_PREFIX = local.publication_job_prefix
        CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX    = local.campaign_job_prefix
        CDP_SCHEDULE_TIME_ZONE              = var.time_zone
        CDP_JOBS_TOPIC                      = "jobs" # google_pubsub_topic.topic["jobs"], named by its key
      }
      memory        = "512Mi"
      concurrency   = 1
      max_instances = 1 # two syncs at once would race on the same jobs
      timeout       = 120
    }

    # --- Firestore document events -----------------------------------------------------------------
    validate_config = {
      description = "Validates a segment, destination or publication the moment it is written and puts the verdict (errors by field, or what it will do) on its status."
      trigger = {
        type       = "firestore"
        event_type = "google.cloud.firestore.document.v1.written"
        database   = "(default)" # google_firestore_database.main
        document   = "segments/{id}"
        # Publishing's configuration (shared/services/publication_config.py).
        # Campaigns' configuration (shared/services/messaging_config.py): only messaging/policy of
        # messaging/{id} is checked.
        more_documents = {
          destinations = "destinations/{id}"
          publications = "publications/{id}"
          campaigns    = "campaigns/{id}"
          templates    = "message_templates/{id}"
          messaging    = "messaging/{id}"
        }
        region = local.firestore_location
        # A validation that fails would fail again on the same document: retrying would only loop.
        # The next edit of the document validates it anew.
        retry = false
      }
      memory        = "512Mi"
      concurrency   = 1
      max_instances = 5
      timeout       = 120
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

  # The URL Twilio's webhooks are signed for (CDP_TWILIO_STATUS_URL): the twilio_status function's
  # cloudfunctions.net address unless a custom domain or load balancer fronts it. Built from
  # variables only, so the sender (its StatusCallback) and the webhook agree without a reference.
  twilio_status_url = (
    var.twilio_status_url != "" ? var.twilio_status_url :
    "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.prefix}-twilio-status"
  )

  # The preference centre every message links to (CDP_PREFERENCE_URL), like twilio_status_url.
  preferences_url = (
    var.preferences_url != "" ? var.preferences_url :
    "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.prefix}-preferences/"
  )

  # collect's public URL: click links in messages point to its GET /c (CDP_CLICK_URL).
  collect_url = (
    var.collect_url != "" ? var.collect_url :
    "https://${var.region}-${var.project_id}.cloudfunctions.net/${var.prefix}-collect"
  )

  # The senders (shared/config.py ChannelSettings) for send_messages and deliver. An unset value is
  # "", which the settings read as unset (docs/channels.md); the outbox bucket holds dry runs' previews.
  messaging_env = {
    CDP_PREFERENCE_URL               = local.preferences_url
    CDP_TWILIO_STATUS_URL            = local.twilio_status_url
    CDP_CLICK_URL                    = local.collect_url
    CDP_MESSAGING_DRY_RUN            = tostring(var.messaging.dry_run)
    CDP_PUBLISH_BUCKET               = local.files_bucket
    CDP_EMAIL_FROM                   = var.messaging.email_from
    CDP_EMAIL_REPLY_TO               = var.messaging.email_reply_to
    CDP_SMTP_HOST                    = var.messaging.smtp_host
    CDP_SMTP_PORT                    = tostring(var.messaging.smtp_port)
    CDP_SMTP_SECURITY                = var.messaging.smtp_security
    CDP_SMTP_USERNAME                = var.messaging.smtp_username
    CDP_DKIM_DOMAIN                  = var.messaging.dkim_domain
    CDP_DKIM_SELECTOR                = var.messaging.dkim_selector
    CDP_TWILIO_ACCOUNT_SID           = var.messaging.twilio_account_sid
    CDP_TWILIO_MESSAGING_SERVICE_SID = var.messaging.twilio_messaging_service_sid
    CDP_NHN_SMS_APP_KEY              = var.messaging.nhn_sms_app_key
    CDP_NHN_SMS_SENDER_NUMBER        = var.messaging.nhn_sms_sender_number
    CDP_NHN_ALIMTALK_APP_KEY         = var.messaging.nhn_alimtalk_app_key
    CDP_NHN_ALIMTALK_SENDER_KEY      = var.messaging.nhn_alimtalk_sender_key
    CDP_VAPID_PUBLIC_KEY             = var.messaging.vapid_public_key
    CDP_VAPID_SUBJECT                = var.messaging.vapid_subject
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
  # Event-fed functions are invoked only by their delivery identity: Pub/Sub pushes present the
  # invoker account's OIDC token (pubsub.tf); Eventarc runs each Firestore trigger as that
  # function's own trigger account (iam.tf).
  invokers = (
    each.value.trigger.type == "pubsub" ? { events = google_service_account.invoker.member } :
    each.value.trigger.type == "firestore" ? { events = google_service_account.trigger[each.key].member } : {}
  )
  trigger_service_account = each.value.trigger.type == "firestore" ? google_service_account.trigger[each.key].email : null

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
    # Eventarc checks its trigger identity when the trigger is created.
    google_project_iam_member.trigger_event_receiver,
    # A Firestore trigger needs its database.
    google_firestore_database.main,
    # The build needs its own grants in place before the first deployment.
    google_project_iam_member.build,
    google_project_iam_member.build_source_reader,
    google_artifact_registry_repository_iam_member.build,
  ]
}
