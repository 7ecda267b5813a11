# Topology of DESIGN.md §2:
#
#   copy-requests    --> copy-requests-push      push POST /pubsub/copy-requests
#                                                ack 60 s, retry 10-600 s,
#                                                dead-letter after 10 attempts
#   copy-operations  --> copy-operations-push    push POST /pubsub/copy-operations
#                                                ack 300 s, retry 10-60 s (the polling
#                                                clock), no dead-letter policy
#   copy-completions --> one subscription per downstream consumer (fan-out)
#   copy-callbacks   --> copy-callbacks-push     push POST /pubsub/copy-callbacks
#                                                (DESIGN.md §7: one webhook POST per
#                                                delivery), ack 60 s, retry 10-600 s,
#                                                dead-letter after 10 attempts
#   copy-dead-letter --> copy-dead-letter-replay pull, 7 days, read by `copy-worker replay`
#
# Every subscription here has expiration_policy { ttl = "" }: the default
# expires a subscription after 31 days without activity, and a quiet
# dead-letter subscription would then vanish, after which dead-lettered
# requests are silently dropped (a topic without a subscription drops messages).

locals {
  topics = {
    requests    = local.names.requests_topic
    operations  = local.names.operations_topic
    completions = local.names.completions_topic
    dead_letter = local.names.dead_letter_topic
    callbacks   = local.names.callbacks_topic
  }
}

resource "google_pubsub_topic" "topic" {
  #checkov:skip=CKV_GCP_83:CMEK is opt-in through var.pubsub_kms_key_name (the key and its location are the caller's choice); Google-managed encryption is the default.
  for_each = local.topics

  project      = var.project_id
  name         = each.value
  labels       = local.labels
  kms_key_name = var.pubsub_kms_key_name

  # copy-completions keeps its events for 7 days whoever has read them, so that
  # `copy-worker status` and `wait` find an event published before they started: they seek a
  # new subscription back in time, which reaches messages older than the subscription only
  # through topic retention (google.pubsub.v1.Topic.message_retention_duration). Stored
  # messages are billed; the other topics keep none beyond their subscriptions.
  message_retention_duration = each.key == "completions" ? "604800s" : null

  dynamic "message_storage_policy" {
    for_each = length(var.pubsub_allowed_persistence_regions) > 0 ? [var.pubsub_allowed_persistence_regions] : []
    content {
      allowed_persistence_regions = message_storage_policy.value
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_kms_crypto_key_iam_member.pubsub_cmek,
  ]
}

# --- copy-requests-push ----------------------------------------------------------

resource "google_pubsub_subscription" "requests_push" {
  project = var.project_id
  name    = local.names.requests_subscription
  topic   = google_pubsub_topic.topic["requests"].id
  labels  = local.labels

  ack_deadline_seconds       = var.requests_ack_deadline_seconds
  message_retention_duration = var.message_retention_duration
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${var.requests_min_backoff_seconds}s"
    maximum_backoff = "${var.requests_max_backoff_seconds}s"
  }

  # After max_delivery_attempts Pub/Sub forwards the message to copy-dead-letter
  # with CloudPubSubDeadLetterSource* attributes. This needs, on top of this
  # block, the Pub/Sub service agent as publisher on the dead-letter topic and
  # as subscriber on this subscription (iam.tf); without them messages are
  # redelivered forever and the console shows a warning, nothing else.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-requests"

    # Pub/Sub signs a Google OIDC token as the push service account. The
    # audience is explicit: Pub/Sub's default would be the full endpoint URL,
    # which differs per subscription. The worker (PUSH_AUDIENCE) and Cloud Run
    # both accept the audience set here; run.tf ("Push audience") explains how
    # it is derived without a dependency cycle.
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_audience
    }
  }

  depends_on = [
    # Token creator must exist before the first push, or the first deliveries
    # fail with an authentication error until IAM catches up.
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.push_invoker,
    # The dead-letter topic must have a subscription before anything can be
    # dead-lettered into it, and the agent must be able to publish there.
    google_pubsub_subscription.dead_letter_replay,
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
  ]
}

# --- copy-callbacks-push ---------------------------------------------------------
# Webhook callbacks are a push stage of their own: the worker posts the webhook
# inside this delivery (Cloud Run throttles CPU after a response, so nothing may
# run after an ack). A 2xx acks; a refusal is dead-lettered by the worker with
# the receiver's status; anything else is retried with this backoff and, after
# max_delivery_attempts, dead-lettered (CALLBACK_MAX_ATTEMPTS in the worker
# names the receiver's last answer first).

resource "google_pubsub_subscription" "callbacks_push" {
  project = var.project_id
  name    = local.names.callbacks_subscription
  topic   = google_pubsub_topic.topic["callbacks"].id
  labels  = local.labels

  ack_deadline_seconds       = var.requests_ack_deadline_seconds
  message_retention_duration = var.message_retention_duration
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${var.requests_min_backoff_seconds}s"
    maximum_backoff = "${var.requests_max_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.topic["dead_letter"].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-callbacks"
    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_audience
    }
  }

  depends_on = [
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.push_invoker,
    google_pubsub_subscription.dead_letter_replay,
    google_pubsub_topic_iam_member.pubsub_agent_dead_letter_publisher,
  ]
}

# --- copy-operations-push --------------------------------------------------------

