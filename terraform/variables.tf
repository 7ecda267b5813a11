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
  description = "Names of everything the module creates. The topic and subscription defaults are the contract of DESIGN.md §2; override only to run several copies of the topology in one project."
  type = object({
    service                   = optional(string, "copy-worker")
    artifact_repository       = optional(string, "copy-worker")
    worker_service_account    = optional(string, "copy-worker")
    push_service_account      = optional(string, "copy-worker-push")
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
      for n in [var.names.worker_service_account, var.names.push_service_account, var.names.publisher_service_account, var.names.replay_service_account] :
      can(regex("^[a-z]([a-z0-9-]{4,28}[a-z0-9])$", n))
    ])
    error_message = "Service account IDs must be 6-30 characters of lowercase letters, digits and hyphens, starting with a letter."
  }

  validation {
    # Cloud Tasks queue IDs: letters, digits and hyphens, at most 100 characters.
    condition     = can(regex("^[A-Za-z0-9-]{1,100}$", var.names.copy_start_queue))
    error_message = "names.copy_start_queue must be 1-100 letters, digits or hyphens (a Cloud Tasks queue ID)."
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
  description = "Ack deadline of copy-requests-push. The request stage only starts a copy and publishes a watch message."
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

variable "operations_ack_deadline_seconds" {
  description = "Ack deadline of copy-operations-push, also passed to the worker as COPY_OPERATIONS_ACK_DEADLINE: every watch delivery answers within it, counted from its arrival (DESIGN.md §4). Must exceed watch_hold_seconds (a precondition checks it)."
  type        = number
  default     = 300

  validation {
    condition     = var.operations_ack_deadline_seconds >= 10 && var.operations_ack_deadline_seconds <= 600
    error_message = "Pub/Sub ack deadlines are 10-600 seconds."
  }
}

variable "operations_min_backoff_seconds" {
  description = "Minimum redelivery backoff of copy-operations-push. It spaces only refused watch deliveries (503, or 429 at shutdown); in the steady state a watch continues as new with 204 and the worker's own polling is the clock."
  type        = number
  default     = 10

  validation {
    condition     = var.operations_min_backoff_seconds >= 0 && var.operations_min_backoff_seconds <= 600
    error_message = "Pub/Sub retry backoffs are 0-600 seconds."
  }
}

variable "operations_max_backoff_seconds" {
  description = "Maximum redelivery backoff of copy-operations-push."
  type        = number
  default     = 60

  validation {
    condition     = var.operations_max_backoff_seconds >= 0 && var.operations_max_backoff_seconds <= 600
    error_message = "Pub/Sub retry backoffs are 0-600 seconds."
  }
}

variable "message_retention_duration" {
  description = "How long the worker's subscriptions keep unacked messages (seconds with an 's' suffix). Must stay above COPY_MAX_DURATION, or a long copy's watch message expires before the worker gives up on it."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.message_retention_duration)) && try(tonumber(trimsuffix(var.message_retention_duration, "s")) >= 600 && tonumber(trimsuffix(var.message_retention_duration, "s")) <= 604800, false)
    error_message = "message_retention_duration must be \"<seconds>s\" between 600s and 604800s (7 days)."
  }
}

# --- Worker behaviour (DESIGN.md §5) ---------------------------------------------

variable "watch_hold_seconds" {
  description = "WATCH_HOLD: how long one watch delivery may poll the operation in-request before handing the watch on as a new message (continue-as-new) and acking. Must stay below operations_ack_deadline_seconds (COPY_OPERATIONS_ACK_DEADLINE): a precondition in run.tf fails the plan otherwise, and the worker refuses to start."
  type        = number
  default     = 240

  validation {
    # The upper bound that matters is the ack deadline (run.tf precondition;
    # a variable's validation may not read another variable before Terraform
    # 1.9). 600 s is the longest ack deadline Pub/Sub allows.
    condition     = var.watch_hold_seconds >= 0 && var.watch_hold_seconds < 600
    error_message = "watch_hold_seconds must be 0-599, and below operations_ack_deadline_seconds."
  }
}

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
  description = "COPY_MAX_DURATION: give up on an operation after this long (e.g. 24h, 90m). Keep it below message_retention_duration."
  type        = string
  default     = "24h"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.copy_max_duration))
    error_message = "copy_max_duration must be a number followed by s, m, h or d, e.g. 24h."
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
  description = "Cloud Run request timeout. Must exceed the longest ack deadline, so that Pub/Sub's deadline, not Cloud Run, decides when a delivery has failed."
  type        = number
  default     = 360

  validation {
    condition     = var.request_timeout_seconds >= 1 && var.request_timeout_seconds <= 3600
    error_message = "Cloud Run request timeouts are 1-3600 seconds."
  }
}

variable "concurrency" {
  description = "Maximum concurrent requests per instance (max_instance_request_concurrency). Sized for held watches: about 35 KiB each (measured: 1,000 held watches took a release worker from 13.2 to 47.5 MiB VmRSS), so 250 add about 9 MiB to a 512Mi instance. See run.tf."
  type        = number
  default     = 250

  validation {
    condition     = var.concurrency >= 1 && var.concurrency <= 1000
    error_message = "Cloud Run concurrency is 1-1000."
  }
}

