# Identities and every IAM grant of the topology. All grants are additive
# (_iam_member), so the module never removes bindings it does not own.
#
#   worker     runs the Cloud Run service: Vertex AI copies, queues the
#              copy-start and poll tasks, publishes completions and dead letters
#   push       only signs Pub/Sub's push tokens; its sole power is invoking
#              the worker service, whose /pubsub/* routes accept it
#   tasks      only signs the two queues' task tokens; its sole power is
#              invoking the worker service, whose /tasks/* routes accept it
#   publisher  what callers (EC2 via WIF, Airflow) use: publish to
#              copy-requests, nothing else
#   replay     what operators run `copy-worker replay` as: read
#              copy-dead-letter-replay, republish to copy-requests and
#              copy-callbacks, nothing else
#   Pub/Sub service agent (Google-managed): mints push tokens, dead-letters

# --- Service agents ---------------------------------------------------------------
# Google creates a service agent only when its API is enabled *and used* ("If
# a service agent hasn't been created yet, then you can't grant roles to the
# service agent", cloud.google.com/iam/docs/create-service-agents): in a fresh
# project the grants below would fail with "Service account ... does not
# exist", or race the first topic or repository. google_project_service_identity
# (serviceusage v1beta1 generateServiceIdentity, what `gcloud beta services
# identity create` calls) creates the agent, idempotently, and returns it;
# every grant uses its `member`, so it waits for the agent. It is a
# google-beta resource in provider 6.x. Destroying it is a no-op: the agent
# stays with the project.
#
# "Service agents that are created at a user's request aren't automatically
# granted roles" (same page): an agent Google creates on first use gets its
# service-agent role on the project, one created on request does not, so the
# module grants that role itself (a no-op where Google already did).
# `copy-worker doctor` looks for exactly this binding. A destroy would remove
# these bindings too, and other workloads rely on them: terraform/README.md
# section 10 takes them out of the state first.

locals {
  service_agent_roles = {
    "pubsub.googleapis.com"           = "roles/pubsub.serviceAgent"
    "artifactregistry.googleapis.com" = "roles/artifactregistry.serviceAgent"
    # Mints the OIDC tokens of the copy-start and poll tasks (tasks.tf).
    "cloudtasks.googleapis.com" = "roles/cloudtasks.serviceAgent"
  }
}

resource "google_project_service_identity" "agents" {
  provider = google-beta
  for_each = local.service_agent_roles

  project = var.project_id
  service = each.key

  depends_on = [google_project_service.enabled]

  # generateServiceIdentity answers without an email for some services and
  # while an agent is still being created; every grant below would then name
  # an empty member and fail far from the cause.
  lifecycle {
    postcondition {
      condition     = self.email != null && self.email != ""
      error_message = "The service agent of ${each.key} came back without an email: apply again in a minute (a new agent takes a moment), or create it with `gcloud beta services identity create --service=${each.key} --project=${var.project_id}`."
    }
  }
}

# A service agent created a moment ago is not yet known everywhere in IAM, and
# a grant to it can fail with "does not exist" for a short while. Every grant
# to an agent reads its member through this sleep's triggers (the chaining
# hashicorp/time documents for time_sleep), so it waits 30 s after the agents
# are created; later applies do not wait (the triggers do not change).
resource "time_sleep" "service_agents_visible" {
  create_duration = "30s"

  triggers = merge(
    { for s, agent in google_project_service_identity.agents : s => agent.member },
    { for p, agent in google_project_service_identity.vertex : "vertex|${p}" => agent.member },
  )
}

resource "google_project_iam_member" "service_agent_roles" {
  #checkov:skip=CKV_GCP_49:Google-managed service agents getting the service-agent role Google grants them when it creates them itself; never a user-managed identity.
  for_each = local.service_agent_roles

  project = var.project_id
  role    = each.value
  member  = time_sleep.service_agents_visible.triggers[each.key]
}

# --- Service accounts -------------------------------------------------------------

