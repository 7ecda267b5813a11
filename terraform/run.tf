# The worker: a Cloud Run v2 service running `copy-worker serve`.
#
# --- Push audience: how the cycle is avoided ------------------------------------
# The worker must know the `aud` of the push tokens (PUSH_AUDIENCE), and the
# natural audience is the service URL. But the URL is an attribute of the
# service, so setting it in the service's own environment would be a
# self-reference, and a two-pass apply would be needed.
#
# Cloud Run gives every service a deterministic URL,
#     https://SERVICE-PROJECTNUMBER.REGION.run.app
# which is known before the service exists (project number from
# data.google_project). So:
#   * PUSH_AUDIENCE and the subscriptions' oidc_token.audience both use that
#     derived URL (or var.push_audience when set). Same string on both sides.
#   * The subscriptions' push_endpoint uses google_cloud_run_v2_service.uri,
#     the URL Cloud Run reports. Only the subscriptions depend on the service.
#   * Cloud Run itself accepts tokens whose audience is any of the service's
#     URLs, or one of custom_audiences (set below when var.push_audience is not
#     derived).
# The check block at the end warns after apply if Cloud Run did not assign
# the deterministic URL (name too long, default URLs disabled): then set
# var.push_audience.

locals {
  deterministic_url = "https://${local.names.service}-${local.project_number}.${var.region}.run.app"

  push_audience = coalesce(var.push_audience, local.deterministic_url)

  # Audiences the worker accepts on the /pubsub/* routes and from direct
  # callers (PUSH_AUDIENCE). Besides the push audience: the service URL
  # itself, and the full endpoint URL that the existing EC2 Python clients use
  # as audience for POST /v1/models/copy (DESIGN.md §7). The tasks' tokens
  # carry TASKS_URL (tasks.tf) as their audience, which the worker checks on
  # the /tasks/* routes.
  accepted_audiences = distinct(concat(
    [local.push_audience, local.deterministic_url, "${local.deterministic_url}/v1/models/copy"],
    var.extra_accepted_audiences,
  ))

  # A push_audience that is not one of the service's run.app URLs must be
  # registered with Cloud Run as a custom audience, or Cloud Run rejects the
  # tokens with 401 before the worker sees them. (A tasks_url, when set, is
  # the service URL Cloud Run reports, which it accepts by itself.)
  custom_audiences = var.push_audience == null ? [] : (
    startswith(var.push_audience, local.deterministic_url) ? [] : [var.push_audience]
  )

  # Callers of POST /v1/models/copy (DESIGN.md §7), checked by the worker
  # against the token's email claim.
  http_invokers = concat(
    var.http_invoker_service_accounts,
    var.publisher_can_invoke_service ? [google_service_account.publisher.email] : [],
  )

  # Ingress as narrow as the callers allow (cloud.google.com/run/docs/securing/ingress):
  # "Internal" admits Pub/Sub and Cloud Tasks of the same project when they
  # call the default run.app URL, which every push endpoint
  # (google_cloud_run_v2_service.uri) and TASKS_URL are by default. So
  # with no direct callers nothing needs more. Direct callers of
  # POST /v1/models/copy (EC2 through workload identity federation, outside
  # Google Cloud) are internet traffic and need "All"; Cloud Run's IAM invoker
  # check still refuses everyone without roles/run.invoker.
  ingress = coalesce(var.ingress, length(local.http_invokers) == 0 ? "INGRESS_TRAFFIC_INTERNAL_ONLY" : "INGRESS_TRAFFIC_ALL")

  # How long Cloud Tasks waits for the answer to one dispatch: the worker sets
  # it on every task (DISPATCH_DEADLINE in src/topology.rs).
  task_dispatch_deadline_seconds = 60

  # The longest any sender waits for the worker's answer: Pub/Sub the
  # requests' ack deadline (copy-callbacks-push has the same), Cloud Tasks the
  # dispatch deadline. While an upgrade drains copy-operations, its
  # subscription keeps the previous release's 300 s, but the drain answers
  # each delivery within 45 s like every other stage, so it sets no bound.
  longest_delivery_deadline = max(var.requests_ack_deadline_seconds, local.task_dispatch_deadline_seconds)

  # Environment of DESIGN.md §5. Topic names are full resource names, so the
  # worker never has to guess the project. PORT is set by Cloud Run from the
  # container port and must not be set here (Cloud Run rejects it).
  # Every key is known at plan time (only some values are not), so the plan
  # lists each variable instead of "env: known after apply".
  worker_env = merge(
    {
      GOOGLE_CLOUD_PROJECT   = var.project_id
      COPY_REQUESTS_TOPIC    = google_pubsub_topic.topic["requests"].id
      COPY_COMPLETIONS_TOPIC = google_pubsub_topic.topic["completions"].id
      COPY_DEAD_LETTER_TOPIC = google_pubsub_topic.topic["dead_letter"].id
      COPY_CALLBACKS_TOPIC   = google_pubsub_topic.topic["callbacks"].id
      CALLBACK_MAX_ATTEMPTS  = tostring(var.max_delivery_attempts)
      # Cloud Run's IAM invoker check (roles/run.invoker, below) verifies the
      # push token's signature and hands the worker the token with the
      # signature replaced by SIGNATURE_REMOVED_BY_GOOGLE; in this mode the
      # worker checks iss, aud, exp and email of that form (it refuses the
      # mode unless K_SERVICE, set by Cloud Run, is present). So the invoker
      # check must stay on: never allUsers, never invoker_iam_disabled.
      PUSH_AUTH             = "cloud-run"
      PUSH_AUDIENCE         = join(",", local.accepted_audiences)
      PUSH_SERVICE_ACCOUNTS = google_service_account.push.email
      # The worker reads this service (GetService, GetIamPolicy; roles/run.viewer
      # on it, below) at start and every 5 minutes, and refuses signature-removed
      # tokens while the invoker check is off or granted to allUsers or
      # allAuthenticatedUsers. Built from the variables, not the resource: a
      # service cannot name itself in its own environment.
      COPY_WORKER_SERVICE = "projects/${var.project_id}/locations/${var.region}/services/${local.names.service}"
      COPY_MAX_ATTEMPTS   = tostring(var.copy_max_attempts)
      COPY_MAX_DURATION   = var.copy_max_duration
      LOG_FORMAT          = "json"
      # The two queues (tasks.tf): their rates are the only pacers of Vertex
      # AI calls, for the whole deployment. TASKS_URL is what their tasks
      # call (+ /tasks/copy-starts or /tasks/copy-polls) and their tokens'
      # audience; TASKS_SERVICE_ACCOUNT the account of those tokens, the only
      # one the /tasks/* routes accept.
      COPY_START_QUEUE      = local.task_queue_names["starts"]
      COPY_POLL_QUEUE       = local.task_queue_names["polls"]
      TASKS_URL             = local.tasks_url
      TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email
    },
    # Optional settings are set only when given; otherwise the worker's own
    # defaults (DESIGN.md §5) apply.
    {
      for k, v in {
        SOURCE_PROJECT         = var.default_source_project
        TARGET_PROJECT         = var.default_target_project
        LOCATION               = var.default_location
        CALLBACK_ALLOWED_HOSTS = join(",", var.callback_allowed_hosts)
        # REGION=KEY, comma-separated: the key that encrypts the copy of a CMEK
        # source whose request names no kms_key_name (DESIGN.md §5).
        COPY_DEFAULT_KMS_KEYS = join(",", [for region, key in var.default_kms_keys : "${region}=${key}"])
      } : k => v if v != null && v != ""
    },
    length(local.http_invokers) > 0 ? { INVOKER_SERVICE_ACCOUNTS = join(",", local.http_invokers) } : {},
    # Only while an upgrade drains copy-operations (pubsub.tf): the worker
    # then serves POST /pubsub/copy-operations, turning each watch of the
    # previous release into a poll task.
    var.drain_copy_operations ? { COPY_OPERATIONS_DRAIN = "true" } : {},
    var.extra_env,
  )

  # projects/P/secrets/S or a bare secret ID in project_id.
  callback_secret = var.callback_signing_secret_id == null ? null : (
    startswith(var.callback_signing_secret_id, "projects/") ? var.callback_signing_secret_id : "projects/${var.project_id}/secrets/${var.callback_signing_secret_id}"
  )
}

