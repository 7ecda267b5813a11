# Inputs of the copy-worker module. Defaults follow DESIGN.md §2 (topology)
# and §5 (configuration); change them only with a reason.

# --- Where ---------------------------------------------------------------------

variable "project_id" {
  description = "Project that hosts the worker: its topics, subscriptions, Cloud Run service, Artifact Registry repository and service accounts."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 characters: lowercase letters, digits, hyphens), not a project number or name."
  }
}

variable "region" {
  description = "Region of the Cloud Run service and the Artifact Registry repository, e.g. us-central1."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "Container image of copy-worker, preferably by digest: REGION-docker.pkg.dev/PROJECT/REPO/copy-worker@sha256:... (see README: the repository is created by this module, so the first apply is two-phase)."
  type        = string

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "names" {
  description = "Names of everything the module creates. The topic, subscription and queue defaults are the contract of DESIGN.md §2; override only to run several copies of the topology in one project. operations_topic and operations_subscription name the previous release's watch topic and its subscription, which exist only while drain_copy_operations is true: keep any override you gave them, or the upgrade replaces them with watches still in flight (README, \"Upgrading from the watch-message release\")."
  type = object({
    service                   = optional(string, "copy-worker")
    artifact_repository       = optional(string, "copy-worker")
    worker_service_account    = optional(string, "copy-worker")
    push_service_account      = optional(string, "copy-worker-push")
    tasks_service_account     = optional(string, "copy-worker-tasks")
    publisher_service_account = optional(string, "copy-worker-publisher")
    replay_service_account    = optional(string, "copy-worker-replay")
    requests_topic            = optional(string, "copy-requests")
    operations_topic          = optional(string, "copy-operations")
    completions_topic         = optional(string, "copy-completions")
    dead_letter_topic         = optional(string, "copy-dead-letter")
    callbacks_topic           = optional(string, "copy-callbacks")
    requests_subscription     = optional(string, "copy-requests-push")
    operations_subscription   = optional(string, "copy-operations-push")
    dead_letter_subscription  = optional(string, "copy-dead-letter-replay")
    callbacks_subscription    = optional(string, "copy-callbacks-push")
    waiter_role_id            = optional(string, "copyWorkerCompletionsWaiter")
    copy_start_queue          = optional(string, "copy-starts")
    copy_poll_queue           = optional(string, "copy-polls")
  })
  default = {}

  validation {
    # The deterministic Cloud Run URL (https://SERVICE-PROJECTNUMBER.REGION.run.app)
    # exists only while "SERVICE-PROJECTNUMBER" fits one 63-character DNS label;
    # project numbers have up to 12 digits. run.tf derives PUSH_AUDIENCE from it.
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.names.service))
    error_message = "names.service must be 1-49 characters of lowercase letters, digits and hyphens, starting with a letter, so that Cloud Run assigns the deterministic URL the push audience is derived from."
  }

  validation {
    condition = alltrue([
      for n in [var.names.worker_service_account, var.names.push_service_account, var.names.tasks_service_account, var.names.publisher_service_account, var.names.replay_service_account] :
      can(regex("^[a-z]([a-z0-9-]{4,28}[a-z0-9])$", n))
    ])
    error_message = "Service account IDs must be 6-30 characters of lowercase letters, digits and hyphens, starting with a letter."
  }

  validation {
    # Cloud Tasks queue IDs: letters, digits and hyphens, at most 100 characters.
    condition     = alltrue([for q in [var.names.copy_start_queue, var.names.copy_poll_queue] : can(regex("^[A-Za-z0-9-]{1,100}$", q))])
    error_message = "names.copy_start_queue and names.copy_poll_queue must be 1-100 letters, digits or hyphens (Cloud Tasks queue IDs)."
  }

  validation {
    condition     = var.names.copy_start_queue != var.names.copy_poll_queue
    error_message = "names.copy_start_queue and names.copy_poll_queue must differ: each queue has its own rate."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the APIs the module needs in project_id. Set false where a platform team manages APIs centrally."
  type        = bool
  default     = true
}