resource "google_service_account" "worker" {
  project      = var.project_id
  account_id   = local.names.worker_service_account
  display_name = "copy-worker service (Cloud Run)"
  description  = "Runs copy-worker: starts Vertex AI model copies, queues copy-start and poll tasks, publishes completion and dead-letter messages."
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = local.names.push_service_account
  display_name = "copy-worker push invoker"
  description  = "Identity of Pub/Sub push deliveries to copy-worker (OIDC). Holds only roles/run.invoker on the worker service."
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = local.names.tasks_service_account
  display_name = "copy-worker task invoker"
  description  = "Identity of the copy-start and copy-poll queues' tasks to copy-worker (OIDC). Holds only roles/run.invoker on the worker service; the worker accepts it on /tasks/* only."
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "replay" {
  project      = var.project_id
  account_id   = local.names.replay_service_account
  display_name = "copy-worker replay"
  description  = "Runs `copy-worker replay`: reads copy-dead-letter-replay, republishes to copy-requests and copy-callbacks. Impersonated by operators."
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "publisher" {
  project      = var.project_id
  account_id   = local.names.publisher_service_account
  display_name = "copy-worker request publisher"
  description  = "Publishes copy requests to copy-requests; impersonated by EC2 through workload identity federation."
  depends_on   = [google_project_service.enabled]
}

# --- Pub/Sub service agent (DESIGN.md §2) ----------------------------------------------
# Without these three grants nothing fails at apply time; pushes and
# dead-lettering just silently do not work.

# Mint OIDC tokens as the push service account for every push delivery.
# (Required for projects created before 2021-04-08, harmless after.)
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent_member
  depends_on         = [google_project_service.enabled]
}

# Forward undeliverable requests to the dead-letter topic...
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  project    = var.project_id
  topic      = google_pubsub_topic.topic["dead_letter"].name
  role       = "roles/pubsub.publisher"
  member     = local.pubsub_agent_member
  depends_on = [google_project_service.enabled]
}

# ...and acknowledge them on the source subscriptions once forwarded.
resource "google_pubsub_subscription_iam_member" "pubsub_agent_requests_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.requests_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent_member
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_callbacks_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.callbacks_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent_member
}

# Token creator on the OIDC accounts of push fan-out subscriptions that live
# in this project's module configuration (consumers' own accounts).
resource "google_service_account_iam_member" "pubsub_agent_token_creator_completions" {
  for_each = toset([
    for k, s in var.completion_subscriptions : s.push_service_account_email if s.push_service_account_email != null
  ])

  # "projects/-": IAM finds the account by its email, whichever project it
  # lives in (consumers' accounts are often elsewhere, and not every account
  # email names its project).
  service_account_id = "projects/-/serviceAccounts/${each.value}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent_member
  depends_on         = [google_project_service.enabled]
}

# Dead-lettering of the push fan-out subscriptions on copy-completions
# (pubsub.tf): publisher on each one's dead-letter topic, subscriber on the
# subscription itself.
resource "google_pubsub_topic_iam_member" "pubsub_agent_completions_dead_letter_publisher" {
  for_each = local.completion_push_subscriptions

  project = var.project_id
  topic   = google_pubsub_topic.completions_dead_letter[each.key].name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent_member
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_completions_subscriber" {
  for_each = local.completion_push_subscriptions

  project      = var.project_id
  subscription = google_pubsub_subscription.completions[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent_member
}

# --- Worker: Pub/Sub ---------------------------------------------------------------------
# Topic-level grants only, never project-wide roles/pubsub.*:
#   completions  completion events
#   dead_letter  dead-letter messages of rejected and failed requests
#   requests     POST /v1/models/copy publishes requests
#   callbacks    webhook callbacks (posted by their own push stage)
#   operations   only while an upgrade drains copy-operations
#                (var.drain_copy_operations): a revision of the previous
#                release still holding a watch hands it on there before it
#                stops. The key is the previous release's, so the grant is
#                kept, not removed and re-added, by the upgrade's first apply.

locals {
  worker_publishes_to = merge(
    { for k in ["completions", "dead_letter", "requests", "callbacks"] : k => google_pubsub_topic.topic[k].name },
    { for t in google_pubsub_topic.operations_drain : "operations" => t.name },
  )
}

resource "google_pubsub_topic_iam_member" "worker_publisher" {
  for_each = local.worker_publishes_to

  project = var.project_id
  topic   = each.value
  role    = "roles/pubsub.publisher"
  member  = google_service_account.worker.member
}

# --- Replay: its own account (DESIGN.md §6) --------------------------------------------
# `copy-worker replay` pulls copy-dead-letter-replay and republishes to
# copy-requests (or, with --callbacks, copy-callbacks). It runs as an account of
# its own that can do exactly that: operators impersonate it
# (replay_impersonators, terraform/README.md section 5), so replaying never
# needs the worker's Vertex AI roles or its publisher rights on the other
# topics. (Its check that the target topic exists needs pubsub.topics.get,
# which publisher does not hold; replay then lets the first republish be the
# check.)
resource "google_pubsub_subscription_iam_member" "replay_dead_letter_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.dead_letter_replay.name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.replay.member
}

