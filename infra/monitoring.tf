locals {
  notification_channels = concat(
    var.notification_channels,
    [for c in google_monitoring_notification_channel.email : c.id],
  )

  # Functions run as Cloud Run services named after the function; metrics carry that name.
  function_service_filter = "resource.labels.service_name = one_of(${join(", ", [for n in values(local.function_names) : "\"${n}\""])})"
}

resource "google_monitoring_notification_channel" "email" {
  count = var.alert_email == null ? 0 : 1

  display_name = "CDP alerts (${var.prefix})"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }

  depends_on = [google_project_service.enabled]
}

# --- Dead letters waiting ------------------------------------------------------------------------
# Anything in a dead-letter subscription is data the pipeline gave up on: an operator should look
# at it (docs/deploy.md, "Dead letters: inspect and replay").
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name = "CDP ${var.prefix}: dead letters waiting"
  combiner     = "OR"

  conditions {
    display_name = "Undelivered messages in a dead-letter subscription"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.labels.subscription_id = one_of(${join(", ", [for s in google_pubsub_subscription.dead_letter : "\"${s.name}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Messages reached a dead-letter topic after ${var.max_delivery_attempts} failed deliveries. Inspect them and replay or discard: docs/deploy.md, \"Dead letters: inspect and replay\"."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.enabled]
}

# --- Function error rate -------------------------------------------------------------------------
# 5xx answers are the function failing (4xx are rejected input, counted below). For a Pub/Sub-fed
# function a 5xx is a failed delivery that will be retried.
resource "google_monitoring_alert_policy" "function_errors" {
  display_name = "CDP ${var.prefix}: function error rate"
  combiner     = "OR"

  conditions {
    display_name = "Share of requests answered 5xx above ${var.error_rate_threshold * 100}%"
    condition_threshold {
      filter                  = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND metric.labels.response_code_class = \"5xx\" AND ${local.function_service_filter}"
      denominator_filter      = "resource.type = \"cloud_run_revision\" AND metric.type = \"run.googleapis.com/request_count\" AND ${local.function_service_filter}"
      comparison              = "COMPARISON_GT"
      threshold_value         = var.error_rate_threshold
      duration                = "300s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A CDP function answers more than ${var.error_rate_threshold * 100}% of its requests with 5xx. Its logs: Logs Explorer, resource.type=\"cloud_run_revision\" and the service name in the incident, severity>=ERROR."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    auto_close = "86400s"
  }

  depends_on = [google_project_service.enabled]
}

# --- Rejected beacons ----------------------------------------------------------------------------
# collect logs one JSON line {"message": "beacon rejected", "reason": ...} per rejection; counting
# them by reason shows a broken tracker release or a site sending from an unlisted origin.
resource "google_logging_metric" "rejected_beacons" {
  name        = "${var.prefix}/rejected_beacons"
  description = "Beacons (requests or single events) collect rejected, by reason code."
  filter      = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["collect"]}\" AND jsonPayload.message = \"beacon rejected\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Reason code, as in docs/collect-api.md."
    }
  }
  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "rejected_beacons" {
  display_name = "CDP ${var.prefix}: beacons rejected"
  combiner     = "OR"

  conditions {
    display_name = "More than ${var.rejected_beacons_threshold} beacons rejected in 10 minutes"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.rejected_beacons.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.rejected_beacons_threshold
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.labels.reason"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "collect is rejecting many beacons; the incident names the reason code (docs/collect-api.md). origin_not_allowed usually means a site's origins (var.sites) are incomplete; invalid_* codes point at a tracker release."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    auto_close = "86400s"
  }
}

# --- Failed scheduled runs -----------------------------------------------------------------------
# Cloud Scheduler logs an error when it cannot publish a job's message. Failures of the job itself
# end in the jobs dead-letter subscription, covered by the dead-letter alert above.
resource "google_monitoring_alert_policy" "scheduler_failures" {
  count = length(local.jobs) > 0 ? 1 : 0

  display_name = "CDP ${var.prefix}: scheduled job could not start"
  combiner     = "OR"

  conditions {
    display_name = "Cloud Scheduler attempt failed"
    condition_matched_log {
      filter = "resource.type = \"cloud_scheduler_job\" AND severity >= ERROR AND resource.labels.job_id = one_of(${join(", ", [for j in google_cloud_scheduler_job.job : "\"${j.name}\""])})"
    }
  }

  notification_channels = local.notification_channels
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }

  depends_on = [google_project_service.enabled]
}

# --- Stale segments --------------------------------------------------------------------------------
# build_segments logs {"message": "segment built"} per segment it evaluates and
# {"message": "segment build failed"} when one fails; the job itself still succeeds, so neither the
# dead-letter nor the error-rate alert would see a segment that quietly stops refreshing.
resource "google_logging_metric" "segment_builds" {
  name        = "${var.prefix}/segment_builds"
  description = "Segments build_segments evaluated successfully."
  filter      = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["build_segments"]}\" AND jsonPayload.message = \"segment built\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.enabled]
}

