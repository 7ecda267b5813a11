# The copy-start queue (DESIGN.md §10): a Cloud Tasks queue that paces
# CopyModel for the whole deployment.
#
# Cloud Run chooses the number of instances by load, so a per-instance share of
# VERTEX_COPY_RATE is too slow when most copies land on one instance and too
# fast when more instances run than planned (a rollout, instances above
# max_instances for a moment). With COPY_START_QUEUE set, the request stage
# queues a copy-start task and acks; the queue dispatches the tasks at its own
# rate, whatever the number of instances, to POST /tasks/copy-starts, with an
# OIDC token of the push service account (audience COPY_START_URL), where the
# copy starts.
#
#   worker  --CreateTask (roles/cloudtasks.enqueuer on this queue;
#             roles/iam.serviceAccountUser on the push account)-->  queue
#   queue   --POST /tasks/copy-starts, OIDC token of the push account
#             (roles/run.invoker on the service)-->  worker
#
# Who needs what:
#   * The caller of CreateTask: cloudtasks.tasks.create on the queue
#     (roles/cloudtasks.enqueuer, granted on this queue only), and, because
#     its tasks carry an oidcToken, iam.serviceAccounts.actAs on that account:
#     "The service account must be within the same project as the queue. The
#     caller must have iam.serviceAccounts.actAs permission for the service
#     account." (Cloud Tasks API, OidcToken.serviceAccountEmail,
#     cloud.google.com/tasks/docs/reference/rest/v2/OidcToken). actAs is in
#     roles/iam.serviceAccountUser, granted on the push account only (iam.tf).
#   * The Cloud Tasks service agent mints those tokens. It holds
#     roles/cloudtasks.serviceAgent on the project; an agent Google creates on
#     first use gets it by itself, one created on request does not
#     (cloud.google.com/iam/docs/create-service-agents), so the module creates
#     it and grants the role, as for Pub/Sub's agent (iam.tf,
#     local.service_agent_roles). The push account is in project_id, the
#     queue's project, as the OidcToken reference requires.
#   * The push account holds roles/run.invoker on the service (run.tf): Cloud
#     Run checks the task's token like a push token, and the worker accepts it
#     because COPY_START_URL is one of its PUSH_AUDIENCE and the push account
#     is PUSH_SERVICE_ACCOUNTS.
#   * Ingress: Cloud Tasks in the same project counts as internal traffic when
#     it calls the default run.app URL (cloud.google.com/run/docs/securing/ingress),
#     which COPY_START_URL is by default.

locals {
  # COPY_START_URL: the deterministic run.app URL (run.tf), unless overridden.
  copy_start_url = coalesce(var.copy_start_url, local.deterministic_url)

  # COPY_START_QUEUE, spelt from the configuration so that the plan shows it.
  copy_start_queue_name = "projects/${var.project_id}/locations/${google_cloud_tasks_queue.copy_starts.location}/queues/${google_cloud_tasks_queue.copy_starts.name}"
}

resource "google_cloud_tasks_queue" "copy_starts" {
  project  = var.project_id
  name     = local.names.copy_start_queue
  location = var.region

  rate_limits {
    # The deployment's copy rate: VERTEX_COPY_RATE is a minute, the queue's
    # rate a second. Cloud Tasks derives max_burst_size from this rate itself
    # (read-only in the provider), so a quiet queue may start a short burst
    # faster than the steady rate; the default rate, half of Vertex AI's
    # quota, leaves room for it.
    max_dispatches_per_second = var.vertex_copy_rate / 60
    # Start-stage requests in flight at once. Each answers within 45 s (the
    # request stage's budget), so this bounds dispatches waiting on a slow
    # Vertex AI without limiting the rate in normal operation.
    max_concurrent_dispatches = var.copy_start_queue.max_concurrent_dispatches
  }

  retry_config {
    # Unlimited: a start refused for quota (Vertex AI's 429) or a transient
    # error answers 503 and is tried again after the backoff; the worker ends
    # a start older than COPY_MAX_DURATION as failed (DEADLINE_EXCEEDED), so
    # nothing is retried for ever.
    max_attempts = -1
    min_backoff  = "${var.copy_start_queue.min_backoff_seconds}s"
    max_backoff  = "${var.copy_start_queue.max_backoff_seconds}s"
  }

  stackdriver_logging_config {
    sampling_ratio = var.copy_start_queue.log_sampling_ratio
  }

  depends_on = [google_project_service.enabled]
}

# The worker queues copy-start tasks in this queue, and only in this one.
resource "google_cloud_tasks_queue_iam_member" "worker_enqueuer" {
  project  = google_cloud_tasks_queue.copy_starts.project
  location = google_cloud_tasks_queue.copy_starts.location
  name     = google_cloud_tasks_queue.copy_starts.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.worker.member
}

# ...with the push account's OIDC token on each task: iam.serviceAccounts.actAs
# on that account (see above). It lets the worker attach the push account to
# what it creates; the push account's only power is invoking this service.
resource "google_service_account_iam_member" "worker_acts_as_push" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.worker.member
}