resource "google_cloud_run_v2_service" "worker" {
  project             = var.project_id
  name                = local.names.service
  location            = var.region
  description         = "copy-worker: Pub/Sub-driven Vertex AI model copies"
  labels              = local.labels
  ingress             = local.ingress
  deletion_protection = var.deletion_protection
  custom_audiences    = local.custom_audiences

  template {
    service_account = google_service_account.worker.email
    labels          = local.labels

    # Request timeout above the longest delivery deadline (the requests' ack
    # deadline, the tasks' 60 s dispatch deadline): Pub/Sub and Cloud Tasks,
    # not Cloud Run, decide when a delivery has failed. No request is held;
    # every stage answers within 45 s, so the timeout is only a backstop that
    # ends a request that hangs.
    timeout = "${var.request_timeout_seconds}s"

    # Concurrency: every request is short and I/O-bound (one or two Vertex AI
    # calls, a CreateTask or a publish), so many requests per instance cost
    # little CPU and memory, and a burst is served by few instances. Cloud
    # Run starts another instance before one is full; beyond concurrency x
    # max_instances it refuses requests, and Pub/Sub and Cloud Tasks deliver
    # them again later, which is harmless. The number of instances never
    # changes how fast Vertex AI is called: the queues' rates do.
    max_instance_request_concurrency = var.concurrency

    # gen2: faster CPU and network, full Linux compatibility.
    execution_environment = "EXECUTION_ENVIRONMENT_GEN2"

    scaling {
      # 0: scale to zero between polls. Nothing runs outside requests, and a
      # running copy is followed by tasks scheduled in the copy-poll queue,
      # so no instance needs to stay warm (DESIGN.md §1).
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      name  = "copy-worker"
      image = var.image
      # ENTRYPOINT of the image is `copy-worker serve`; nothing to override.

      ports {
        # Cloud Run sets PORT=8080 from this; the server listens on $PORT.
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # cpu_idle = true is request-based billing: CPU is throttled outside
        # requests, and an instance is billed only while it serves one. That
        # is safe only because every step runs inside its push or task
        # request and nothing runs in the background (DESIGN.md §1); and it is
        # cheap because no request waits for a copy: between two polls no
        # instance is busy with it. The SIGTERM drain (at most 8 s) runs with
        # CPU either way.
        cpu_idle = true
        # Extra CPU while the instance starts: bursts of pushes after scale
        # to zero are served sooner.
        startup_cpu_boost = true
      }

      dynamic "env" {
        for_each = local.worker_env
        content {
          name  = env.key
          value = env.value
        }
      }

      dynamic "env" {
        for_each = local.callback_secret == null ? [] : [local.callback_secret]
        content {
          name = "CALLBACK_SIGNING_SECRET"
          value_source {
            secret_key_ref {
              secret  = env.value
              version = "latest"
            }
          }
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
          port = 8080
        }
        initial_delay_seconds = 0
        period_seconds        = 2
        timeout_seconds       = 2
        failure_threshold     = 15
      }

      liveness_probe {
        http_get {
          path = "/healthz"
          port = 8080
        }
        period_seconds    = 30
        timeout_seconds   = 5
        failure_threshold = 3
      }
    }
  }

  traffic {
    type    = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
    percent = 100
  }

  lifecycle {
    precondition {
      condition     = var.request_timeout_seconds > local.longest_delivery_deadline
      error_message = "request_timeout_seconds must exceed requests_ack_deadline_seconds and the tasks' ${local.task_dispatch_deadline_seconds} s dispatch deadline, so that Pub/Sub and Cloud Tasks, not Cloud Run, decide when a delivery has failed."
    }
    precondition {
      condition     = var.requests_min_backoff_seconds <= var.requests_max_backoff_seconds
      error_message = "requests_min_backoff_seconds must not exceed requests_max_backoff_seconds."
    }
    precondition {
      condition = length(setintersection(keys(var.extra_env), [
        "PORT", "PUSH_AUTH", "PUSH_AUDIENCE", "PUSH_SERVICE_ACCOUNTS", "GOOGLE_CLOUD_PROJECT", "COPY_WORKER_SERVICE",
        "COPY_START_QUEUE", "COPY_POLL_QUEUE", "TASKS_URL", "TASKS_SERVICE_ACCOUNT", "COPY_OPERATIONS_DRAIN",
      ])) == 0
      error_message = "extra_env must not set PORT, the authentication variables, the queues' variables (COPY_START_QUEUE, COPY_POLL_QUEUE, TASKS_URL, TASKS_SERVICE_ACCOUNT) or COPY_OPERATIONS_DRAIN: the module sets them from the resources they must match."
    }
  }

  depends_on = [
    google_project_service.enabled,
    # The first revision must be able to publish, queue copy starts and
    # polls, and read its secret.
    google_pubsub_topic_iam_member.worker_publisher,
    google_cloud_tasks_queue_iam_member.worker_enqueuer,
    google_service_account_iam_member.worker_acts_as_tasks,
    google_secret_manager_secret_iam_member.worker_callback_secret,
  ]
}

