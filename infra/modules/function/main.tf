locals {
  # Public endpoints take traffic from the internet. Pub/Sub push and Eventarc count as internal
  # traffic when they are in the same project, so event-fed functions refuse everything else at the
  # network edge, on top of IAM.
  ingress = var.trigger.type == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"

  invokers = merge(var.trigger.public ? { public = "allUsers" } : {}, var.invokers)
}

resource "google_cloudfunctions2_function" "this" {
  project     = var.project_id
  location    = var.region
  name        = var.name
  description = var.description

  build_config {
    runtime           = var.runtime
    entry_point       = var.entry_point
    docker_repository = var.docker_repository
    service_account   = var.build_service_account

    source {
      storage_source {
        bucket = var.source_bucket
        object = var.source_object
      }
    }
  }

  service_config {
    service_account_email            = var.service_account_email
    available_memory                 = var.memory
    available_cpu                    = var.cpu
    max_instance_request_concurrency = var.concurrency
    min_instance_count               = var.min_instances
    max_instance_count               = var.max_instances
    timeout_seconds                  = var.timeout_seconds
    ingress_settings                 = local.ingress
    all_traffic_on_latest_revision   = true
    # functions-framework runs gunicorn with cores x 4 threads unless told otherwise (4 on one vCPU);
    # with Cloud Run routing `concurrency` requests to an instance, the rest would queue inside it
    # (scripts/bench ingest: collect/bare 0.40 at 8 threads, 0.54 at 80, same for both servers).
    environment_variables = merge(var.environment, { THREADS = tostring(var.concurrency) })

    dynamic "secret_environment_variables" {
      for_each = var.secrets
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value.secret
        version    = secret_environment_variables.value.version
      }
    }
  }

  # Only Firestore document events go through Eventarc. Pub/Sub-fed functions have no event_trigger:
  # their push subscription is declared by the caller, where its dead-letter policy can be set.
  # Eventarc delivers Firestore events as application/protobuf (DocumentEventData); the
  # Cloud Functions API has no content-type setting for the triggers it manages.
  dynamic "event_trigger" {
    for_each = var.trigger.type == "firestore" ? [var.trigger] : []
    content {
      trigger_region        = coalesce(event_trigger.value.region, var.region)
      event_type            = event_trigger.value.event_type
      retry_policy          = event_trigger.value.retry ? "RETRY_POLICY_RETRY" : "RETRY_POLICY_DO_NOT_RETRY"
      service_account_email = var.trigger_service_account

      event_filters {
        attribute = "database"
        value     = event_trigger.value.database
      }
      event_filters {
        attribute = "document"
        value     = event_trigger.value.document
        operator  = "match-path-pattern"
      }
    }
  }
}

# A function takes one event trigger (above). Each further document pattern is an Eventarc trigger
# of its own on the function's Cloud Run service, alike in all else: event type, database, the
# trigger's identity, protobuf data (the only content type Firestore sources deliver) and, unless
# retry is on, one delivery attempt (the only other value Eventarc allows).
resource "google_eventarc_trigger" "more_documents" {
  for_each = var.trigger.type == "firestore" ? var.trigger.more_documents : {}

  project                 = var.project_id
  location                = coalesce(var.trigger.region, var.region)
  name                    = "${var.name}-${each.key}"
  service_account         = var.trigger_service_account
  event_data_content_type = "application/protobuf"

  matching_criteria {
    attribute = "type"
    value     = var.trigger.event_type
  }
  matching_criteria {
    attribute = "database"
    value     = var.trigger.database
  }
  matching_criteria {
    attribute = "document"
    value     = each.value
    operator  = "match-path-pattern"
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.this.service_config[0].service
      region  = var.region
    }
  }

  dynamic "retry_policy" {
    for_each = var.trigger.retry ? [] : [1]
    content {
      max_attempts = 1
    }
  }
}

# A gen2 function is served by a Cloud Run service: invoking it takes run.invoker on that service.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = local.invokers

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.this.service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}