resource "google_pubsub_topic_iam_member" "replay_publisher" {
  for_each = toset(["requests", "callbacks"])

  project = var.project_id
  topic   = google_pubsub_topic.topic[each.key].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.replay.member
}

# Who may run replay as that account.
resource "google_service_account_iam_member" "replay_impersonators" {
  for_each = toset(var.replay_impersonators)

  service_account_id = google_service_account.replay.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}

# --- Worker: Vertex AI --------------------------------------------------------------------
# CopyModel is called on the destination (parent = projects/DST/locations/L)
# and reads the source model:
#   destination: aiplatform.models.upload (the copy creates a model or a
#                version), aiplatform.models.get / .list (ALREADY_EXISTS
#                resolution, listVersions for parent_model) and
#                aiplatform.operations.get (poll stage);
#   source:      aiplatform.models.get on the source model.
# There is no predefined role narrower than roles/aiplatform.user that holds
# models.upload, so the destination needs it. On the source side,
# roles/aiplatform.viewer holds models.get, but Vertex AI does not document
# which permissions CopyModel checks on the source, so the default is the role
# Google documents for copies; narrow source_project_role to
# roles/aiplatform.viewer (or a custom role with aiplatform.models.get) after
# a test copy in your organisation. Both are granted per project, never
# organisation-wide.

# The worker also reads the source model itself (GetModel): it resolves the
# canonical name, with the project number, of the model it copies (DESIGN.md
# §10). That needs aiplatform.models.get on each source project, granted
# separately (source_model_reader_role, default roles/aiplatform.viewer) so
# that narrowing source_project_role never takes it away.

locals {
  vertex_grants = merge(
    { for p in var.source_projects : "${p}|${var.source_project_role}" => { project = p, role = var.source_project_role } },
    { for p in var.source_projects : "${p}|${var.source_model_reader_role}" => { project = p, role = var.source_model_reader_role } },
    { for p in var.destination_projects : "${p}|${var.destination_project_role}" => { project = p, role = var.destination_project_role } },
  )
}

resource "google_project_iam_member" "worker_vertex" {
  for_each = local.vertex_grants

  project = each.value.project
  role    = each.value.role
  member  = google_service_account.worker.member
}

