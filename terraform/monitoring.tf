# Monitoring of the topology (on by default; monitoring_enabled = false turns
# it off): log-based metrics on the worker's structured log lines, eight alert
# policies, and one dashboard. Everything lives in project_id.
#
# The log-based metrics read the JSON lines the worker writes with
# LOG_FORMAT=json (run.tf sets it; the worker's telemetry module writes
# them). Cloud Run turns each line into a LogEntry: `severity` becomes the
# entry's severity, `message` and every event and span field stay in
# jsonPayload. The lines used here (the strings are the worker's;
# verify_refs.py checks that a tracing call in src/ still writes them):
#
#   "copy started; first poll scheduled"
#                                     a CopyModel operation was started (first
#                                     attempt or a restart) and the first poll
#                                     task of its chain created; fields
#                                     `attempt`, `poll_task`
#   "completion published"            a copy ended; field `status` =
#                                     succeeded | failed | rejected
#   "Vertex AI quota exhausted; slowing down"
#                                     one per RESOURCE_EXHAUSTED (429) answer
#                                     from Vertex AI; fields `project`,
#                                     `region`, `kind` (Copy | Read), `hold_s`,
#                                     `error.message`
#   "Cloud Run invoker check not confirmed; signature-removed tokens refused"
#                                     (ERROR) a read of the worker's own
#                                     service found the invoker check off or
#                                     public, or could not read it; fields
#                                     `service`, `reason`, `error.message`
#
# Every line also carries the span field `stage`, the stage that wrote it
# (request, start, poll, callback).

locals {
  monitoring = var.monitoring_enabled

  # Log entries of this worker service only.
  worker_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${local.names.service}\""

  log_metrics = {
    copies_started = {
      description = "CopyModel operations started by copy-worker (first attempts and restarts), by attempt."
      filter      = "jsonPayload.message=\"copy started; first poll scheduled\""
      label       = "attempt"
      extractor   = "EXTRACT(jsonPayload.attempt)"
    }
    completions = {
      description = "Copies that ended, by status (succeeded, failed, rejected): the completion events copy-worker published."
      filter      = "jsonPayload.message=\"completion published\""
      label       = "status"
      extractor   = "EXTRACT(jsonPayload.status)"
    }
    vertex_resource_exhausted = {
      description = "RESOURCE_EXHAUSTED (HTTP 429, quota) answers from Vertex AI seen by copy-worker, by stage."
      filter      = "jsonPayload.message=\"Vertex AI quota exhausted; slowing down\""
      label       = "stage"
      extractor   = "EXTRACT(jsonPayload.stage)"
    }
    cloud_run_trust_refused = {
      description = "Reads of the worker's own Cloud Run service that did not confirm its invoker check (off, granted to everyone, or unreadable), by reason: pushes are refused meanwhile."
      filter      = "jsonPayload.message=\"Cloud Run invoker check not confirmed; signature-removed tokens refused\""
      label       = "reason"
      extractor   = "EXTRACT(jsonPayload.reason)"
    }
  }

  # Metric type of each log-based metric, for alert and chart filters.
  log_metric_types = {
    for k, m in google_logging_metric.worker : k => "logging.googleapis.com/user/${m.name}"
  }

  subscription_ids = {
    requests    = google_pubsub_subscription.requests_push.name
    dead_letter = google_pubsub_subscription.dead_letter_replay.name
    callbacks   = google_pubsub_subscription.callbacks_push.name
  }

  # The subscriptions the dashboard charts: the worker's, and while an upgrade
  # drains it the previous release's copy-operations-push (pubsub.tf), whose
  # backlog shows when the drain is over (at zero). No alert watches it.
  charted_subscription_ids = merge(
    local.subscription_ids,
    { for sub in google_pubsub_subscription.operations_drain : "operations_drain" => sub.name },
  )

  # The two queues (tasks.tf), by the ids their Cloud Tasks metrics carry
  # (resource.labels.queue_id).
  queue_ids = {
    starts = local.names.copy_start_queue
    polls  = local.names.copy_poll_queue
  }

  # "A queue's dispatches keep failing", for both queues: more than one
  # dispatch attempt answered other than OK (a non-2xx status, or no answer
  # within the dispatch deadline) in each 10-minute window, for 5 minutes.
  #   * The window is longer than the queues' longest retry backoff (at most
  #     300 s, variables.tf), so a single task that keeps failing shows at
  #     least two failing attempts in every window.
  #   * One failing attempt alone (a transient retry) never fires it.
  #   * It fires 5 to 8 minutes after a task starts failing for good (Cloud
  #     Tasks' metrics are sampled every minute and shown up to a few
  #     minutes later), well within 15 minutes.
  # The label is response_code, "the response code for a task attempt"
  # (Google Cloud metrics, cloudtasks.googleapis.com/queue/task_attempt_count);
  # the list does not say how its values are spelt, so both spellings of the
  # success code are excluded.
  failing_dispatches = {
    condition = "more than one dispatch answered other than OK in each 10 minutes, for 5 minutes"
    filter    = "resource.type=\"cloud_tasks_queue\" AND metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_count\" AND metric.labels.response_code!=\"ok\" AND metric.labels.response_code!=\"OK\""
    threshold = 1
    duration  = "300s"
    period    = "600s"
  }
}