# Only the push service account (the identity of Pub/Sub's pushes), the tasks
# service account (the identity of the queues' tasks) and the optional direct
# HTTP callers may invoke the service; the worker then accepts each on its own
# routes only (/pubsub/*, /tasks/*, /v1/models/copy). No allUsers and no
# invoker_iam_disabled: Cloud Run's invoker check is what verifies the tokens'
# signatures (PUSH_AUTH=cloud-run); unauthenticated requests never reach the
# worker, Cloud Run answers 403.
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  project  = google_cloud_run_v2_service.worker.project
  location = google_cloud_run_v2_service.worker.location
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.invoker"
  member   = google_service_account.push.member
}

resource "google_cloud_run_v2_service_iam_member" "tasks_invoker" {
  project  = google_cloud_run_v2_service.worker.project
  location = google_cloud_run_v2_service.worker.location
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.invoker"
  member   = google_service_account.tasks.member
}

# The worker reads its own service, and nothing else of Cloud Run: whether the
# invoker check it trusts is on, and whether its IAM policy opens it to
# everyone (run.services.get, run.services.getIamPolicy). A missing grant
# makes every push 401 (the alert "pushes are refused" names it).
resource "google_cloud_run_v2_service_iam_member" "worker_reads_itself" {
  project  = google_cloud_run_v2_service.worker.project
  location = google_cloud_run_v2_service.worker.location
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.viewer"
  member   = google_service_account.worker.member
}