# --- Vertex AI service agents of the destination projects ----------------------------------
# CopyModel runs in the destination project (parent = projects/DST/...) and
# Vertex AI does the work as that project's service agent,
# service-DSTNUMBER@gcp-sa-aiplatform.iam.gserviceaccount.com:
#
#   * Cross-project copies: the agent reads the source model, so it needs the
#     Vertex AI Service Agent role (roles/aiplatform.serviceAgent) on the
#     source project. Vertex AI documents this in "Copy a model in Vertex AI
#     Model Registry" (https://cloud.google.com/vertex-ai/docs/model-registry/copy-model,
#     "Copy models between projects", prerequisites) and in the CopyModel
#     reference: the account doing the copy "must belong to the destination
#     project ... and have the Vertex AI Service Agent role in the source
#     project" (CopyModelRequest.custom_service_account, which defaults to
#     the Vertex AI service agent). Without it the operation fails with
#     PERMISSION_DENIED. On by default whenever source_projects is set.
#
#     Why not narrower. Nothing narrower is documented: both pages name this
#     role on the source project, for the service agent and for a custom
#     service account alike, and neither lists the permissions CopyModel
#     checks there, so a predefined role such as roles/aiplatform.viewer or a
#     custom role with aiplatform.models.get only would be a guess, found
#     wrong only by a failing copy. custom_service_account narrows who holds
#     the role (an account used only for copies instead of the agent every
#     Vertex AI job of the destination project runs as), not the role itself;
#     the worker does not set it (it would need an account per destination
#     project and actAs on each). Organisations that verified a narrower role can set
#     grant_vertex_service_agent_on_sources = false with
#     vertex_grants_managed_externally = true and grant it themselves.
#   * CMEK copies (kms_key_name, or the region's key in default_kms_keys):
#     the agent encrypts the copy, so it needs
#     roles/cloudkms.cryptoKeyEncrypterDecrypter on the key
#     (https://cloud.google.com/vertex-ai/docs/general/cmek).
#
# The agent exists only once aiplatform.googleapis.com is enabled in the
# destination project *and used*; in a project that never used Vertex AI the
# grants would fail. google_project_service_identity creates it (it needs
# aiplatform.googleapis.com enabled there, README pre-flight 5, and
# serviceusage.services.use on the project) and returns its member, so no
# project has to be read at plan time.

resource "google_project_service_identity" "vertex" {
  provider = google-beta
  for_each = toset(var.destination_projects)

  project = each.value
  service = "aiplatform.googleapis.com"

  lifecycle {
    postcondition {
      condition     = self.email != null && self.email != ""
      error_message = "The Vertex AI service agent of ${each.value} came back without an email: check that aiplatform.googleapis.com is enabled there (README step 0.2), then apply again."
    }
  }
}

# Its service-agent role in its own project, which an agent created on
# request does not get by itself (see "Service agents" above).
resource "google_project_iam_member" "vertex_agent_on_destination" {
  #checkov:skip=CKV_GCP_49:Google-managed Vertex AI service agent getting the role Google grants it in its own project when it creates the agent itself.
  for_each = toset(var.destination_projects)

  project = each.key
  role    = "roles/aiplatform.serviceAgent"
  member  = local.vertex_agents[each.key]
}

locals {
  vertex_agents = {
    for p in var.destination_projects : p => time_sleep.service_agents_visible.triggers["vertex|${p}"]
  }

  # Source/destination pairs that are different projects: the copies that
  # need the service-agent grant. Computed from the variables alone, so the
  # preconditions below can check them without reading any project.
  cross_project_pairs = [
    for pair in setproduct(var.source_projects, var.destination_projects) : pair if pair[0] != pair[1]
  ]

  vertex_agent_grants = var.grant_vertex_service_agent_on_sources ? {
    for pair in local.cross_project_pairs : "${pair[0]}|${pair[1]}" => {
      source = pair[0]
      agent  = local.vertex_agents[pair[1]]
    }
  } : {}

  # The keys copies may be encrypted with: those requests name, and the
  # default key of each destination region (COPY_DEFAULT_KMS_KEYS).
  vertex_kms_keys = distinct(concat(var.kms_keys, values(var.default_kms_keys)))

  vertex_agent_kms_grants = {
    for pair in setproduct(local.vertex_kms_keys, var.destination_projects) : "${pair[0]}|${pair[1]}" => {
      key   = pair[0]
      agent = local.vertex_agents[pair[1]]
    }
  }
}

