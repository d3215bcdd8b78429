provider "google" {
  project = var.project_id
  region  = var.region

  # Labels every resource that supports them, so cost reports can be filtered by deployment.
  default_labels = merge(var.labels, {
    app        = "cdp"
    deployment = var.prefix
    managed-by = "terraform"
  })
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = merge(var.labels, {
    app        = "cdp"
    deployment = var.prefix
    managed-by = "terraform"
  })
}

# Project number: service agents' e-mail addresses are built from it.
data "google_project" "this" {
  project_id = var.project_id
}
