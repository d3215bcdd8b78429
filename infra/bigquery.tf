locals {
  # Datasets get the deployment prefix; the code receives the same string as CDP_DATASET_PREFIX
  # and names a dataset <CDP_DATASET_PREFIX><logical name> (e.g. cdp_raw for `raw`).
  dataset_prefix = "${var.prefix}_"

  datasets = {
    raw       = "Collected events as received (page, land, user, conv, event) and bad_rows."
    refined   = "Deduplicated events, sessions, identities, profiles with segmentlets, RFM and clusters."
    audiences = "Segment membership, membership history and publish/delivery logs."
    privacy   = "Privacy requests' suppression list (salted hashes of erased identifiers) and pending audience removals."
    audit     = "Audit log of configuration changes and privacy requests (who changed which document, when, before/after hashes)."
  }

  # Tables come from the same indexes the code reads (shared/schema.py), one per dataset folder: a
  # column is declared once, in sql/schema/, and never copied here.
  schema_dir = "${path.module}/../sql/schema"
  tables = merge([
    for index in fileset(local.schema_dir, "*/tables.json") : {
      for t in jsondecode(file("${local.schema_dir}/${index}")).tables : "${t.dataset}.${t.table}" => t
    }
  ]...)
}

resource "google_bigquery_dataset" "dataset" {
  for_each = local.datasets

  dataset_id  = "${local.dataset_prefix}${each.key}"
  location    = var.bigquery_location
  description = each.value
  # `terraform destroy` must never take customer data with it.
  delete_contents_on_destroy = false

  # checkov:skip=CKV_GCP_81: Google-managed encryption at rest; CMEK needs a KMS key ring in the BigQuery location and its IAM, with no requirement asking for it yet.

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_table" "table" {
  for_each = local.tables

  dataset_id  = google_bigquery_dataset.dataset[each.value.dataset].dataset_id
  table_id    = each.value.table
  description = each.value.description
  schema      = file("${local.schema_dir}/${each.value.schema}")

  # Raw tables are queried by date only: the filter requirement makes a forgotten WHERE fail
  # instead of scanning (and billing) all history.
  require_partition_filter = try(each.value.require_partition_filter, false)
  clustering               = length(try(each.value.clustering, [])) > 0 ? each.value.clustering : null

  dynamic "time_partitioning" {
    for_each = try(each.value.partition_field, null) == null ? [] : [each.value]
    content {
      type  = "DAY"
      field = time_partitioning.value.partition_field
      # Only transient data (bad rows) expires; events are kept.
      expiration_ms = try(time_partitioning.value.partition_expiration_days, null) == null ? null : time_partitioning.value.partition_expiration_days * 86400000
    }
  }

  deletion_protection = true

  # checkov:skip=CKV_GCP_80: Google-managed encryption at rest, as for the datasets (CKV_GCP_81 above); CMEK is a later, deliberate decision.
}
