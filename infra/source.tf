locals {
  # The repository root is the deploy source of every function: main.py re-exports the entry
  # points and shared/ and sql/ ship with each. Everything that is not runtime code stays out:
  # command-line tools (cli/, scripts/), benchmarks, examples, the local devstack, tests and docs.
  # Patterns are doublestar globs relative to the root; a matching directory is skipped whole.
  source_excludes = [
    ".*", # hidden entries at the root: .git, .venv*, .local, .ci, tool caches, lock files
    "**/__pycache__",
    "**/*.pyc",
    "**/node_modules",
    "*.duckdb*",
    "benchmarks",
    "cli",
    "devstack",
    "docs",
    "examples",
    "infra",
    "mission",
    "scripts",
    "tests",
  ]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = "${path.module}/.."
  output_path = "${path.module}/.build/source.zip"
  excludes    = local.source_excludes
  # Fixed modes make the zip, and so its hash, depend on content only, not on the checkout's umask.
  output_file_mode = "0644"
}

resource "google_storage_bucket" "source" {
  name     = "${var.project_id}-${var.prefix}-function-source"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  # Source zips are rebuilt from git at any time; losing the bucket loses nothing.
  force_destroy = true

  # Versioning keeps an overwritten object recoverable; noncurrent copies go after 30 days.
  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  # checkov:skip=CKV_GCP_62: Access logs of a bucket read only by Cloud Build add a log bucket and no insight; Cloud Audit Logs already record who changed objects.

  depends_on = [google_project_service.enabled]
}

# Named by content hash: a code change makes a new object name, which changes every function's
# build source, so `terraform apply` rebuilds them; an unchanged tree redeploys nothing.
resource "google_storage_bucket_object" "source" {
  name   = "source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

# Our own repository instead of the default gcf-artifacts one: the build account gets write access
# to this repository only, and old images are cleaned up.
resource "google_artifact_registry_repository" "functions" {
  repository_id = "${var.prefix}-functions"
  location      = var.region
  format        = "DOCKER"
  description   = "Images built from the function source zip."

  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  # checkov:skip=CKV_GCP_84: Images hold only the open application code of this repository; Google-managed encryption suffices and CMEK would add a KMS key to run.

  depends_on = [google_project_service.enabled]
}