# --- Pub/Sub delivery tuning (DESIGN.md §2) -------------------------------------

variable "requests_ack_deadline_seconds" {
  description = "Ack deadline of copy-requests-push (and copy-callbacks-push). The request stage only validates a request and queues its copy-start task, within 45 s; a longer deadline only delays the redelivery of a request whose worker died."
  type        = number
  default     = 60

  validation {
    condition     = var.requests_ack_deadline_seconds >= 10 && var.requests_ack_deadline_seconds <= 600
    error_message = "Pub/Sub ack deadlines are 10-600 seconds."
  }
}

variable "requests_min_backoff_seconds" {
  description = "Minimum redelivery backoff of copy-requests-push."
  type        = number
  default     = 10

  validation {
    condition     = var.requests_min_backoff_seconds >= 0 && var.requests_min_backoff_seconds <= 600
    error_message = "Pub/Sub retry backoffs are 0-600 seconds."
  }
}

variable "requests_max_backoff_seconds" {
  description = "Maximum redelivery backoff of copy-requests-push."
  type        = number
  default     = 600

  validation {
    condition     = var.requests_max_backoff_seconds >= 0 && var.requests_max_backoff_seconds <= 600
    error_message = "Pub/Sub retry backoffs are 0-600 seconds."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of a copy request before Pub/Sub moves it to copy-dead-letter."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "Pub/Sub allows 5-100 delivery attempts in a dead-letter policy."
  }
}

variable "message_retention_duration" {
  description = "How long copy-requests-push and copy-callbacks-push keep a message the worker has not acked (seconds with an 's' suffix): how long an outage of the worker (or of its push authentication) may last before Pub/Sub drops requests and callbacks. Running copies do not depend on it: they are followed by poll tasks."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.message_retention_duration)) && try(tonumber(trimsuffix(var.message_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.message_retention_duration, "s")) <= 604800, false)
    error_message = "message_retention_duration must be \"<seconds>s\" between 600s and 604800s (7 days)."
  }
}

# --- Worker behaviour (DESIGN.md §5) ---------------------------------------------

variable "copy_max_attempts" {
  description = "COPY_MAX_ATTEMPTS: copy attempts for operations that fail transiently."
  type        = number
  default     = 3

  validation {
    condition     = var.copy_max_attempts >= 1
    error_message = "copy_max_attempts must be at least 1."
  }
}

variable "copy_max_duration" {
  description = "COPY_MAX_DURATION: how long after its request was accepted a copy may take before the worker ends it as failed (DEADLINE_EXCEEDED), e.g. 24h, 90m. It also ends a copy start that Vertex AI keeps refusing, so it must stay below the 31 days after which Cloud Tasks deletes a task it is still retrying."
  type        = string
  default     = "24h"

  validation {
    # A copy-start task retried for quota lives until the worker ends it at
    # COPY_MAX_DURATION; Cloud Tasks deletes any task 31 days old, dispatched
    # or not (CreateQueue, Cloud Tasks API reference), which would lose the
    # request silently. 30 days leaves a day to spare.
    condition = can(regex("^[0-9]+(s|m|h|d)$", var.copy_max_duration)) && try(
      tonumber(regex("^[0-9]+", var.copy_max_duration)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", var.copy_max_duration)) <= 30 * 86400,
      false,
    )
    error_message = "copy_max_duration must be a number followed by s, m, h or d (e.g. 24h), at most 30 days: Cloud Tasks deletes a task 31 days old."
  }
}

variable "default_source_project" {
  description = "SOURCE_PROJECT: project of short-form source model ids. null leaves it unset."
  type        = string
  default     = null
}

variable "default_target_project" {
  description = "TARGET_PROJECT: destination project when a request names none. null leaves it unset."
  type        = string
  default     = null
}

variable "default_location" {
  description = "LOCATION: Vertex AI location of short-form source model ids. null leaves it unset."
  type        = string
  default     = null
}

variable "extra_env" {
  description = "Further plain environment variables for the worker (e.g. RUST_LOG). Must not repeat a variable the module sets."
  type        = map(string)
  default     = {}
}

# --- Cloud Run (scaling, CPU, timeouts) -----------------------------------------

variable "request_timeout_seconds" {
  description = "Cloud Run request timeout: a backstop that cuts a request that hangs. No request is held (every stage answers within 45 s), so it only has to exceed requests_ack_deadline_seconds and the queues' 60 s dispatch deadline, so that Pub/Sub and Cloud Tasks, not Cloud Run, decide when a delivery has failed (a precondition checks it)."
  type        = number
  default     = 120

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 3600
    error_message = "Cloud Run request timeouts are 1-3600 seconds."
  }
}

