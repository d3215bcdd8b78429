locals {
  # Every API the deployment calls. Eventarc is only needed once a function has a Firestore trigger
  # (validate_config); Pub/Sub-fed functions use our own push subscriptions instead (pubsub.tf).
  uses_eventarc = anytrue([for f in values(local.functions) : f.trigger.type == "firestore"])

  services = toset(concat([
    "artifactregistry.googleapis.com",     # function images (source.tf)
    "bigquery.googleapis.com",             # warehouse (bigquery.tf)
    "cloudbuild.googleapis.com",           # builds each function from the source zip
    "cloudfunctions.googleapis.com",       # functions (functions.tf)
    "cloudresourcemanager.googleapis.com", # project IAM bindings and the project data source
    "cloudscheduler.googleapis.com",       # fixed jobs (scheduler.tf)
    "firestore.googleapis.com",            # marketer configuration and results (firestore.tf)
    "iam.googleapis.com",                  # service accounts (iam.tf)
    "logging.googleapis.com",              # log-based metrics (monitoring.tf)
    "monitoring.googleapis.com",           # alert policies (monitoring.tf)
    "pubsub.googleapis.com",               # beacons and jobs (pubsub.tf)
    "run.googleapis.com",                  # gen2 functions run as Cloud Run services
    "secretmanager.googleapis.com",        # credentials (secrets.tf)
    "storage.googleapis.com",              # source bucket (source.tf)
  ], local.uses_eventarc ? ["eventarc.googleapis.com"] : []))
}

resource "google_project_service" "enabled" {
  for_each = local.services

  service = each.value
  # Destroying this deployment must not switch an API off for anything else in the project.
  disable_on_destroy         = false
  disable_dependent_services = false
}
