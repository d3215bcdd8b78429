locals {
  # Topic names are the code's defaults (shared/config.py: CDP_BEACON_TOPIC = "beacons"); each
  # source topic has a dead-letter topic named <topic>-dead-letter.
  source_topics = {
    beacons = "Event batches published by collect; consumed by load_events."
    jobs    = "Scheduled job requests from Cloud Scheduler: a JSON message naming the job, also in attribute `job`."
    sends   = "Batches of planned deliveries published by send_messages (a campaign run, up to 500 delivery ids each); consumed by deliver."
  }
  topics = merge(local.source_topics, {
    for name, _ in local.source_topics : "${name}-dead-letter" => "Messages of ${name} that failed ${var.max_delivery_attempts} deliveries; kept for inspection and replay."
  })

  # One push subscription per Pub/Sub-fed function. We declare it ourselves instead of giving the
  # function an event_trigger: the subscription Eventarc creates for a trigger is managed by
  # Eventarc, and Terraform cannot give it a dead-letter policy (docs/deploy.md, "Design decisions").
  push_subscriptions = {
    for name, f in local.functions : name => f.trigger if f.trigger.type == "pubsub"
  }

  # Push waits for the function's answer up to the ack deadline (at most 600 s); matching it to the
  # function timeout avoids redelivering a message that is still being processed.
  ack_deadlines = {
    for name, _ in local.push_subscriptions : name => min(600, max(10, coalesce(try(local.functions[name].timeout, null), 60)))
  }

  subscription_retention = "604800s" # 7 days, the Pub/Sub maximum for a subscription
}

resource "google_pubsub_topic" "topic" {
  for_each = local.topics

  name = each.key
  # Keeps a day of published messages on the topic itself, so a new or reset subscription can seek
  # back and replay beacons a buggy loader acknowledged.
  message_retention_duration = "86400s"

  # checkov:skip=CKV_GCP_83: Google-managed encryption at rest; CMEK would add a KMS key and its rotation to operate with no requirement asking for it.

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  name   = "${local.function_names[each.key]}-push"
  topic  = google_pubsub_topic.topic[each.value.topic].id
  filter = try(each.value.filter, null)

  ack_deadline_seconds = local.ack_deadlines[each.key]
  # Unacknowledged messages survive a week of outage or a broken release.
  message_retention_duration = local.subscription_retention
  # Never expire for inactivity: a quiet week must not delete the loader's subscription.
  expiration_policy {
    ttl = ""
  }

  push_config {
    push_endpoint = module.function[each.key].url
    # Pub/Sub signs each push with an ID token for the invoker identity; Cloud Run checks it and
    # that identity's run.invoker on this function alone.
    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = module.function[each.key].url
    }
  }

  # Failed pushes are retried with exponential backoff instead of immediately.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # After max_delivery_attempts the message moves to <topic>-dead-letter instead of being retried
  # for the whole retention period; the loader reads the attempt count to write bad rows on the
  # last attempt (CDP_MAX_DELIVERY_ATTEMPTS is the same number).
  dynamic "dead_letter_policy" {
    for_each = try(each.value.dead_letter, true) ? [each.value.topic] : []
    content {
      dead_letter_topic     = google_pubsub_topic.topic["${dead_letter_policy.value}-dead-letter"].id
      max_delivery_attempts = var.max_delivery_attempts
    }
  }

  depends_on = [
    # Pushes start as soon as the subscription exists; without these grants they fail.
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter,
    google_service_account_iam_member.pubsub_agent_token,
  ]
}

# Dead letters wait here for an operator: see docs/deploy.md, "Dead letters: inspect and replay".
resource "google_pubsub_subscription" "dead_letter" {
  for_each = local.source_topics

  name  = "${each.key}-dead-letter-inspect"
  topic = google_pubsub_topic.topic["${each.key}-dead-letter"].id

  ack_deadline_seconds       = 60
  message_retention_duration = local.subscription_retention
  # Acknowledged dead letters stay seekable for the retention period, so a replay that went wrong
  # can be repeated.
  retain_acked_messages = true

  expiration_policy {
    ttl = ""
  }
}

# --- The Pub/Sub service agent -------------------------------------------------------------------
# Dead-lettering and authenticated push are done by Google's Pub/Sub service agent, which needs
# three narrow grants. Creating the identity explicitly makes it exist before the grants.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  service  = "pubsub.googleapis.com"

  depends_on = [google_project_service.enabled]
}

# Forward undeliverable messages to the dead-letter topics.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter" {
  for_each = local.source_topics

  topic  = google_pubsub_topic.topic["${each.key}-dead-letter"].name
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}

# Acknowledge, on the source subscription, the messages it forwarded.
resource "google_pubsub_subscription_iam_member" "pubsub_agent_source" {
  for_each = { for name, t in local.push_subscriptions : name => t if try(t.dead_letter, true) }

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}

# Mint the OIDC tokens pushes carry, for the invoker identity only.
resource "google_service_account_iam_member" "pubsub_agent_token" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}

# Eventarc delivers Firestore events through a Pub/Sub push of its own, signed for the trigger's
# account. Projects whose Pub/Sub service agent predates April 2021 lack that right project-wide;
# granting it on the trigger accounts alone works for every project.
resource "google_service_account_iam_member" "pubsub_agent_trigger_token" {
  for_each = local.firestore_fed

  service_account_id = google_service_account.trigger[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}
