# Settings with a default are nullable = false: a caller passing null (an omitted entry in the
# root map) gets the default.

variable "project_id" {
  description = "Project the function is deployed in."
  type        = string
}

variable "region" {
  description = "Region of the function (and of its Cloud Run service)."
  type        = string
}

variable "name" {
  description = "Deployed name (<prefix>-<entry-point with hyphens>): lowercase letters, digits and hyphens."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$", var.name))
    error_message = "name must be a valid Cloud Run service name: lowercase letters, digits and hyphens."
  }
}

variable "entry_point" {
  description = "Name exported by main.py. It must equal the Python function's __name__: the Functions Framework resolves the signature type (http or cloudevent) by that name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]*$", var.entry_point))
    error_message = "entry_point must be a lowercase Python identifier."
  }
}

variable "description" {
  description = "What the function does, shown in the console."
  type        = string
}

variable "runtime" {
  description = "Python runtime; matches the version the code is tested with."
  type        = string
  default     = "python311"
}

variable "source_bucket" {
  description = "Bucket holding the source zip."
  type        = string
}

variable "source_object" {
  description = "Object name of the source zip (content-hashed, so a change triggers a rebuild)."
  type        = string
}

variable "docker_repository" {
  description = "Artifact Registry repository (projects/<p>/locations/<r>/repositories/<id>) the build pushes the image to."
  type        = string
}

variable "build_service_account" {
  description = "Service account Cloud Build runs the build as (projects/<p>/serviceAccounts/<email>)."
  type        = string
}

variable "service_account_email" {
  description = "Identity the function runs as; its roles are the function's only permissions."
  type        = string
}

variable "environment" {
  description = "Plain environment variables (settings read by shared/config.py). Never secrets."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "secrets" {
  description = "Secret Manager secrets exposed as environment variables, keyed by variable name."
  type = map(object({
    secret  = string
    version = string
  }))
  default  = {}
  nullable = false
}

variable "trigger" {
  description = "How the function is invoked: http (public or not), pubsub (a push subscription declared by the caller) or firestore (an Eventarc document trigger: event_type, document path pattern, more_documents, database, region = the database's location, retry)."
  type = object({
    type        = string
    public      = optional(bool, false)
    topic       = optional(string)
    filter      = optional(string)
    dead_letter = optional(bool, true)
    event_type  = optional(string)
    document    = optional(string)
    # More document patterns for the same function, keyed by a short name (the Eventarc trigger's
    # name is <function>-<key>): a function has one event trigger of its own (main.tf).
    more_documents = optional(map(string), {})
    database       = optional(string, "(default)")
    # Eventarc takes Firestore events in the database's location (a region, or nam5/eur3); null
    # means the function's region.
    region = optional(string)
    # Off by default: Eventarc retries a failing event for up to 24 hours, so retrying suits only
    # handlers whose failures are transient. Either way the handler must be idempotent.
    retry = optional(bool, false)
  })

  validation {
    condition     = contains(["http", "pubsub", "firestore"], var.trigger.type)
    error_message = "trigger.type must be http, pubsub or firestore."
  }

  validation {
    condition     = var.trigger.type != "pubsub" || var.trigger.topic != null
    error_message = "A pubsub trigger needs trigger.topic."
  }

  validation {
    condition     = var.trigger.type != "firestore" || (var.trigger.event_type != null && var.trigger.document != null)
    error_message = "A firestore trigger needs trigger.event_type and trigger.document."
  }

  validation {
    condition     = var.trigger.type != "firestore" || startswith(coalesce(var.trigger.event_type, "-"), "google.cloud.firestore.document.v1.")
    error_message = "A firestore trigger's event_type is a Firestore document event, e.g. google.cloud.firestore.document.v1.written."
  }

  validation {
    condition     = length(var.trigger.more_documents) == 0 || var.trigger.type == "firestore"
    error_message = "trigger.more_documents applies to a firestore trigger only."
  }

  validation {
    condition     = alltrue([for key in keys(var.trigger.more_documents) : can(regex("^[a-z][a-z0-9-]{0,20}$", key))])
    error_message = "trigger.more_documents keys name Eventarc triggers: 1-21 lower-case letters, digits or '-', a letter first."
  }

  validation {
    condition     = !var.trigger.public || var.trigger.type == "http"
    error_message = "Only an http function can be public."
  }
}

variable "trigger_service_account" {
  description = "Identity Eventarc invokes a firestore-triggered function with (needs run.invoker on it, via invokers, and eventarc.eventReceiver). Ignored for other triggers."
  type        = string
  default     = null

  # Without one, Eventarc would use the Compute Engine default account.
  validation {
    condition     = var.trigger.type != "firestore" || var.trigger_service_account != null
    error_message = "A firestore trigger needs trigger_service_account."
  }
}

variable "invokers" {
  description = "Members granted run.invoker on the function besides allUsers for a public one, keyed by a fixed label (e.g. { events = \"serviceAccount:...\" }): for_each keys must be known at plan time, e-mail addresses of new accounts are not."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "memory" {
  description = "Memory per instance, e.g. 256Mi, 512Mi, 1Gi."
  type        = string
  default     = "256Mi"
  nullable    = false
}

variable "cpu" {
  description = "vCPUs per instance. Concurrency above 1 needs at least 1."
  type        = string
  default     = "1"
  nullable    = false
}

variable "concurrency" {
  description = "Requests one instance serves at a time."
  type        = number
  default     = 1
  nullable    = false
}

variable "min_instances" {
  description = "Instances kept warm. 0 scales to zero when idle."
  type        = number
  default     = 0
  nullable    = false
}

variable "max_instances" {
  description = "Upper bound on instances: bounds cost and the load put on downstream services."
  type        = number
  default     = 10
  nullable    = false
}

variable "timeout_seconds" {
  description = "Request timeout. For a pubsub trigger the caller sets the subscription's ack deadline to match."
  type        = number
  default     = 60
  nullable    = false
}
