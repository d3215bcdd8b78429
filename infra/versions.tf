terraform {
  # 1.11 is the first release with write-only arguments, which keep the generated IP salt out of
  # the state file (secrets.tf). Everything else here would run on 1.5.
  required_version = ">= 1.11"

  required_providers {
    # 7.x is the current major. Nothing here relies on a 7.0 change, so the code also plans on
    # the last 6.x (6.50) if a pin has to go back.
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # Only for google_project_service_identity (the Pub/Sub service agent), which is beta-only.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    # 2.4 added glob excludes (doublestar), which source.tf relies on.
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.7"
    }
    # 3.7 added the ephemeral random_password used for the IP salt.
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # State lives in a versioned GCS bucket so a rollback can also restore state; the bucket name is
  # given at init time (scripts/deploy --state-bucket), because it cannot be a variable.
  backend "gcs" {}
}