resource "google_project_iam_member" "vertex_agent_on_source" {
  #checkov:skip=CKV_GCP_49:Google-managed Vertex AI service agent getting the service-agent role Vertex documents for cross-project CopyModel; never granted to a user-managed identity.
  for_each = local.vertex_agent_grants

  project = each.value.source
  role    = "roles/aiplatform.serviceAgent"
  member  = each.value.agent
}

resource "google_kms_crypto_key_iam_member" "vertex_agent_kms" {
  for_each = local.vertex_agent_kms_grants

  crypto_key_id = each.value.key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value.agent
}

# Plan-time checks: fail before apply when a grant that copies need would be
# missing, instead of failing every copy later with PERMISSION_DENIED.
resource "terraform_data" "vertex_grants_preflight" {
  input = {
    cross_project_pairs = length(local.cross_project_pairs)
    kms_keys            = length(local.vertex_kms_keys)
  }

  lifecycle {
    precondition {
      condition     = var.grant_vertex_service_agent_on_sources || var.vertex_grants_managed_externally || length(local.cross_project_pairs) == 0
      error_message = "source_projects and destination_projects include cross-project copies, but grant_vertex_service_agent_on_sources = false: each destination project's Vertex AI service agent needs roles/aiplatform.serviceAgent on each source project, or CopyModel fails with PERMISSION_DENIED. Set grant_vertex_service_agent_on_sources = true, or set vertex_grants_managed_externally = true once the source projects' owners have granted it (terraform/README.md pre-flight 5)."
    }
    precondition {
      condition     = !var.vertex_cmek_enabled || var.vertex_grants_managed_externally || length(var.kms_keys) > 0
      error_message = "vertex_cmek_enabled = true but kms_keys is empty: the destination projects' Vertex AI service agents need roles/cloudkms.cryptoKeyEncrypterDecrypter on every key that requests name as kms_key_name, or CMEK copies fail. List the keys in kms_keys, or set vertex_grants_managed_externally = true once the keys' owners have granted it."
    }
    precondition {
      condition     = length(local.vertex_kms_keys) == 0 || length(var.destination_projects) > 0
      error_message = "kms_keys or default_kms_keys is set but destination_projects is empty: the key grants go to the destination projects' Vertex AI service agents. List the projects that CMEK copies go into in destination_projects."
    }
  }
}

# --- Worker: callback signing secret ---------------------------------------------------------

resource "google_secret_manager_secret_iam_member" "worker_callback_secret" {
  count = local.callback_secret == null ? 0 : 1

  secret_id = local.callback_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.worker.member
}

# --- Publisher ------------------------------------------------------------------------------
# May publish to copy-requests and nothing else. WIF principals (wif.tf) and
# any other caller impersonate this account.

resource "google_pubsub_topic_iam_member" "publisher_requests" {
  project = var.project_id
  topic   = google_pubsub_topic.topic["requests"].name
  role    = "roles/pubsub.publisher"
  member  = google_service_account.publisher.member
}

# `copy-worker publish --wait` reads through a temporary subscription of its own
# on copy-completions, copy-worker-wait-<tag> (filtered to its waiter tag,
# labelled copy-worker-waiter=<tag> and expires=<unix seconds>, deleted on
# exit), and first sweeps the expired ones a dead waiter left (DESIGN.md §6):
#   create          its subscription (checked on the project)
#   get, consume    read it
#   delete          delete it on exit, and expired ones in the sweep
#   list            find expired ones (checked on the project)
#   update          move a kept subscription's `expires` label
# and attach them to copy-completions only (below).
#
# What this cannot be narrowed to. The waiter's subscriptions are created on
# the fly in the worker project, so a grant on each is impossible, and the only
# documented way to confine a project-level grant to some resources by name,
# an IAM Condition on resource.name, does not work for Pub/Sub: resource
# attributes "are available for the Google Cloud services and resource types
# that are listed" on cloud.google.com/iam/docs/conditions-resource-attributes
# ("Other services and resource types do not recognize resource attributes"),
# and that list has pubsublite.googleapis.com but not pubsub.googleapis.com.
# A condition such as
#   resource.name.startsWith("projects/P/subscriptions/copy-worker-wait-")
# would therefore not confine this role (and list and create are checked on
# the project, never on a subscription name). So the role is unconditioned,
# and it reaches every subscription in the project, the worker's pipeline
# subscriptions included: a caller holding it can delete copy-requests-push
# or read copy-dead-letter-replay. Where the publisher's callers are not
# trusted that far, either set waiter_project: the waiters' subscriptions
# then live in that project (a subscription may be in another project than its
# topic), this role is granted there, and in the worker project the publisher
# keeps only attachSubscription on copy-completions (`copy-worker publish
# --wait` reads COPY_WAITER_PROJECT, output waiter_project); or set
# publisher_can_wait = false and wait on a shared subscription instead
# (--completions-subscription, completion_subscriptions with
# subscribe_publisher), which needs no project-level Pub/Sub permission at all
# (terraform/README.md section 3).
locals {
  # Where the waiters' subscriptions live (variable waiter_project).
  waiter_project = coalesce(var.waiter_project, var.project_id)
}