variable "concurrency" {
  description = "Maximum concurrent requests per instance (max_instance_request_concurrency). The handlers mostly wait on Vertex AI, Pub/Sub and Cloud Tasks, so a high value lets one instance serve a burst instead of starting more; a low one makes Cloud Run start an instance sooner. See run.tf."
  type        = number
  default     = 250

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "Cloud Run concurrency is 1-1000."
  }
}

variable "vertex_copy_rate" {
  description = "CopyModel calls a minute for the whole deployment: the rate of the copy-start queue, whatever the number of instances. It is one rate for all destination projects and regions together, so each project and region stays inside it too. Keep it inside the share of Vertex AI's long-running-operation quota the project's training and batch jobs leave (tasks.tf says how the default is derived): above it, starts are refused with 429 and wait for the queue's retries. Each start also takes reads out of vertex_read_rate."
  type        = number
  default     = 30

  validation {
    # The copy-start queue dispatches vertex_copy_rate / 60 a second, and Cloud
    # Tasks allows at most 500 a second per queue.
    condition     = var.vertex_copy_rate > 0 && var.vertex_copy_rate <= 30000
    error_message = "vertex_copy_rate must be above zero and at most 30000 a minute (the copy-start queue's 500 dispatches a second)."
  }
}

variable "vertex_read_rate" {
  description = "Vertex AI reads (GetModel, ListModelVersions, GetOperation) a minute for the whole deployment. The copy starts' own reads come out of it first; the copy-poll queue gets what they leave, which sets how soon a running copy is seen to end when many run at once (tasks.tf says how both rates are derived). The plan fails when the starts would leave nothing for polls."
  type        = number
  default     = 300

  validation {
    # The copy-poll queue dispatches at most 500 a second (Cloud Tasks'
    # limit per queue), and it gets part of this rate.
    condition     = var.vertex_read_rate > 0 && var.vertex_read_rate <= 30000
    error_message = "vertex_read_rate must be above zero and at most 30000 a minute (the copy-poll queue's 500 dispatches a second)."
  }
}

variable "max_instances" {
  description = "Upper bound of Cloud Run instances: bounds what a burst can cost. It does not pace Vertex AI (the two queues do, whatever the number of instances); when every instance is busy, Cloud Run refuses requests and Pub/Sub and Cloud Tasks deliver them again later."
  type        = number
  default     = 10

  validation {
    condition     = var.max_instances >= 1
    error_message = "max_instances must be at least 1."
  }
}

variable "min_instances" {
  description = "Minimum Cloud Run instances. 0 (scale to zero) is the design; raise only to trade cost for cold-start latency."
  type        = number
  default     = 0

  validation {
    condition     = var.min_instances >= 0
    error_message = "min_instances must not be negative."
  }
}

variable "cpu" {
  description = "vCPUs per instance."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory per instance."
  type        = string
  default     = "512Mi"
}

variable "ingress" {
  description = "Cloud Run ingress. null (the default) chooses the narrowest that works: INGRESS_TRAFFIC_INTERNAL_ONLY when nobody calls POST /v1/models/copy directly (http_invoker_service_accounts empty and publisher_can_invoke_service false), since Pub/Sub push and Cloud Tasks in the same project count as internal traffic; INGRESS_TRAFFIC_ALL otherwise, since direct callers (EC2) come from the internet. Set it to override. IAM (run.invoker) is checked either way."
  type        = string
  default     = null

  validation {
    condition     = var.ingress == null || contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], coalesce(var.ingress, "x"))
    error_message = "ingress must be null, INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  }
}