resource "google_logging_metric" "worker" {
  for_each = local.monitoring ? local.log_metrics : {}

  project     = var.project_id
  name        = "${local.names.service}/${each.key}"
  description = each.value.description
  filter      = "${local.worker_log_filter} AND ${each.value.filter}"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "${local.names.service} ${replace(each.key, "_", " ")}"

    labels {
      key        = each.value.label
      value_type = "STRING"
    }
  }

  label_extractors = {
    (each.value.label) = each.value.extractor
  }

  depends_on = [google_project_service.enabled]
}

# --- Waiting for the log-based metrics to reach Cloud Monitoring --------------------
# A new log-based metric is not at once a metric type Cloud Monitoring knows:
# an alert policy that filters on it, created seconds later, fails with
# `404 Cannot find metric(s) that match type = "logging.googleapis.com/user/..."
# ... could take up to 10 minutes to become available`. The provider retries
# only 409s for alert policies, and depends_on orders creation but does not
# wait (hashicorp/terraform-provider-google#11102, open). So the policies wait
# for this sleep, which runs once after the metrics are created, and again
# only when a metric is replaced (triggers). Later applies do not wait.

resource "time_sleep" "log_metrics_visible" {
  count = local.monitoring ? 1 : 0

  create_duration = "${var.log_metric_propagation_seconds}s"

  triggers = {
    metrics = join(",", [for m in google_logging_metric.worker : m.id])
  }
}

# --- Alert policies -----------------------------------------------------------------------
# One policy per entry. Three watch a Pub/Sub subscription metric, three the
# queues (Cloud Tasks metrics), one the failed completions and one the reads
# of the worker's own service that did not confirm its invoker check
# (log-based metrics). Each carries what to do in its documentation, shown in
# the incident and the notification.

