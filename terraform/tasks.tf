# The two Cloud Tasks queues (DESIGN.md §10): the only pacers of Vertex AI
# calls for the whole deployment. No instance paces its own calls: Cloud Run
# chooses the number of instances by load, so a per-instance share of a rate
# is too slow when most requests land on one instance and too fast when more
# instances run than planned, while a queue's rate limit holds however many
# instances run.
#
#   copy-starts  POST /tasks/copy-starts  one CopyModel call per dispatch,
#                                         and the reads that decide it
#   copy-polls   POST /tasks/copy-polls   one GetOperation per dispatch, then
#                                         the next poll task (scheduled by the
#                                         copy's age) or the completion event
#
# The request stage validates a request, queues its copy-start task and acks.
# The start stage starts the copy, creates the copy's first poll task and only
# then answers 2xx; each poll creates the next one until the copy ends. The
# worker sets each task's URL (TASKS_URL + the route), its OIDC token (the
# tasks account, audience TASKS_URL) and its dispatch deadline (60 s).
#
# --- How the two rates are derived ------------------------------------------------
# Vertex AI's default request quotas, "for a given project and supported
# region", are 60 "Job or long-running operation (LRO) submission requests" a
# minute, which CopyModel counts against with the project's training and
# batch jobs, and 600 "Resource management (CRUD) requests" a minute, which
# the reads (GetModel, ListModelVersions, GetOperation) count against
# (cloud.google.com/vertex-ai/docs/quotas, "Request quotas"). The defaults,
# vertex_copy_rate = 30 and vertex_read_rate = 300, leave half of each to the
# rest of the project.
#
#   copy-starts: vertex_copy_rate a minute. One dispatch is one CopyModel.
#   copy-polls:  vertex_read_rate - READS_PER_START x vertex_copy_rate a
#                minute. A start reads too: the source model (GetModel, for
#                its project number and version), the destination
#                (GetModel, or ListModelVersions for a parent_model), and the
#                destination once more when CopyModel answers ALREADY_EXISTS,
#                so READS_PER_START = 3 (src/topology.rs). At the copy-start
#                queue's full rate the starts use 3 x 30 = 90 reads a minute,
#                and the polls get the 210 that are left: 3.5 a second.
#
# So even with both queues at their full rates, the deployment makes at most
# vertex_copy_rate CopyModel calls and vertex_read_rate reads a minute.
# The rates are one for all destination projects and regions together, so
# each project and region stays inside them too (safe, slower across several
# regions). A plan where the starts would use the whole read rate fails (the
# precondition on google_cloud_tasks_queue.copy_polls): the copies would start
# and never be followed.
#
# Cloud Tasks takes the rate a second (maxDispatchesPerSecond, at most 500 a
# queue) and derives the burst (maxBurstSize) from it itself; it is read-only
# in the provider. A quiet queue may therefore dispatch a short burst faster
# than the steady rate; the defaults' unused half of each quota leaves room
# for it (Cloud Tasks API reference, RateLimits).
#
# --- Who needs what ----------------------------------------------------------------
#   worker  --CreateTask (roles/cloudtasks.enqueuer on each queue;
#             roles/iam.serviceAccountUser on the tasks account)-->  queue
#   queue   --POST /tasks/..., OIDC token of the tasks account
#             (roles/run.invoker on the service)-->  worker
#
#   * The caller of CreateTask: cloudtasks.tasks.create on the queue
#     (roles/cloudtasks.enqueuer, granted on these two queues only), and,
#     because its tasks carry an oidcToken, iam.serviceAccounts.actAs on that
#     account: "The service account must be within the same project as the
#     queue. The caller must have iam.serviceAccounts.actAs permission for the
#     service account." (Cloud Tasks API, OidcToken.serviceAccountEmail,
#     cloud.google.com/tasks/docs/reference/rest/v2/OidcToken). actAs is in
#     roles/iam.serviceAccountUser, granted on the tasks account only (below):
#     the worker can attach no other identity, the push account included.
#   * Why not the queue-level token. google_cloud_tasks_queue has an
#     http_target block with oidc_token (queue-level routing): it is in the
#     6.50.0 schema verify.sh checks against, and was added by
#     GoogleCloudPlatform/magic-modules#11544, merged 2024-08-25, months
#     before 6.12, the lower bound of versions.tf. A queue-level token would
#     make the worker's actAs unnecessary only if the worker stopped
#     attaching a token to each task, and it does not: it creates its tasks
#     with CreateTask and task-level routing
#     (URL, token, dispatch deadline per task), which Cloud Tasks documents
#     as the alternative to queue-level routing ("you specify routing at the
#     task level and cannot use queue-level routing",
#     cloud.google.com/tasks/docs/creating-http-target-tasks). So the grant
#     stays, on the one account the tasks' tokens belong to.
#   * The Cloud Tasks service agent mints those tokens. It holds
#     roles/cloudtasks.serviceAgent on the project; an agent Google creates on
#     first use gets it by itself, one created on request does not
#     (cloud.google.com/iam/docs/create-service-agents), so the module creates
#     it and grants the role, as for Pub/Sub's agent (iam.tf,
#     local.service_agent_roles). The tasks account is in project_id, the
#     queues' project, as the OidcToken reference requires.
#   * The tasks account holds roles/run.invoker on the service (run.tf):
#     Cloud Run checks the task's token, and the worker accepts it on the
#     /tasks/* routes only (TASKS_SERVICE_ACCOUNT), as it accepts the push
#     account on the /pubsub/* routes only.
#   * Ingress: Cloud Tasks in the same project counts as internal traffic when
#     it calls the default run.app URL (cloud.google.com/run/docs/securing/ingress),
#     which TASKS_URL is by default.