# --- The two Cloud Tasks queues (DESIGN.md §10) ------------------------------------

variable "copy_start_queue" {
  description = "Tuning of the Cloud Tasks queue that starts copies for the whole deployment (its name is names.copy_start_queue; its rate comes from vertex_copy_rate, tasks.tf). max_concurrent_dispatches: start-stage requests in flight at once; each answers within 45 s, so this bounds the pile-up when Vertex AI is slow without limiting the rate otherwise. min/max_backoff_seconds: spacing of retries after a start the worker asked to retry (Vertex AI's quota, a transient error) or could not be reached. Attempts are unlimited: the worker ends a start older than COPY_MAX_DURATION as failed. log_sampling_ratio: the share of dispatch attempts Cloud Tasks logs (0-1)."
  type = object({
    max_concurrent_dispatches = optional(number, 20)
    min_backoff_seconds       = optional(number, 10)
    max_backoff_seconds       = optional(number, 300)
    log_sampling_ratio        = optional(number, 1)
  })
  default = {}

  validation {
    condition     = var.copy_start_queue.max_concurrent_dispatches >= 1 && var.copy_start_queue.max_concurrent_dispatches <= 5000
    error_message = "copy_start_queue.max_concurrent_dispatches must be 1-5000 (Cloud Tasks' limit)."
  }

  validation {
    # At most 300 s: the alert on failing dispatches (monitoring.tf) counts on
    # a task that keeps failing being tried at least twice in 10 minutes.
    condition     = var.copy_start_queue.min_backoff_seconds >= 1 && var.copy_start_queue.min_backoff_seconds <= var.copy_start_queue.max_backoff_seconds && var.copy_start_queue.max_backoff_seconds <= 300
    error_message = "copy_start_queue: min_backoff_seconds must be at least 1 and not above max_backoff_seconds, and max_backoff_seconds at most 300 (or the alert on failing dispatches could miss a task that keeps failing)."
  }

  validation {
    condition     = var.copy_start_queue.log_sampling_ratio >= 0 && var.copy_start_queue.log_sampling_ratio <= 1
    error_message = "copy_start_queue.log_sampling_ratio must be 0-1."
  }
}

variable "copy_poll_queue" {
  description = "Tuning of the Cloud Tasks queue that follows running copies (its name is names.copy_poll_queue; its rate is what vertex_read_rate leaves after the starts' reads, tasks.tf). Each dispatch is one poll: one GetOperation, then the next poll task or the completion event, within 45 s. max_concurrent_dispatches: polls in flight at once, which bounds the pile-up when Vertex AI is slow without limiting the rate otherwise. min/max_backoff_seconds: spacing of retries of a poll that could not reach the worker or was refused; a poll that reached it answers 2xx and schedules its own next poll. Attempts are unlimited. log_sampling_ratio: the share of dispatch attempts Cloud Tasks logs (0-1); polls are frequent, so the default logs one in ten, and the alert on failing dispatches reads metrics, not logs."
  type = object({
    max_concurrent_dispatches = optional(number, 50)
    min_backoff_seconds       = optional(number, 10)
    max_backoff_seconds       = optional(number, 300)
    log_sampling_ratio        = optional(number, 0.1)
  })
  default = {}

  validation {
    condition     = var.copy_poll_queue.max_concurrent_dispatches >= 1 && var.copy_poll_queue.max_concurrent_dispatches <= 5000
    error_message = "copy_poll_queue.max_concurrent_dispatches must be 1-5000 (Cloud Tasks' limit)."
  }

  validation {
    # At most 300 s: the alert on failing dispatches (monitoring.tf) counts on
    # a task that keeps failing being tried at least twice in 10 minutes.
    condition     = var.copy_poll_queue.min_backoff_seconds >= 1 && var.copy_poll_queue.min_backoff_seconds <= var.copy_poll_queue.max_backoff_seconds && var.copy_poll_queue.max_backoff_seconds <= 300
    error_message = "copy_poll_queue: min_backoff_seconds must be at least 1 and not above max_backoff_seconds, and max_backoff_seconds at most 300 (or the alert on failing dispatches could miss a task that keeps failing)."
  }

  validation {
    condition     = var.copy_poll_queue.log_sampling_ratio >= 0 && var.copy_poll_queue.log_sampling_ratio <= 1
    error_message = "copy_poll_queue.log_sampling_ratio must be 0-1."
  }
}