locals {
  subscription_alerts = {
    dead_letters = {
      subscription = local.subscription_ids.dead_letter
      metric       = "num_undelivered_messages"
      threshold    = 0
      duration     = "60s"
      severity     = "ERROR"
      what         = "dead-lettered copy requests"
      todo         = "Copy requests were dead-lettered (rejected, failed permanently, or undeliverable after max_delivery_attempts). See what and why: `copy-worker replay --dry-run` (grouped by error_code). Fix the cause, then `copy-worker replay --error-code CODE` (terraform/README.md section 5). Messages are kept 7 days."
    }
    requests_oldest_unacked = {
      subscription = local.subscription_ids.requests
      metric       = "oldest_unacked_message_age"
      threshold    = var.alert_requests_oldest_unacked_seconds
      duration     = "300s"
      severity     = "WARNING"
      what         = "copy requests are not being started"
      todo         = "Check the worker's logs for \"push refused\" (401/403: push audience or push service account, terraform/README.md pre-flight 1 and 4) and \"step not finished\" (Vertex AI errors, quota). Requests that keep failing are dead-lettered after max_delivery_attempts."
    }
    callbacks_oldest_unacked = {
      subscription = local.subscription_ids.callbacks
      metric       = "oldest_unacked_message_age"
      threshold    = var.alert_callbacks_oldest_unacked_seconds
      duration     = "300s"
      severity     = "WARNING"
      what         = "webhook callbacks are not being delivered"
      todo         = "Check the worker's logs on the callback stage: a receiver that answers 5xx or times out is retried with backoff, a refusal is dead-lettered. Callbacks that keep failing are dead-lettered after max_delivery_attempts (`copy-worker replay --dry-run`)."
    }
  }

  queue_alerts = {
    # The queues (tasks.tf). Built-in Cloud Tasks metrics on the
    # cloud_tasks_queue resource: queue/depth (tasks in the queue) and
    # queue/task_attempt_count (dispatch attempts, by response_code).
    copy_start_queue_depth = {
      what      = "copies are waiting long to start"
      severity  = "WARNING"
      condition = "more than ${var.alert_copy_start_queue_depth} tasks in ${local.queue_ids.starts} for 15 minutes"
      filter    = "resource.type=\"cloud_tasks_queue\" AND resource.labels.queue_id=\"${local.queue_ids.starts}\" AND metric.type=\"cloudtasks.googleapis.com/queue/depth\""
      threshold = var.alert_copy_start_queue_depth
      duration  = "900s"
      period    = "60s"
      aligner   = "ALIGN_MAX"
      reducer   = null
      todo      = "More copy starts are queued than the queue starts in the time you planned for (it starts vertex_copy_rate a minute). A burst larger than that is expected to wait; otherwise check whether the queue is paused (`gcloud tasks queues describe`), and whether its dispatches fail (the alert on failing copy starts, the queue's logs)."
    }
    copy_start_attempts_failing = {
      what      = "copy starts are failing"
      severity  = "WARNING"
      condition = local.failing_dispatches.condition
      filter    = "${local.failing_dispatches.filter} AND resource.labels.queue_id=\"${local.queue_ids.starts}\""
      threshold = local.failing_dispatches.threshold
      duration  = local.failing_dispatches.duration
      period    = local.failing_dispatches.period
      aligner   = "ALIGN_SUM"
      reducer   = "REDUCE_SUM"
      todo      = "The queue's dispatches to POST /tasks/copy-starts keep failing, and no copy starts while they do. A retry asked for while Vertex AI refuses CopyModel for quota (the worker logs \"Vertex AI quota exhausted; slowing down\"): the project's other jobs use more of the quota than vertex_copy_rate leaves them; lower vertex_copy_rate or raise the quota. 401/403: the task token is refused (the tasks account's roles/run.invoker, TASKS_SERVICE_ACCOUNT, TASKS_URL among the service's URLs: terraform/README.md pre-flight 4 and 7); 404 or no answer: TASKS_URL is not the service's URL, or ingress blocks the queue. A retry asked for with CreateTask refused in the worker's logs: the enqueuer or actAs grant on the copy-poll queue or the tasks account. The queue retries every task until the cause is fixed; the worker's logs of POST /tasks/copy-starts say more."
    }
    copy_poll_attempts_failing = {
      what      = "running copies are not being followed"
      severity  = "ERROR"
      condition = local.failing_dispatches.condition
      filter    = "${local.failing_dispatches.filter} AND resource.labels.queue_id=\"${local.queue_ids.polls}\""
      threshold = local.failing_dispatches.threshold
      duration  = local.failing_dispatches.duration
      period    = local.failing_dispatches.period
      aligner   = "ALIGN_SUM"
      reducer   = "REDUCE_SUM"
      todo      = "The queue's dispatches to POST /tasks/copy-polls keep failing. A poll that reaches the worker answers 2xx whatever Vertex AI said, so these polls do not reach it or are refused: 401/403, the task token (the tasks account's roles/run.invoker, TASKS_SERVICE_ACCOUNT: terraform/README.md pre-flight 4 and 7); 404 or no answer, TASKS_URL or ingress; a retry asked for with CreateTask refused in the worker's logs, the enqueuer grant on the copy-poll queue or actAs on the tasks account. Nothing is lost meanwhile: the queue retries every poll until the cause is fixed, and the copies' completion events follow then; a copy past COPY_MAX_DURATION by then ends failed only if it had not succeeded."
    }
  }

  alerts = merge(
    {
      for k, a in local.subscription_alerts : k => {
        what      = a.what
        severity  = a.severity
        condition = "${a.metric} of ${a.subscription} above ${a.threshold}"
        filter    = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${a.subscription}\" AND metric.type=\"pubsub.googleapis.com/subscription/${a.metric}\""
        threshold = a.threshold
        duration  = a.duration
        period    = "60s"
        aligner   = "ALIGN_MAX"
        reducer   = null
        todo      = a.todo
      }
    },
    local.queue_alerts,
    {
      cloud_run_trust_refused = {
        what      = "pushes are refused: Cloud Run's invoker check is not confirmed"
        severity  = "CRITICAL"
        condition = "a read of the worker's service did not confirm its invoker check, in 5 minutes"
        filter    = "resource.type=\"cloud_run_revision\" AND metric.type=\"${try(local.log_metric_types["cloud_run_trust_refused"], "")}\""
        threshold = 0
        duration  = "0s"
        period    = "300s"
        aligner   = "ALIGN_SUM"
        reducer   = "REDUCE_SUM"
        todo      = "The worker (PUSH_AUTH=cloud-run) trusts Cloud Run's invoker check to verify the tokens it forwards, and refuses them (401) while it cannot confirm it. The log line says why: `invoker_check_off` (someone chose \"Allow public access\" or `--no-invoker-iam-check`: run `gcloud run services update SERVICE --invoker-iam-check`, or re-apply Terraform), `public_invoker` (roles/run.invoker granted to every user, or every authenticated user: remove that binding), or `unreadable` (the worker account lacks roles/run.viewer on its own service, or the Cloud Run Admin API is unreachable). Pushes are redelivered; requests past their delivery attempts are dead-lettered, and `copy-worker replay` moves them back."
      }
      failed_completions = {
        what      = "failed copies"
        severity  = "ERROR"
        condition = "more than ${var.alert_failed_completions_threshold} failed completions in 10 minutes"
        filter    = "resource.type=\"cloud_run_revision\" AND metric.type=\"${try(local.log_metric_types["completions"], "")}\" AND metric.labels.status=\"failed\""
        threshold = var.alert_failed_completions_threshold
        duration  = "0s"
        period    = "600s"
        aligner   = "ALIGN_SUM"
        reducer   = "REDUCE_SUM"
        todo      = "Copies ended as failed (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION, a conflicting ALREADY_EXISTS, or COPY_MAX_DURATION exceeded). The completion events and the dead letters carry the error: `copy-worker replay --dry-run`. PERMISSION_DENIED usually means a missing Vertex AI grant (terraform/README.md pre-flight 5)."
      }
    },
  )
}