resource "google_monitoring_alert_policy" "stale_segments" {
  display_name = "CDP ${var.prefix}: segments are going stale"
  combiner     = "OR"

  conditions {
    display_name = "No segment built for ${var.segment_staleness_hours} hours"
    condition_absent {
      filter   = "resource.type = \"cloud_run_revision\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.segment_builds.name}\""
      duration = "${var.segment_staleness_hours * 3600}s"
      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "No segment has been built recently. Check the build_segments function's logs, the jobs dead-letter subscription and the Cloud Scheduler job; each segment's Firestore document shows its own status and computed_at."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    auto_close = "86400s"
  }
}

resource "google_monitoring_alert_policy" "segment_build_failures" {
  display_name = "CDP ${var.prefix}: a segment failed to build"
  combiner     = "OR"

  conditions {
    display_name = "build_segments logged a failed segment"
    condition_matched_log {
      filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["build_segments"]}\" AND jsonPayload.message = \"segment build failed\""
      label_extractors = {
        segment_id = "EXTRACT(jsonPayload.segment_id)"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A segment failed to build; the other segments were built. The segment's Firestore document has the error in status.message."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}

# --- Publishing ------------------------------------------------------------------------------------
# publish_audiences logs {"message": "publication stopped"} when a publication needs a person: a
# policy block, an expired token, a deleted audience or bad configuration (its status.error says
# which field). Throttling and outages are retried and do not log this.
resource "google_monitoring_alert_policy" "publication_failures" {
  display_name = "CDP ${var.prefix}: a publication stopped"
  combiner     = "OR"

  conditions {
    display_name = "publish_audiences logged a stopped publication"
    condition_matched_log {
      filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["publish_audiences"]}\" AND jsonPayload.message = \"publication stopped\""
      label_extractors = {
        publication_id = "EXTRACT(jsonPayload.publication_id)"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A publication stopped and needs a person; the others ran. Its Firestore document publications/{id} has the field to fix in status.error (docs/publishing.md, \"When a run stops\")."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}

# --- Campaigns -------------------------------------------------------------------------------------
# send_messages logs {"message": "campaign stopped"} when a campaign needs a person: it no longer
# validates, its segment was deleted or never built, or messaging/policy is invalid (its
# status.error names the field). Outages are retried and do not log this.
resource "google_monitoring_alert_policy" "campaign_failures" {
  display_name = "CDP ${var.prefix}: a campaign stopped"
  combiner     = "OR"

  conditions {
    display_name = "send_messages logged a stopped campaign"
    condition_matched_log {
      filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["send_messages"]}\" AND jsonPayload.message = \"campaign stopped\""
      label_extractors = {
        campaign_id = "EXTRACT(jsonPayload.campaign_id)"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A campaign run stopped before planning and needs a person; nothing was sent for it. Its Firestore document campaigns/{id} has the field to fix in status.error (docs/campaigns.md, \"Running campaigns\"). Batches deliver could not finish are retried and end in the sends dead-letter subscription, which the dead-letter alert watches."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    notification_rate_limit {
      period = "3600s"
    }
    auto_close = "86400s"
  }
}

# email_feedback logs {"message": "email complaint rate high"} when a site's complaints reach 0.1 % of
# the e-mails it sent over 7 days (with at least 1,000 sent): Gmail asks bulk senders to stay below
# 0.1 % and refuses mail at 0.3 % (shared/services/complaints.py).
resource "google_monitoring_alert_policy" "email_complaints" {
  display_name = "CDP ${var.prefix}: e-mail complaint rate high"
  combiner     = "OR"

  conditions {
    display_name = "email_feedback logged a complaint rate of 0.1 % or more"
    condition_matched_log {
      filter = "resource.type = \"cloud_run_revision\" AND resource.labels.service_name = \"${local.function_names["email_feedback"]}\" AND jsonPayload.message = \"email complaint rate high\""
      label_extractors = {
        site_id = "EXTRACT(jsonPayload.site_id)"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "A site's recipients marked its e-mails as spam at 0.1 % or more of what it sent over 7 days. Gmail refuses a bulk sender's mail at 0.3 %. Each complaint already unsubscribed its address; look at which campaigns drew them (the report's campaigns section, `complained` events in audiences.delivery_events), their audiences' consent and their frequency (docs/channels.md, \"Complaints\")."
  }

  notification_channels = local.notification_channels
  alert_strategy {
    notification_rate_limit {
      period = "86400s"
    }
    auto_close = "604800s"
  }
}