variable "tasks_url" {
  description = "URL both queues' tasks call (TASKS_URL + /tasks/copy-starts or /tasks/copy-polls; also their tokens' audience). null (the default) uses the service's deterministic URL, as PUSH_AUDIENCE does (run.tf). Set it only when Cloud Run does not assign that URL (the push_audience_matches_service check warns): then use the service URL Cloud Run reports."
  type        = string
  default     = null

  validation {
    condition     = var.tasks_url == null || can(regex("^https://[^/]+$", coalesce(var.tasks_url, "x")))
    error_message = "tasks_url must be https://HOST, with no path and no trailing slash."
  }
}

# --- Upgrade from the watch-message release ------------------------------------------

variable "drain_copy_operations" {
  description = "Only for the upgrade from the release that followed copies with watch messages (README, \"Upgrading from the watch-message release\"). true keeps that release's copy-operations topic and copy-operations-push subscription and has the worker turn every watch still in flight into a poll task (COPY_OPERATIONS_DRAIN), so no running copy is lost. Set it back to false once copy-operations-push holds no undelivered message: the next apply deletes both."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Protect the Cloud Run service against terraform destroy. Set false (and apply) before destroying."
  type        = bool
  default     = true
}

# --- Authentication of pushes and direct callers ------------------------------------

variable "push_audience" {
  description = "Audience of the OIDC tokens Pub/Sub attaches to pushes. null (the default) derives the service's deterministic URL https://SERVICE-PROJECTNUMBER.REGION.run.app; a non-URL value is registered as a Cloud Run custom audience. See README: 'Push audience'."
  type        = string
  default     = null
}

variable "extra_accepted_audiences" {
  description = "Further audiences the worker accepts (PUSH_AUDIENCE is comma-separated), e.g. a custom domain in front of the service."
  type        = list(string)
  default     = []
}

variable "publisher_can_wait" {
  description = "Let the publisher service account run `copy-worker publish --wait`: create, read and delete its own temporary subscriptions on copy-completions (a custom project role plus roles/pubsub.subscriber on the copy-completions topic)."
  type        = bool
  default     = true
}

variable "waiter_project" {
  description = "Project for the waiters' temporary subscriptions on copy-completions (`copy-worker publish --wait --waiter-project`, COPY_WAITER_PROJECT). Null: the worker project, where the waiter role reaches every subscription (Pub/Sub has no IAM Conditions on names). Set it to a project of the waiters' own to keep them away from the pipeline's subscriptions."
  type        = string
  default     = null

  validation {
    condition     = var.waiter_project == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.waiter_project))
    error_message = "waiter_project must be a project id."
  }
}

variable "publisher_can_invoke_service" {
  description = "Also let the publisher service account call POST /v1/models/copy directly (the seed's REST flow from EC2, DESIGN.md §7): roles/run.invoker plus INVOKER_SERVICE_ACCOUNTS."
  type        = bool
  default     = false
}

variable "replay_impersonators" {
  description = "Members (user:..., group:..., serviceAccount:...) who may run `copy-worker replay` as the replay service account (roles/iam.serviceAccountTokenCreator on it). Empty: grant it by hand (terraform/README.md section 5)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for m in var.replay_impersonators : can(regex("^(user|group|serviceAccount|principal|principalSet):", m))])
    error_message = "replay_impersonators must be IAM members such as user:ops@example.org or group:oncall@example.org."
  }
}

