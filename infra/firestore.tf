locals {
  # Composite indexes the code's queries need. The Firestore emulator does not enforce indexes, so
  # a missing one would only fail in production: the code exports its list (FIRESTORE_INDEXES,
  # see docs/deploy.md) and tests/infra checks this list equals it.
  # None is needed today: the functions read documents by id (segments/{id}) and list whole
  # collections (segments, segmentlets, templates); runs/{id} is only written. Firestore's automatic
  # single-field indexes serve any single-field filter; a composite one is needed only when a query
  # combines filters or orders on several fields. Entry shape:
  #   { collection = "segments", fields = [{ field_path = "status", order = "ASCENDING" },
  #                                        { field_path = "updated_at", order = "DESCENDING" }] }
  firestore_indexes = []

  # Also where Eventarc takes the database's events (validate_config's trigger region).
  firestore_location = coalesce(var.firestore_location, var.region)
}

# Native mode: the code uses the Firestore client (documents, queries, transactions).
resource "google_firestore_database" "main" {
  name                              = "(default)"
  location_id                       = local.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  app_engine_integration_mode       = "DISABLED"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # Marketers' segments and campaigns live here: destroying the deployment leaves the database.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

resource "google_firestore_index" "index" {
  for_each = {
    for idx in local.firestore_indexes :
    "${idx.collection}(${join(",", [for f in idx.fields : "${f.field_path} ${try(f.order, f.array_config)}"])})" => idx
  }

  database    = google_firestore_database.main.name
  collection  = each.value.collection
  query_scope = try(each.value.query_scope, "COLLECTION")

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path   = fields.value.field_path
      order        = try(fields.value.order, null)
      array_config = try(fields.value.array_config, null)
    }
  }
}
