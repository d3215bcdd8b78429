variable "project_id" {
  description = "Google Cloud project to deploy into. One project per environment: topic and secret names are fixed (they are the code's defaults)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lowercase letters, digits and hyphens, starting with a letter), not a project name or number."
  }
}

variable "region" {
  description = "Region for functions, Artifact Registry, Cloud Scheduler and the source bucket. Default: Seoul."
  type        = string
  default     = "asia-northeast3"

  validation {
    condition     = can(regex("^[a-z]+(-[a-z]+)+[0-9]$", var.region))
    error_message = "region must be a Google Cloud region such as asia-northeast3 or us-central1."
  }
}

variable "prefix" {
  description = "Short name of this deployment. Functions are named <prefix>-<entry-point>, service accounts likewise, and BigQuery datasets <prefix>_<dataset> (passed to the code as CDP_DATASET_PREFIX)."
  type        = string
  default     = "cdp"

  # Service account IDs are at most 30 characters; the longest planned entry point
  # (publish_audiences, 17) plus a hyphen leaves 12, kept at 8 for headroom.
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.prefix))
    error_message = "prefix must be 2-8 lowercase letters or digits, starting with a letter."
  }
}

variable "bigquery_location" {
  description = "BigQuery location of the datasets (CDP_BIGQUERY_LOCATION). A region (asia-northeast3) or a multi-region (US, EU)."
  type        = string
  default     = "asia-northeast3"

  validation {
    condition     = can(regex("^([A-Z]{2}|[a-z]+(-[a-z]+)+[0-9])$", var.bigquery_location))
    error_message = "bigquery_location must be a region such as asia-northeast3 or a multi-region such as US or EU."
  }
}

variable "firestore_location" {
  description = "Firestore location (a region or a multi-region such as nam5). Null means the same as region. Cannot change after the database exists."
  type        = string
  default     = null

  validation {
    condition     = var.firestore_location == null || can(regex("^([a-z]+[0-9]|[a-z]+(-[a-z]+)+[0-9])$", coalesce(var.firestore_location, "x")))
    error_message = "firestore_location must be a region such as asia-northeast3 or a multi-region such as nam5 or eur3."
  }
}

variable "sites" {
  description = "Websites allowed to send beacons, keyed by site_id, with the browser origins each may send from (CDP_SITES; \"*\" allows any origin) and analytics_default: whether analytics may run for a visitor who has not chosen (true where the site's jurisdiction allows it; default false, an opt-in). Advertising purposes are always refused until granted."
  type = map(object({
    origins           = list(string)
    analytics_default = optional(bool, false)
  }))

  validation {
    condition     = length(var.sites) > 0
    error_message = "Declare at least one site: collect rejects every beacon from an unknown site_id."
  }

  validation {
    condition     = alltrue([for id in keys(var.sites) : can(regex("^[a-z0-9][a-z0-9_-]{0,63}$", id))])
    error_message = "Site ids must be 1-64 lowercase letters, digits, '_' or '-'."
  }

  # An origin is scheme://host[:port] with no path or trailing slash, exactly what browsers send in
  # the Origin header. Plain http is accepted only for local testing hosts.
  validation {
    condition = alltrue(flatten([
      for site in values(var.sites) : [
        for origin in site.origins :
        origin == "*" || can(regex("^(https://[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+|http://(localhost|127\\.0\\.0\\.1))(:[0-9]{1,5})?$", origin))
      ]
    ]))
    error_message = "Each origin must be \"*\" or https://host[:port] in lowercase with no path or trailing slash (http:// only for localhost and 127.0.0.1)."
  }
}

variable "region_header" {
  description = "Request header collect reads the visitor's region from (CDP_REGION_HEADER); set by a load balancer in front of the function, if any."
  type        = string
  default     = "X-Client-Geo-Location"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]+$", var.region_header))
    error_message = "region_header must be an HTTP header name."
  }
}