variable "http_invoker_service_accounts" {
  description = "Service account emails allowed to call POST /v1/models/copy directly (DESIGN.md §7). Each gets roles/run.invoker and is listed in INVOKER_SERVICE_ACCOUNTS. Empty: only the push and tasks service accounts can invoke the service."
  type        = list(string)
  default     = []
}

# --- Vertex AI access -----------------------------------------------------------------

variable "source_projects" {
  description = "Projects whose models may be copied. The worker service account gets source_project_role and source_model_reader_role in each; with grant_vertex_service_agent_on_sources (default true), each destination project's Vertex AI service agent gets roles/aiplatform.serviceAgent in each."
  type        = list(string)
  default     = []
}

variable "destination_projects" {
  description = "Projects that models may be copied into. The worker service account gets destination_project_role in each; their Vertex AI service agents get the source-project and kms_keys grants."
  type        = list(string)
  default     = []
}

variable "source_project_role" {
  description = "Role of the worker on source projects. See iam.tf for why this is roles/aiplatform.user and how to narrow it."
  type        = string
  default     = "roles/aiplatform.user"
}

variable "source_model_reader_role" {
  description = "Role of the worker on source projects that holds aiplatform.models.get: the worker reads the source model (GetModel) to resolve its canonical name with the project number. A custom role with aiplatform.models.get also works."
  type        = string
  default     = "roles/aiplatform.viewer"
}

variable "destination_project_role" {
  description = "Role of the worker on destination projects. See iam.tf for why this is roles/aiplatform.user."
  type        = string
  default     = "roles/aiplatform.user"
}

variable "grant_vertex_service_agent_on_sources" {
  description = "For cross-project copies, grant each destination project's Vertex AI service agent (service-NUMBER@gcp-sa-aiplatform.iam.gserviceaccount.com) roles/aiplatform.serviceAgent on each source project: CopyModel reads the source model with it, and fails with PERMISSION_DENIED without it. Needs serviceusage.services.use on the destination projects (the module creates their Vertex AI service agents) and IAM admin on the source projects. Set false only where the source projects' owners grant it themselves, together with vertex_grants_managed_externally = true (the plan fails otherwise)."
  type        = bool
  default     = true
}

variable "kms_keys" {
  description = "Cloud KMS keys (projects/P/locations/L/keyRings/R/cryptoKeys/K) that copy requests may name as kms_key_name. Each destination project's Vertex AI service agent gets roles/cloudkms.cryptoKeyEncrypterDecrypter on each key; a CMEK copy fails without it. Keys must be in the destination's location."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for k in var.kms_keys : can(regex("^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", k))])
    error_message = "kms_keys must be CryptoKey resource names: projects/P/locations/L/keyRings/R/cryptoKeys/K (no /cryptoKeyVersions/ suffix)."
  }
}

variable "default_kms_keys" {
  description = "Default Cloud KMS key per destination region, region => projects/P/locations/REGION/keyRings/R/cryptoKeys/K, set as the worker's COPY_DEFAULT_KMS_KEYS (REGION=KEY, comma-separated). CopyModel keeps no encryption spec, so a copy of a source under a customer-managed key whose request names no kms_key_name is rejected (it would quietly be under Google-managed encryption) unless its destination region has a key here: then the copy is encrypted with that key. Sources under Google-managed encryption never get a default key. Each key must be in its region; the destination projects' Vertex AI service agents get encrypt/decrypt on these keys, as on kms_keys."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for region, key in var.default_kms_keys : can(regex("^projects/[^/]+/locations/${region}/keyRings/[^/]+/cryptoKeys/[^/]+$", key))])
    error_message = "default_kms_keys maps a region to a CryptoKey in that same region: { \"europe-west4\" = \"projects/P/locations/europe-west4/keyRings/R/cryptoKeys/K\" } (Vertex AI encrypts a copy only with a key in the copy's region; no /cryptoKeyVersions/ suffix)."
  }
}

