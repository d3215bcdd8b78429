output "beacon_url" {
  description = "URL of collect: the endpoint beacons are POSTed to and /tracker.js is served from."
  value       = module.function["collect"].url
}

output "tracker_snippets" {
  description = "The snippet to paste into each site's pages, keyed by site_id."
  value = {
    for site_id, site in var.sites : site_id => templatefile("${path.module}/tracker-snippet.html.tftpl", {
      collect_url       = module.function["collect"].url
      site_id           = site_id
      analytics_default = site.analytics_default
      vapid_public_key  = var.messaging.vapid_public_key
    })
  }
}

output "function_urls" {
  description = "URL of every function, keyed by entry point (only public ones answer anonymous calls)."
  value       = { for name, f in module.function : name => f.url }
}

output "topics" {
  description = "Pub/Sub topic names."
  value       = { for name, t in google_pubsub_topic.topic : name => t.name }
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions holding dead letters for inspection and replay, keyed by source topic."
  value       = { for topic, s in google_pubsub_subscription.dead_letter : topic => s.name }
}

output "datasets" {
  description = "BigQuery dataset IDs, keyed by logical name (raw, refined, audiences)."
  value       = { for name, d in google_bigquery_dataset.dataset : name => d.dataset_id }
}

output "dataset_prefix" {
  description = "CDP_DATASET_PREFIX given to the functions."
  value       = local.dataset_prefix
}
