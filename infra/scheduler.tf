locals {
  # Fixed jobs, one entry each, keyed by job name. Cloud Scheduler publishes {"job": "<name>"} to
  # the `jobs` topic with attribute job=<name>; the function that runs a job subscribes with
  # trigger = { type = "pubsub", topic = "jobs", filter = "attributes.job = \"<name>\"" }, so the
  # job gets the same retry and dead-letter policy as any Pub/Sub-fed function. Schedules are read
  # in var.time_zone (default Asia/Seoul) and can be overridden with var.schedules.
  scheduled_jobs = {
    # Rewrites yesterday's and today's partitions, then identities, RFM and profiles. At :15, a run
    # (at most 9 minutes) is over before the build at :35 and the segment jobs on the hour.
    refine = {
      schedule    = "15 * * * *"
      description = "Refine yesterday's and today's events."
    }
    # Builds every segment that is due, by its own cron (segments/{id}.schedule) or because it was
    # edited; with nothing due a run costs one small freshness query. The per-segment jobs
    # (schedule_job_prefix) fire the same job at each segment's own time; this one builds edited
    # segments and catches up on any fire that failed.
    build_segments = {
      schedule    = "5,35 * * * *"
      description = "Build the segments that are due."
    }
    # Daily at 06:20, after the 06:15 refine and before the segment builds at 06:35 and 07:00,
    # so the day's discovery segments are built from the day's clusters.
    discover = {
      schedule    = "20 6 * * *"
      description = "Find and explain the K-Means discovery segments."
    }
    # Privacy requests written to Firestore are processed within 30 minutes; an erasure left
    # pending by rows still in BigQuery's streaming buffer is retried by the next run.
    privacy_requests = {
      schedule    = "10,40 * * * *"
      description = "Erase or export the people pending privacy requests name."
    }
    # The report, daily at 08:30: after the 06:20 discovery and the morning's builds, and after the
    # night rule ends at 08:00, so its consent coverage shows what a daytime send may reach.
    build_report = {
      schedule    = "30 8 * * *"
      description = "Build the report page into the files bucket."
    }
    # Segment, publication and campaign schedules edited in Firestore reach Cloud Scheduler within 10 minutes.
    sync_schedules = {
      schedule    = "*/10 * * * *"
      description = "Sync the per-segment, per-publication and per-campaign Cloud Scheduler jobs with Firestore."
    }
    # The messaging tick: releases the holds now due (the 21:00-08:00 night without night consent
    # is released at 08:00, quiet hours and send windows at their end), polls AlimTalk results no
    # webhook brought, starts one-off campaigns whose send_at has come and plans triggered campaigns
    # (segment entries and events due). `body` adds to the message: {"job": "send_messages", "tick": true}.
    send_messages = {
      schedule    = "*/5 * * * *"
      description = "Release due holds, poll AlimTalk results, start due one-off and triggered campaigns."
      body        = { tick = true }
    }
  }

  # Jobs sync_schedules manages: one per scheduled segment, named <prefix>-seg-<segment id>, one
  # per scheduled publication, <prefix>-pub-<publication id>, and one per scheduled campaign,
  # <prefix>-cmp-<campaign id>, not declared here (CDP_SCHEDULE_JOB_PREFIX,
  # CDP_SCHEDULE_PUBLICATION_JOB_PREFIX, CDP_SCHEDULE_CAMPAIGN_JOB_PREFIX, docs/scheduling.md). The sync
  # deletes every job with these prefixes that no document asks for, so no fixed job may carry
  # either (checked below).
  schedule_job_prefix    = "${var.prefix}-seg-"
  publication_job_prefix = "${var.prefix}-pub-"
  campaign_job_prefix    = "${var.prefix}-cmp-"

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
    # sync_schedules would delete a fixed job whose name starts with its prefix.
    precondition {
      condition     = alltrue([for name in keys(local.scheduled_jobs) : !startswith("${var.prefix}-${replace(name, "_", "-")}", local.schedule_job_prefix)])
      error_message = "A fixed job's name starts with ${local.schedule_job_prefix}, the prefix of the jobs sync_schedules manages and deletes."
    }
    precondition {
      condition     = alltrue([for name in keys(local.scheduled_jobs) : !startswith("${var.prefix}-${replace(name, "_", "-")}", local.publication_job_prefix)])
      error_message = "A fixed job's name starts with ${local.publication_job_prefix}, the prefix of the publication jobs sync_schedules manages and deletes."
    }
    precondition {
      condition     = alltrue([for name in keys(local.scheduled_jobs) : !startswith("${var.prefix}-${replace(name, "_", "-")}", local.campaign_job_prefix)])
      error_message = "A fixed job's name starts with ${local.campaign_job_prefix}, the prefix of the campaign jobs sync_schedules manages and deletes."
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
    data       = base64encode(jsonencode(merge(try(each.value.body, {}), { job = each.key })))
    attributes = { job = each.key }
  }

  depends_on = [google_project_service.enabled]
}