resource "google_pubsub_subscription" "operations_push" {
  project = var.project_id
  name    = local.names.operations_subscription
  topic   = google_pubsub_topic.topic["operations"].id
  labels  = local.labels

  # Above WATCH_HOLD (run.tf checks it): a watch delivery may poll in-request
  # for WATCH_HOLD before it hands the watch on as a new message and acks.
  ack_deadline_seconds = var.operations_ack_deadline_seconds
  # Above COPY_MAX_DURATION: the handler gives up on an operation after that
  # long, so the watch message must live at least as long.
  message_retention_duration = var.message_retention_duration
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  # In the steady state every delivery is acked (204): at the end of a hold the
  # worker publishes the same watch again ("continue as new"), because Pub/Sub
  # shrinks the push window of an endpoint that answers non-2xx. The retry
  # policy spaces what is still refused: a 503 (transient failure) and the 429
  # of an instance shutting down, after 10 s growing to at most 60 s.
  retry_policy {
    minimum_backoff = "${var.operations_min_backoff_seconds}s"
    maximum_backoff = "${var.operations_max_backoff_seconds}s"
  }

  # Deliberately no dead_letter_policy: a copy that runs for hours is polled
  # hundreds of times, and any attempt limit would dead-letter healthy copies.
  # The handler enforces COPY_MAX_DURATION and dead-letters itself.

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-operations"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = local.push_audience
    }
  }

  depends_on = [
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.push_invoker,
  ]
}

# --- copy-dead-letter-replay -------------------------------------------------------

resource "google_pubsub_subscription" "dead_letter_replay" {
  project = var.project_id
  name    = local.names.dead_letter_subscription
  topic   = google_pubsub_topic.topic["dead_letter"].id
  labels  = local.labels

  # Pull subscription, read by `copy-worker replay` (DESIGN.md §6), which acks
  # a message only after its republish returned a message id.
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s" # 7 days (Pub/Sub allows up to 31)
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}

# --- copy-completions fan-out --------------------------------------------------------
#
# Completion events are CloudEvents in binary mode with plain attributes for
# filtering: status, request_id, destination_project (DESIGN.md §3). Examples
# (see examples/basic):
#   attributes.status = "succeeded"
#   attributes.status != "succeeded"
#   attributes.destination_project = "dst-proj" AND attributes.status = "succeeded"

resource "google_pubsub_subscription" "completions" {
  for_each = var.completion_subscriptions

  project = var.project_id
  name    = each.key
  topic   = google_pubsub_topic.topic["completions"].id
  labels  = local.labels

  filter                     = each.value.filter
  ack_deadline_seconds       = each.value.ack_deadline_seconds
  message_retention_duration = each.value.message_retention_duration
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "${each.value.minimum_backoff_seconds}s"
    maximum_backoff = "${each.value.maximum_backoff_seconds}s"
  }

  # A push subscription dead-letters what it cannot deliver after
  # max_delivery_attempts into a topic of its own (below), instead of retrying
  # every message for the whole retention period: a receiver that is gone
  # would otherwise keep a backlog that never drains.
  dynamic "dead_letter_policy" {
    for_each = each.value.push_endpoint == null ? [] : [each.value]
    content {
      dead_letter_topic     = google_pubsub_topic.completions_dead_letter[each.key].id
      max_delivery_attempts = dead_letter_policy.value.max_delivery_attempts
    }
  }

  dynamic "push_config" {
    for_each = each.value.push_endpoint == null ? [] : [each.value]
    content {
      push_endpoint = push_config.value.push_endpoint

      # Always a token: the variable's validation requires
      # push_service_account_email with push_endpoint.
      dynamic "oidc_token" {
        for_each = [push_config.value]
        content {
          service_account_email = oidc_token.value.push_service_account_email
          # null: Pub/Sub uses the push endpoint URL as the audience.
          audience = oidc_token.value.push_audience
        }
      }
    }
  }

  depends_on = [
    google_service_account_iam_member.pubsub_agent_token_creator_completions,
    google_pubsub_subscription.completions_dead_letter,
    google_pubsub_topic_iam_member.pubsub_agent_completions_dead_letter_publisher,
  ]
}

# Dead letters of the push fan-out subscriptions: a topic and a pull
# subscription (kept 7 days, never expiring) per push subscription, named
# after it. Not copy-dead-letter: `copy-worker replay` republishes what it
# finds there as copy requests.
locals {
  completion_push_subscriptions = { for k, s in var.completion_subscriptions : k => s if s.push_endpoint != null }
}

resource "google_pubsub_topic" "completions_dead_letter" {
  #checkov:skip=CKV_GCP_83:CMEK is opt-in through var.pubsub_kms_key_name, as for the other topics.
  for_each = local.completion_push_subscriptions

  project      = var.project_id
  name         = "${each.key}-dead-letter"
  labels       = local.labels
  kms_key_name = var.pubsub_kms_key_name

  depends_on = [
    google_project_service.enabled,
    google_kms_crypto_key_iam_member.pubsub_cmek,
  ]
}

resource "google_pubsub_subscription" "completions_dead_letter" {
  for_each = local.completion_push_subscriptions

  project = var.project_id
  name    = "${each.key}-dead-letter"
  topic   = google_pubsub_topic.completions_dead_letter[each.key].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}