variable "vertex_cmek_enabled" {
  description = "Copy requests carry kms_key_name (CMEK for the copied models, e.g. because an organisation policy requires it). With true, the plan fails unless kms_keys lists the keys (or vertex_grants_managed_externally is true)."
  type        = bool
  default     = false
}

variable "vertex_grants_managed_externally" {
  description = "The Vertex AI service-agent grants (roles/aiplatform.serviceAgent on source projects, encrypt/decrypt on the CMEK keys) are made outside this module, e.g. by the source projects' owners. Turns off the plan-time checks that would otherwise fail when grant_vertex_service_agent_on_sources is false or kms_keys is empty."
  type        = bool
  default     = false
}

# --- Optional features ----------------------------------------------------------------

variable "aws_wif" {
  description = "Workload identity federation for publishers on AWS (EC2). When enabled, the listed IAM roles of the AWS account may impersonate the publisher service account, which may only publish to copy-requests."
  type = object({
    enabled     = optional(bool, false)
    account_id  = optional(string, "")
    role_names  = optional(list(string), [])
    pool_id     = optional(string, "copy-worker-aws")
    provider_id = optional(string, "aws-ec2")
  })
  default = {}

  validation {
    condition = alltrue([
      for id in [var.aws_wif.pool_id, var.aws_wif.provider_id] :
      can(regex("^[a-z0-9-]{4,32}$", id)) && !startswith(id, "gcp-")
    ])
    error_message = "aws_wif.pool_id and provider_id must be 4-32 lowercase letters, digits or hyphens, not starting with gcp-."
  }

  validation {
    condition     = !var.aws_wif.enabled || (can(regex("^[0-9]{12}$", var.aws_wif.account_id)) && length(var.aws_wif.role_names) > 0)
    error_message = "With aws_wif.enabled, account_id must be the 12-digit AWS account id and role_names must list at least one IAM role name."
  }

  validation {
    condition     = alltrue([for r in var.aws_wif.role_names : can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", r))])
    error_message = "aws_wif.role_names are IAM role names (not ARNs, no path), e.g. \"ec2-nightly-pipeline\"."
  }
}

variable "completion_subscriptions" {
  description = "Fan-out subscriptions on copy-completions, keyed by subscription name. Usually each downstream consumer owns its subscription; this creates them for consumers that live with the worker. filter is immutable: changing it recreates the subscription. A push subscription (push_endpoint) needs push_service_account_email (the OIDC token the receiver checks) and dead-letters after max_delivery_attempts into a topic and pull subscription of its own, named KEY-dead-letter."
  type = map(object({
    filter                     = optional(string)
    push_endpoint              = optional(string)
    push_service_account_email = optional(string)
    push_audience              = optional(string)
    ack_deadline_seconds       = optional(number, 60)
    message_retention_duration = optional(string, "604800s")
    minimum_backoff_seconds    = optional(number, 10)
    maximum_backoff_seconds    = optional(number, 600)
    subscriber_members         = optional(list(string), [])
    subscribe_publisher        = optional(bool, false)
    max_delivery_attempts      = optional(number, 10)
  }))
  default = {}

  validation {
    condition = alltrue([
      for k, s in var.completion_subscriptions :
      s.push_endpoint == null || startswith(coalesce(s.push_endpoint, "x"), "https://")
    ])
    error_message = "completion_subscriptions[*].push_endpoint must be an https:// URL."
  }

  validation {
    condition = alltrue([
      for k, s in var.completion_subscriptions :
      (s.push_service_account_email == null) == (s.push_endpoint == null)
    ])
    error_message = "completion_subscriptions[*]: push_endpoint and push_service_account_email go together: every push carries an OIDC token of that account, which the receiver checks (and push_service_account_email alone makes no sense)."
  }

  validation {
    condition = alltrue([
      for k, s in var.completion_subscriptions : s.max_delivery_attempts >= 5 && s.max_delivery_attempts <= 100
    ])
    error_message = "completion_subscriptions[*].max_delivery_attempts must be 5-100 (Pub/Sub's dead-letter policy limits)."
  }
}

variable "callback_allowed_hosts" {
  description = "CALLBACK_ALLOWED_HOSTS: hosts that callback_url may point to. Empty: callbacks are disabled."
  type        = list(string)
  default     = []
}

variable "callback_signing_secret_id" {
  description = "Secret Manager secret (ID or projects/P/secrets/S) holding CALLBACK_SIGNING_SECRET. The worker gets secretAccessor on it. null: callbacks are not signed."
  type        = string
  default     = null
}

variable "pubsub_kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the worker's topics. null: Google-managed encryption. The module grants the Pub/Sub service agent encrypt/decrypt on it."
  type        = string
  default     = null
}

variable "pubsub_allowed_persistence_regions" {
  description = "Regions where Pub/Sub may store messages of the worker's topics (message storage policy). Empty: no restriction."
  type        = list(string)
  default     = []
}

variable "artifact_registry_kms_key_name" {
  description = "Cloud KMS key in the repository's region for the Artifact Registry repository. null: Google-managed encryption. The module grants the Artifact Registry service agent encrypt/decrypt on it. Immutable: changing it recreates the repository."
  type        = string
  default     = null
}

variable "artifact_keep_recent_versions" {
  description = "Image versions the repository's cleanup policy always keeps (rollback targets). Untagged images older than 30 days beyond these are deleted."
  type        = number
  default     = 20

  validation {
    condition     = var.artifact_keep_recent_versions >= 1
    error_message = "Keep at least one image version."
  }
}

# --- Monitoring (monitoring.tf) ----------------------------------------------------------

variable "monitoring_enabled" {
  description = "Create the log-based metrics, alert policies and dashboard of monitoring.tf in project_id."
  type        = bool
  default     = true
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/ID) that every alert policy notifies. Empty: incidents open in the console only."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", c))])
    error_message = "notification_channels must be full names: projects/P/notificationChannels/ID."
  }
}

