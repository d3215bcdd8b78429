# Files the platform hands to people: privacy exports (privacy-exports/), publishing's dry-run
# request bodies (outbox/) and file exports for media without an API (exports/). All of it is
# personal data or derived from it, so nothing is public, access is by IAM only, and every object is
# deleted after var.files_retention_days: whoever needs a file takes it before then.
locals {
  # Named from variables only, so functions.tf can pass it to the functions without a reference to
  # the resource (see there).
  files_bucket = "${var.project_id}-${var.prefix}-files"
}

resource "google_storage_bucket" "files" {
  name     = local.files_bucket
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Holds personal data: a `terraform destroy` must not delete it unseen.
  force_destroy = false

  # A rerun rewrites the same names with the same bytes; old copies are personal data to keep no longer.
  versioning {
    enabled = false
  }

  lifecycle_rule {
    condition {
      age = var.files_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # checkov:skip=CKV_GCP_62: Access logs would be a second copy of who read personal data to protect; Cloud Audit Logs (Data Access) record reads when the operator enables them.
  # checkov:skip=CKV_GCP_78: Versioning would keep overwritten and deleted personal data beyond the retention period and an erasure.

  depends_on = [google_project_service.enabled]
}