resource "google_monitoring_alert_policy" "alert" {
  for_each = local.monitoring ? local.alerts : {}

  project               = var.project_id
  display_name          = "${local.names.service}: ${each.value.what}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.condition

    condition_threshold {
      filter          = each.value.filter
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration

      aggregations {
        alignment_period     = each.value.period
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = each.value.todo
  }

  # The log-based metric must be visible in Cloud Monitoring before a policy
  # can filter on its type: see time_sleep.log_metrics_visible above.
  depends_on = [google_project_service.enabled, time_sleep.log_metrics_visible]
}

# --- Dashboard ---------------------------------------------------------------------------------

locals {
  # One chart: a title and one line per data set {legend, filter, aligner, group_by}.
  dashboard_charts = [
    {
      title = "Copies started (CopyModel operations, by attempt)"
      sets  = [{ legend = "attempt $${metric.labels.attempt}", filter = "metric.type=\"${try(local.log_metric_types["copies_started"], "")}\"", aligner = "ALIGN_SUM", group_by = ["metric.label.attempt"] }]
    },
    {
      title = "Copies ended (succeeded, failed, rejected)"
      sets  = [{ legend = "$${metric.labels.status}", filter = "metric.type=\"${try(local.log_metric_types["completions"], "")}\"", aligner = "ALIGN_SUM", group_by = ["metric.label.status"] }]
    },
    {
      # A running copy has exactly one pending poll task, so the poll queue's
      # depth is about the number of copies being followed.
      title = "Tasks waiting: copies to start, copies being followed"
      sets = [for k, id in local.queue_ids : {
        legend = "tasks in ${id}", filter = "metric.type=\"cloudtasks.googleapis.com/queue/depth\" AND resource.labels.queue_id=\"${id}\"", aligner = "ALIGN_MAX", group_by = []
      }]
    },
    {
      title = "Vertex AI 429s (RESOURCE_EXHAUSTED, by stage)"
      sets  = [{ legend = "$${metric.labels.stage}", filter = "metric.type=\"${try(local.log_metric_types["vertex_resource_exhausted"], "")}\"", aligner = "ALIGN_SUM", group_by = ["metric.label.stage"] }]
    },
    {
      title = "Backlog (undelivered messages per subscription)"
      sets = [for id in values(local.charted_subscription_ids) : {
        legend = id, filter = "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.labels.subscription_id=\"${id}\"", aligner = "ALIGN_MAX", group_by = []
      }]
    },
    {
      title = "Dispatches of both queues, by answer"
      sets = [for k, id in local.queue_ids : {
        legend = "${id} $${metric.labels.response_code}", filter = "metric.type=\"cloudtasks.googleapis.com/queue/task_attempt_count\" AND resource.labels.queue_id=\"${id}\"", aligner = "ALIGN_SUM", group_by = ["metric.label.response_code"]
      }]
    },
    {
      title = "Oldest unacked message age (seconds)"
      sets = [for id in values(local.charted_subscription_ids) : {
        legend = id, filter = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.labels.subscription_id=\"${id}\"", aligner = "ALIGN_MAX", group_by = []
      }]
    },
  ]
}

resource "google_monitoring_dashboard" "worker" {
  count = local.monitoring ? 1 : 0

  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${local.names.service}: copies, queues, quota, backlog"
    mosaicLayout = {
      columns = 48
      tiles = [
        # Two charts a row. A zero xPos/yPos is left out, as the API does.
        for i, c in local.dashboard_charts : merge({ for k, v in { xPos = (i % 2) * 24, yPos = floor(i / 2) * 16 } : k => v if v > 0 }, {
          width  = 24
          height = 16
          widget = {
            title = c.title
            xyChart = {
              chartOptions = { mode = "COLOR" }
              dataSets = [
                for s in c.sets : {
                  plotType           = "LINE"
                  legendTemplate     = s.legend
                  minAlignmentPeriod = "60s"
                  timeSeriesQuery = {
                    timeSeriesFilter = {
                      filter = s.filter
                      # groupByFields only when grouping: the API drops an
                      # empty list, which would show as a diff on every plan.
                      aggregation = merge(
                        { alignmentPeriod = "60s", perSeriesAligner = s.aligner, crossSeriesReducer = "REDUCE_SUM" },
                        { for k, v in { groupByFields = s.group_by } : k => v if length(v) > 0 },
                      )
                    }
                  }
                }
              ]
            }
          }
        })
      ]
    }
  })

  depends_on = [google_project_service.enabled]
}