resource "google_project_iam_custom_role" "completions_waiter" {
  count = var.publisher_can_wait ? 1 : 0

  project     = local.waiter_project
  role_id     = local.names.waiter_role_id
  title       = "copy-worker completions waiter"
  description = "copy-worker publish --wait: its own temporary subscriptions on copy-completions, and the sweep of expired ones."
  permissions = [
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.get",
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.list",
    "pubsub.subscriptions.update",
  ]

  # Custom roles are an IAM API resource: wait for iam.googleapis.com.
  depends_on = [google_project_service.enabled, google_project_service.waiter_pubsub]
}

# The waiters' own project needs the Pub/Sub API for the subscriptions it holds.
resource "google_project_service" "waiter_pubsub" {
  count = var.publisher_can_wait && var.waiter_project != null ? 1 : 0

  project            = var.waiter_project
  service            = "pubsub.googleapis.com"
  disable_on_destroy = false
}

resource "google_project_iam_member" "publisher_waiter" {
  count = var.publisher_can_wait ? 1 : 0

  project = local.waiter_project
  role    = google_project_iam_custom_role.completions_waiter[0].name
  member  = google_service_account.publisher.member
}

# pubsub.topics.attachSubscription on copy-completions (and on no other topic).
resource "google_pubsub_topic_iam_member" "publisher_attach_completions" {
  count = var.publisher_can_wait ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.topic["completions"].name
  role    = "roles/pubsub.subscriber"
  member  = google_service_account.publisher.member
}

# `copy-worker publish --wait --completions-subscription S` pulls a shared S
# instead: grant the publisher read access to the completion subscriptions
# marked for it.
resource "google_pubsub_subscription_iam_member" "publisher_completions" {
  for_each = { for k, s in var.completion_subscriptions : k => s if s.subscribe_publisher }

  project      = var.project_id
  subscription = google_pubsub_subscription.completions[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.publisher.member
}

resource "google_pubsub_subscription_iam_member" "completion_subscribers" {
  for_each = merge([
    for k, s in var.completion_subscriptions : {
      for m in s.subscriber_members : "${k}|${m}" => { subscription = k, member = m }
    }
  ]...)

  project      = var.project_id
  subscription = google_pubsub_subscription.completions[each.value.subscription].name
  role         = "roles/pubsub.subscriber"
  member       = each.value.member
}

# --- Customer-managed encryption (optional) ------------------------------------------------------

resource "google_kms_crypto_key_iam_member" "pubsub_cmek" {
  count = var.pubsub_kms_key_name == null ? 0 : 1

  crypto_key_id = var.pubsub_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.pubsub_agent_member
  depends_on    = [google_project_service.enabled]
}

resource "google_kms_crypto_key_iam_member" "artifact_registry_cmek" {
  count = var.artifact_registry_kms_key_name == null ? 0 : 1

  crypto_key_id = var.artifact_registry_kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = local.artifact_registry_agent_member
  depends_on    = [google_project_service.enabled]
}