locals {
  # TASKS_URL: the deterministic run.app URL (run.tf), unless overridden.
  tasks_url = coalesce(var.tasks_url, local.deterministic_url)

  # READS_PER_START of src/topology.rs: the most Vertex AI reads one copy
  # start makes besides its CopyModel call (see above).
  reads_per_start = 3

  # The rates a minute (see "How the two rates are derived" above).
  copy_start_rate_per_minute = var.vertex_copy_rate
  copy_poll_rate_per_minute  = var.vertex_read_rate - local.reads_per_start * var.vertex_copy_rate

  task_queues = {
    starts = google_cloud_tasks_queue.copy_starts
    polls  = google_cloud_tasks_queue.copy_polls
  }

  # COPY_START_QUEUE and COPY_POLL_QUEUE, spelt from the configuration so that
  # the plan shows them.
  task_queue_names = {
    for k, q in local.task_queues : k => "projects/${var.project_id}/locations/${q.location}/queues/${q.name}"
  }
}

resource "google_cloud_tasks_queue" "copy_starts" {
  project  = var.project_id
  name     = local.names.copy_start_queue
  location = var.region

  rate_limits {
    # vertex_copy_rate is a minute, the queue's rate a second.
    max_dispatches_per_second = local.copy_start_rate_per_minute / 60
    # Start-stage requests in flight at once. Each answers within 45 s (the
    # stage's budget), so this bounds dispatches waiting on a slow Vertex AI
    # without limiting the rate in normal operation.
    max_concurrent_dispatches = var.copy_start_queue.max_concurrent_dispatches
  }

  retry_config {
    # Unlimited: a start refused for quota (Vertex AI's 429) or a transient
    # error asks for a retry and is tried again after the backoff; the worker ends
    # a start older than COPY_MAX_DURATION as failed (DEADLINE_EXCEEDED), so
    # nothing is retried for ever (copy_max_duration stays below the 31 days
    # after which Cloud Tasks deletes a task).
    max_attempts = -1
    min_backoff  = "${var.copy_start_queue.min_backoff_seconds}s"
    max_backoff  = "${var.copy_start_queue.max_backoff_seconds}s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.copy_start_queue.log_sampling_ratio
  }

  depends_on = [google_project_service.enabled]
}

resource "google_cloud_tasks_queue" "copy_polls" {
  project  = var.project_id
  name     = local.names.copy_poll_queue
  location = var.region

  rate_limits {
    # The reads the starts leave, a second.
    max_dispatches_per_second = local.copy_poll_rate_per_minute / 60
    # Polls in flight at once. A poll is one GetOperation and one CreateTask
    # or publish, usually about a second, and answers within 45 s, so this
    # bounds a pile-up on a slow Vertex AI without limiting the rate.
    max_concurrent_dispatches = var.copy_poll_queue.max_concurrent_dispatches
  }

  retry_config {
    # Unlimited: a poll that reached the worker answers 2xx (Vertex AI's
    # errors included: it schedules its next poll with a backoff), so only a
    # poll that cannot reach the worker, or is refused by it, is retried, and
    # it must be retried until the cause is fixed (the alert on failing
    # dispatches, monitoring.tf) or the copy it follows is lost.
    max_attempts = -1
    min_backoff  = "${var.copy_poll_queue.min_backoff_seconds}s"
    max_backoff  = "${var.copy_poll_queue.max_backoff_seconds}s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.copy_poll_queue.log_sampling_ratio
  }

  lifecycle {
    precondition {
      condition     = local.copy_poll_rate_per_minute > 0
      error_message = "vertex_read_rate (${var.vertex_read_rate} a minute) leaves no reads for the copy-poll queue: each copy start may take ${local.reads_per_start} reads, so vertex_copy_rate (${var.vertex_copy_rate} a minute) uses ${local.reads_per_start * var.vertex_copy_rate} of them. Raise vertex_read_rate above ${local.reads_per_start} x vertex_copy_rate, or lower vertex_copy_rate; otherwise copies start but are never followed to their end."
    }
  }

  depends_on = [google_project_service.enabled]
}

# The worker queues tasks in these two queues, and in no other.
resource "google_cloud_tasks_queue_iam_member" "worker_enqueuer" {
  for_each = local.task_queues

  project  = each.value.project
  location = each.value.location
  name     = each.value.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.worker.member
}

# The previous release granted the copy-start queue's enqueuer without a key:
# keep that grant instead of removing and re-adding it.
moved {
  from = google_cloud_tasks_queue_iam_member.worker_enqueuer
  to   = google_cloud_tasks_queue_iam_member.worker_enqueuer["starts"]
}

# ...with the tasks account's OIDC token on each task: iam.serviceAccounts.actAs
# on that account (see above), and on no other. The tasks account's only
# power is invoking this service.
resource "google_service_account_iam_member" "worker_acts_as_tasks" {
  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.worker.member
}