variable "alert_requests_oldest_unacked_seconds" {
  description = "Alert when the oldest unacked message on copy-requests-push is older than this: requests are not being started (worker down, pushes refused for their token, Vertex quota)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_requests_oldest_unacked_seconds >= 60
    error_message = "alert_requests_oldest_unacked_seconds must be at least 60."
  }
}

variable "alert_callbacks_oldest_unacked_seconds" {
  description = "Alert when the oldest unacked message on copy-callbacks-push is older than this: webhook callbacks are not being delivered (receiver down or slow, pushes refused for their token)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_callbacks_oldest_unacked_seconds >= 60
    error_message = "alert_callbacks_oldest_unacked_seconds must be at least 60."
  }
}

variable "log_metric_propagation_seconds" {
  description = "How long the first apply waits between creating the log-based metrics and creating the alert policy that filters on one: Cloud Monitoring may take up to 10 minutes to know a new log-based metric, and the policy fails with 404 before then (monitoring.tf). Waited only when the metrics are created or replaced."
  type        = number
  default     = 600

  validation {
    condition     = var.log_metric_propagation_seconds >= 0 && var.log_metric_propagation_seconds <= 1800
    error_message = "log_metric_propagation_seconds must be 0-1800."
  }
}

variable "alert_copy_start_queue_depth" {
  description = "Alert when the copy-start queue holds more than this many tasks for 15 minutes: copies wait longer to start than you planned for. The default is an hour of starts at the default vertex_copy_rate."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_copy_start_queue_depth >= 1
    error_message = "alert_copy_start_queue_depth must be at least 1."
  }
}

variable "alert_failed_completions_threshold" {
  description = "Alert when more than this many copies end as failed within 10 minutes. 0: any failed copy opens an incident."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_failed_completions_threshold >= 0
    error_message = "alert_failed_completions_threshold must not be negative."
  }
}