variable "trusted_proxy_hops" {
  description = "Proxies of ours that append to X-Forwarded-For in front of collect (CDP_TRUSTED_PROXY_HOPS): 1 for the function's own front end, 2 with an external Application Load Balancer in front. The client address, hashed for ip_hash, is that many entries from the right; entries a client sent are never trusted."
  type        = number
  default     = 1

  validation {
    condition     = var.trusted_proxy_hops >= 1 && var.trusted_proxy_hops <= 5 && floor(var.trusted_proxy_hops) == var.trusted_proxy_hops
    error_message = "trusted_proxy_hops must be a whole number from 1 to 5."
  }
}

variable "twilio_status_url" {
  description = "Public URL of the twilio_status webhook as Twilio calls it (CDP_TWILIO_STATUS_URL): each message's StatusCallback, and what X-Twilio-Signature is checked against. Empty: the function's own https://<region>-<project>.cloudfunctions.net/<prefix>-twilio-status. Set it when a custom domain or load balancer fronts the function."
  type        = string
  default     = ""

  validation {
    condition     = var.twilio_status_url == "" || can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.twilio_status_url))
    error_message = "twilio_status_url must be an https URL without query string or fragment."
  }
}

variable "preferences_url" {
  description = "Public URL of the preference centre every message links to (CDP_PREFERENCE_URL). Empty: the preferences function's own https://<region>-<project>.cloudfunctions.net/<prefix>-preferences/. Set it when a custom domain fronts the function."
  type        = string
  default     = ""

  validation {
    condition     = var.preferences_url == "" || can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.preferences_url))
    error_message = "preferences_url must be an https URL without query string or fragment."
  }
}

variable "collect_url" {
  description = "Public URL of the collect function as browsers reach it: where click links in messages point (CDP_CLICK_URL, <url>/c?t=...). Empty: the function's own https://<region>-<project>.cloudfunctions.net/<prefix>-collect. Set it when a custom (shorter) domain fronts collect: SMS links count against the message's length."
  type        = string
  default     = ""

  validation {
    condition     = var.collect_url == "" || can(regex("^https://[^/?#\\s]+(/[^?#\\s]*)?$", var.collect_url))
    error_message = "collect_url must be an https URL without query string or fragment."
  }
}