variable "vertex_copy_rate" {
  description = "CopyModel calls a minute for the whole deployment (VERTEX_COPY_RATE). The copy-start queue dispatches at this rate / 60 a second, whatever the number of instances; the queue has one rate, so it holds for all destination projects and regions together, which keeps each project and region inside it too. Vertex AI's default quota is 60 long-running-operation submissions a minute per project and region, shared with training and batch jobs; the default leaves half to them."
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
  description = "Vertex AI reads (GetOperation, GetModel, ListModelVersions) a minute per region for the whole deployment (VERTEX_READ_RATE). The default quota is 600 resource-management requests a minute per project and region; the default leaves half to the rest of the project."
  type        = number
  default     = 300

  validation {
    condition     = var.vertex_read_rate > 0
    error_message = "vertex_read_rate must be above zero."
  }
}

variable "max_instances" {
  description = "Upper bound of Cloud Run instances. Also passed to the worker as WORKER_INSTANCES: each instance takes 1/max_instances of vertex_read_rate (and of vertex_copy_rate for the copies it restarts from its own budget), so reads stay inside the rate with no shared state. Copy starts are paced by the copy-start queue, whatever the number of instances. Pub/Sub backs off when all instances are busy."
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

# --- The copy-start queue (Cloud Tasks, DESIGN.md §10) ---------------------------

variable "copy_start_queue" {
  description = "Tuning of the Cloud Tasks queue that starts copies for the whole deployment (its name is names.copy_start_queue; its rate is vertex_copy_rate / 60 a second). max_concurrent_dispatches: start-stage requests in flight at once (each answers within 45 s). min/max_backoff_seconds: spacing of retries after a refused start (503: Vertex AI quota or a transient error). Attempts are unlimited: the worker ends a start older than COPY_MAX_DURATION as failed. log_sampling_ratio: the share of dispatch attempts Cloud Tasks logs (0-1)."
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
    condition     = var.copy_start_queue.min_backoff_seconds >= 1 && var.copy_start_queue.min_backoff_seconds <= var.copy_start_queue.max_backoff_seconds
    error_message = "copy_start_queue: min_backoff_seconds must be at least 1 and not above max_backoff_seconds."
  }

  validation {
    condition     = var.copy_start_queue.log_sampling_ratio >= 0 && var.copy_start_queue.log_sampling_ratio <= 1
    error_message = "copy_start_queue.log_sampling_ratio must be 0-1."
  }
}

variable "copy_start_url" {
  description = "URL the copy-start tasks call (COPY_START_URL + /tasks/copy-starts; also their tokens' audience). null (the default) uses the service's deterministic URL, as PUSH_AUDIENCE does (run.tf). Set it only when Cloud Run does not assign that URL (the push_audience_matches_service check warns): then use the service URL Cloud Run reports."
  type        = string
  default     = null

  validation {
    condition     = var.copy_start_url == null || can(regex("^https://[^/]+$", coalesce(var.copy_start_url, "x")))
    error_message = "copy_start_url must be https://HOST, with no path and no trailing slash."
  }
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
  description = "Service account emails allowed to call POST /v1/models/copy directly (DESIGN.md §7). Each gets roles/run.invoker and is listed in INVOKER_SERVICE_ACCOUNTS. Empty: only the push service account can invoke the service."
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
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for the five topics. null: Google-managed encryption. The module grants the Pub/Sub service agent encrypt/decrypt on it."
  type        = string
  default     = null
}

variable "pubsub_allowed_persistence_regions" {
  description = "Regions where Pub/Sub may store messages of the five topics (message storage policy). Empty: no restriction."
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
  description = "Alert when the oldest unacked message on copy-requests-push is older than this: requests are not being started (worker down, 401/403 on push, Vertex quota)."
  type        = number
  default     = 1800

  validation {
    condition     = var.alert_requests_oldest_unacked_seconds >= 60
    error_message = "alert_requests_oldest_unacked_seconds must be at least 60."
  }
}

variable "alert_operations_oldest_unacked_seconds" {
  description = "Alert when the oldest unacked watch message on copy-operations-push is older than this: a copy is not being followed, or runs longer than expected."
  type        = number
  default     = 3600

  validation {
    condition     = var.alert_operations_oldest_unacked_seconds >= 60
    error_message = "alert_operations_oldest_unacked_seconds must be at least 60."
  }
}

variable "alert_callbacks_oldest_unacked_seconds" {
  description = "Alert when the oldest unacked message on copy-callbacks-push is older than this: webhook callbacks are not being delivered (receiver down or slow, 401/403 on push)."
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
  description = "Alert when the copy-start queue holds more than this many tasks for 15 minutes: copies are waiting longer than planned to start. Default: an hour of starts at the default vertex_copy_rate (30 a minute)."
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
