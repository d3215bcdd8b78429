locals {
  # Fixed jobs, one entry each, keyed by job name. Cloud Scheduler publishes {"job": "<name>"} to
  # the `jobs` topic with attribute job=<name>; the function that runs a job subscribes with
  # trigger = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"<name>\"" }, so the
  # job gets the same retry and dead-letter policy as any Pub/Sub-fed function.
  # Empty until main.py exports a scheduled entry point. Entry shape:
  #   refine = { schedule = "15 * * * *", description = "Refine yesterday's and today's events." }
  scheduled_jobs = {}

  jobs = {
    for name, job in local.scheduled_jobs : name => merge(job, {
      schedule = lookup(var.schedules, name, job.schedule)
    })
  }
}

# A schedule override for a job that does not exist is a typo that would silently do nothing.
resource "terraform_data" "schedules_check" {
  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.schedules), keys(local.scheduled_jobs))) == 0
      error_message = "var.schedules names jobs that scheduler.tf does not declare: ${join(", ", setsubtract(keys(var.schedules), keys(local.scheduled_jobs)))}."
    }
  }
}

resource "google_cloud_scheduler_job" "job" {
  for_each = local.jobs

  name        = "${var.prefix}-${replace(each.key, "_", "-")}"
  region      = var.region
  description = each.value.description
  schedule    = each.value.schedule
  time_zone   = var.time_zone

  # Covers failures to publish only; once published, the subscription's own retry and dead-letter
  # policy take over.
  retry_config {
    retry_count          = 3
    min_backoff_duration = "10s"
    max_backoff_duration = "300s"
    max_doublings        = 3
  }

  pubsub_target {
    topic_name = google_pubsub_topic.topic["jobs"].id
    data       = base64encode(jsonencode({ job = each.key }))
    attributes = { job = each.key }
  }

  depends_on = [google_project_service.enabled]
}