variable "messaging" {
  description = "The e-mail and SMS senders (docs/channels.md): email_from enables e-mail, twilio_account_sid with twilio_messaging_service_sid enables SMS, nhn_sms_app_key with nhn_sms_sender_number (registered with NHN) enables domestic SMS/LMS (Korean numbers through NHN Cloud, others through Twilio when both are set; the secret key in Secret Manager nhn-sms-secret-key), nhn_alimtalk_app_key with nhn_alimtalk_sender_key enables Kakao AlimTalk, vapid_public_key with vapid_subject web push (the private key in Secret Manager vapid-private-key; the tracker snippets carry the public key); a campaign naming a channel not enabled is refused. Passwords, the DKIM key and the Twilio auth token live in Secret Manager (smtp-password, dkim-private-key, twilio-auth-token), never here. dry_run: every campaign run only plans and renders previews."
  type = object({
    email_from                   = optional(string, "")
    email_reply_to               = optional(string, "")
    smtp_host                    = optional(string, "")
    smtp_port                    = optional(number, 587)
    smtp_security                = optional(string, "starttls")
    smtp_username                = optional(string, "")
    dkim_domain                  = optional(string, "")
    dkim_selector                = optional(string, "")
    twilio_account_sid           = optional(string, "")
    twilio_messaging_service_sid = optional(string, "")
    nhn_sms_app_key              = optional(string, "")
    nhn_sms_sender_number        = optional(string, "")
    nhn_alimtalk_app_key         = optional(string, "")
    nhn_alimtalk_sender_key      = optional(string, "")
    vapid_public_key             = optional(string, "")
    vapid_subject                = optional(string, "")
    dry_run                      = optional(bool, false)
  })
  default = {}

  validation {
    condition     = contains(["starttls", "ssl", "none"], var.messaging.smtp_security)
    error_message = "messaging.smtp_security must be starttls, ssl or none."
  }
  validation {
    condition     = var.messaging.email_from == "" || var.messaging.smtp_host != ""
    error_message = "messaging.email_from needs messaging.smtp_host (the relay that sends it)."
  }
  validation {
    condition     = (var.messaging.twilio_account_sid == "") == (var.messaging.twilio_messaging_service_sid == "")
    error_message = "Set both messaging.twilio_account_sid (AC...) and messaging.twilio_messaging_service_sid (MG...), or neither."
  }
  validation {
    condition     = var.messaging.twilio_account_sid == "" || can(regex("^AC[0-9a-f]{32}$", var.messaging.twilio_account_sid))
    error_message = "messaging.twilio_account_sid is AC followed by 32 hex digits."
  }
  validation {
    condition     = (var.messaging.nhn_sms_app_key == "") == (var.messaging.nhn_sms_sender_number == "")
    error_message = "Set both messaging.nhn_sms_app_key and messaging.nhn_sms_sender_number (the sender number registered in NHN's console), or neither."
  }
  validation {
    condition     = var.messaging.nhn_sms_sender_number == "" || can(regex("^[0-9]{8,13}$", replace(var.messaging.nhn_sms_sender_number, "-", "")))
    error_message = "messaging.nhn_sms_sender_number is the registered sender number, 8 to 13 digits (hyphens allowed), e.g. 02-1234-5678."
  }
  validation {
    condition     = (var.messaging.nhn_alimtalk_app_key == "") == (var.messaging.nhn_alimtalk_sender_key == "")
    error_message = "Set both messaging.nhn_alimtalk_app_key and messaging.nhn_alimtalk_sender_key (the KakaoTalk channel's 40-character sender key), or neither."
  }
  validation {
    condition     = (var.messaging.vapid_public_key == "") == (var.messaging.vapid_subject == "")
    error_message = "Set both messaging.vapid_public_key and messaging.vapid_subject (mailto: or https:) for web push, or neither."
  }
  validation {
    condition     = var.messaging.vapid_public_key == "" || can(regex("^B[A-Za-z0-9_-]{86}$", var.messaging.vapid_public_key))
    error_message = "messaging.vapid_public_key is the base64url P-256 public key browsers subscribe with (87 characters, starting with B)."
  }
  validation {
    condition     = var.messaging.vapid_subject == "" || can(regex("^(mailto:[^@ ]+@[^@ ]+|https://[^ /]+.*)$", var.messaging.vapid_subject))
    error_message = "messaging.vapid_subject is a mailto: address or an https URL a push service may contact."
  }
  validation {
    condition     = (var.messaging.dkim_domain == "") == (var.messaging.dkim_selector == "")
    error_message = "Set both messaging.dkim_domain and messaging.dkim_selector to sign e-mail, or neither."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a Pub/Sub message before it goes to the dead-letter topic; also CDP_MAX_DELIVERY_ATTEMPTS, so the loader knows when it sees the last attempt."
  type        = number
  default     = 5

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "time_zone" {
  description = "Time zone of the Cloud Scheduler job schedules (an IANA name)."
  type        = string
  default     = "Asia/Seoul"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z_+-]+)+)$", var.time_zone))
    error_message = "time_zone must be an IANA time zone name such as Asia/Seoul or UTC."
  }
}

variable "schedules" {
  description = "Overrides of the fixed jobs' cron schedules (scheduler.tf), keyed by job name, e.g. { refine = \"15 * * * *\" }."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for cron in values(var.schedules) : length(split(" ", trimspace(cron))) == 5])
    error_message = "Each schedule must be a five-field cron expression (minute hour day-of-month month day-of-week)."
  }
}

variable "alert_email" {
  description = "E-mail address that receives alerts. Null for none (then set notification_channels, or alerts only show in the console)."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", coalesce(var.alert_email, "x")))
    error_message = "alert_email must be an e-mail address."
  }
}

