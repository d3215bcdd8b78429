output "name" {
  description = "Deployed function name."
  value       = google_cloudfunctions2_function.this.name
}

output "url" {
  description = "HTTPS endpoint of the function (its Cloud Run service URL)."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "service" {
  description = "Name of the Cloud Run service behind the function (the resource label in its metrics and logs)."
  value       = google_cloudfunctions2_function.this.service_config[0].service
}