resource "google_cloud_run_v2_service_iam_member" "http_invokers" {
  for_each = toset(var.http_invoker_service_accounts)

  project  = google_cloud_run_v2_service.worker.project
  location = google_cloud_run_v2_service.worker.location
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}

resource "google_cloud_run_v2_service_iam_member" "publisher_invoker" {
  count = var.publisher_can_invoke_service ? 1 : 0

  project  = google_cloud_run_v2_service.worker.project
  location = google_cloud_run_v2_service.worker.location
  name     = google_cloud_run_v2_service.worker.name
  role     = "roles/run.invoker"
  member   = google_service_account.publisher.member
}

# After apply: warn if the URL the audiences were derived from is not one of
# the service's URLs (then pushes would fail with 401), and if the tasks would
# call a URL the service does not have (then every copy waits in the
# copy-start queue, and every running copy's next poll in the copy-poll
# queue).
check "push_audience_matches_service" {
  assert {
    condition     = var.push_audience != null || contains(google_cloud_run_v2_service.worker.urls, local.deterministic_url)
    error_message = "Cloud Run did not assign the deterministic URL ${local.deterministic_url} to the service (URLs: ${join(", ", google_cloud_run_v2_service.worker.urls)}). Set var.push_audience to the service URL or a custom audience."
  }

  assert {
    condition     = contains(google_cloud_run_v2_service.worker.urls, local.tasks_url)
    error_message = "TASKS_URL ${local.tasks_url} is not one of the service's URLs (${join(", ", google_cloud_run_v2_service.worker.urls)}): the copy-start and poll tasks cannot reach the worker. Set var.tasks_url to the service URL."
  }
}