variable "notification_channels" {
  description = "IDs of existing Cloud Monitoring notification channels (projects/<p>/notificationChannels/<n>) that also receive every alert."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", id))])
    error_message = "Each notification channel must be a full ID: projects/<project>/notificationChannels/<number>."
  }
}

variable "error_rate_threshold" {
  description = "Share of a function's requests answered 5xx over 5 minutes that opens an incident (0.05 = 5%)."
  type        = number
  default     = 0.05

  validation {
    condition     = var.error_rate_threshold > 0 && var.error_rate_threshold < 1
    error_message = "error_rate_threshold is a fraction between 0 and 1."
  }
}

variable "rejected_beacons_threshold" {
  description = "Rejected beacons per 10 minutes that open an incident: a broken tracker deployment or a misconfigured origin shows up here first."
  type        = number
  default     = 100

  validation {
    condition     = var.rejected_beacons_threshold > 0
    error_message = "rejected_beacons_threshold must be positive."
  }
}

variable "segment_staleness_hours" {
  description = "Hours without any segment built that open an incident: audiences marketers target are going stale (build_segments failing, or its schedule stopped)."
  type        = number
  default     = 6

  validation {
    condition     = var.segment_staleness_hours >= 1 && var.segment_staleness_hours <= 168
    error_message = "segment_staleness_hours must be between 1 and 168."
  }
}

variable "ip_salt_version" {
  description = "Generation of the IP-hash salt. Increase it to rotate the salt (visitor IP hashes then change from the next cold start on)."
  type        = number
  default     = 1

  validation {
    condition     = var.ip_salt_version >= 1 && floor(var.ip_salt_version) == var.ip_salt_version
    error_message = "ip_salt_version is a positive integer."
  }
}

variable "privacy_salt_version" {
  description = "Generation of the suppression-hash salt (Secret Manager privacy-salt). Leave it: a new salt makes every existing suppression stop matching, so erased people could come back (docs/privacy.md)."
  type        = number
  default     = 1

  validation {
    condition     = var.privacy_salt_version >= 1 && floor(var.privacy_salt_version) == var.privacy_salt_version
    error_message = "privacy_salt_version is a positive integer."
  }
}

variable "bus_key_version" {
  description = "Generation of the bus signing key (Secret Manager bus-key). Increase it to rotate the key; collect and load_events are redeployed with the new one, and messages signed with the old key that are still in flight are refused as bad rows."
  type        = number
  default     = 1

  validation {
    condition     = var.bus_key_version >= 1 && floor(var.bus_key_version) == var.bus_key_version
    error_message = "bus_key_version is a positive integer."
  }
}

variable "preference_key_version" {
  description = "Generation of the preference-link key (Secret Manager preference-key). Increase it to rotate the key: links sealed with the old one stop opening."
  type        = number
  default     = 1

  validation {
    condition     = var.preference_key_version >= 1 && floor(var.preference_key_version) == var.preference_key_version
    error_message = "preference_key_version is a positive integer."
  }
}

variable "click_key_version" {
  description = "Generation of the click-link key (Secret Manager click-key). Increase it to rotate the key: click links signed with the old one stop redirecting."
  type        = number
  default     = 1

  validation {
    condition     = var.click_key_version >= 1 && floor(var.click_key_version) == var.click_key_version
    error_message = "click_key_version is a positive integer."
  }
}

variable "secret_versions" {
  description = "Secret Manager version bound for each operator-managed secret (secrets.tf), keyed by secret name. Unlisted secrets use \"latest\"."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.secret_versions) : can(regex("^([0-9]+|latest)$", v))])
    error_message = "A secret version is a version number or \"latest\"."
  }
}

variable "labels" {
  description = "Extra labels put on every resource that supports labels."
  type        = map(string)
  default     = {}
}

variable "files_retention_days" {
  description = "Days a file in the files bucket (privacy exports, publishing's outbox and file exports) is kept before Cloud Storage deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.files_retention_days >= 1 && var.files_retention_days <= 365
    error_message = "files_retention_days must be between 1 and 365."
  }
}
