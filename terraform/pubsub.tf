# Topology of DESIGN.md §2:
#
#   copy-requests    --> copy-requests-push      push POST /pubsub/copy-requests
#                                                ack 60 s, retry 10-600 s,
#                                                dead-letter after 10 attempts
#   copy-completions --> one subscription per downstream consumer (fan-out)
#   copy-callbacks   --> copy-callbacks-push     push POST /pubsub/copy-callbacks
#                                                (DESIGN.md §7: one webhook POST per
#                                                delivery), ack 60 s, retry 10-600 s,
#                                                dead-letter after 10 attempts
#   copy-dead-letter --> copy-dead-letter-replay pull, 7 days, read by `copy-worker replay`
#
# Running copies are followed by the copy-poll queue (tasks.tf), not by
# Pub/Sub. The previous release's copy-operations topic and subscription
# exist only while an upgrade drains them (var.drain_copy_operations, at the
# end of this file).
#
# Every subscription here has expiration_policy { ttl = "" }: the default
# expires a subscription after 31 days without activity, and a quiet
# dead-letter subscription would then vanish, after which dead-lettered
# requests are silently dropped (a topic without a subscription drops messages).

locals {
  topics = {
    requests    = local.names.requests_topic
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

# --- Upgrade from the watch-message release: copy-operations, drained ----------------
#
# The previous release followed each running copy with watch messages on
# copy-operations. With var.drain_copy_operations = true the module keeps that
# topic and its push subscription, and the worker (COPY_OPERATIONS_DRAIN, run.tf)
# answers each watch still in flight on POST /pubsub/copy-operations by
# creating its poll task (or, for a watch that was waiting to start its copy,
# a copy-start task) and acking it. Once copy-operations-push holds no
# undelivered message, drain_copy_operations = false deletes both
# (README, "Upgrading from the watch-message release").
#
# The moved blocks give the objects the previous release created the
# addresses below, so the first apply of this release neither destroys nor
# recreates them while watches are in flight (a deleted subscription loses
# its unacked messages). Their names come from names.operations_topic and
# names.operations_subscription, unchanged, so an override given to the
# previous release still names the same objects.

locals {
  # The previous release's watch topic and subscription (topology::legacy in
  # src/topology.rs); not among local.topics, the topics of the topology.
  drained = {
    topic        = local.names.operations_topic
    subscription = local.names.operations_subscription
  }
}

moved {
  from = google_pubsub_topic.topic["operations"]
  to   = google_pubsub_topic.operations_drain[0]
}

moved {
  from = google_pubsub_subscription.operations_push
  to   = google_pubsub_subscription.operations_drain[0]
}

resource "google_pubsub_topic" "operations_drain" {
  #checkov:skip=CKV_GCP_83:CMEK is opt-in through var.pubsub_kms_key_name, as for the other topics.
  count = var.drain_copy_operations ? 1 : 0

  project      = var.project_id
  name         = local.drained.topic
  labels       = local.labels
  kms_key_name = var.pubsub_kms_key_name

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

resource "google_pubsub_subscription" "operations_drain" {
  count = var.drain_copy_operations ? 1 : 0

  project = var.project_id
  name    = local.drained.subscription
  topic   = google_pubsub_topic.operations_drain[0].id
  labels  = local.labels

  # The previous release's settings, unchanged, so the upgrade's first apply
  # changes nothing about how the watches in flight are delivered: an ack
  # deadline of 300 s (a shorter one would redeliver a watch that a revision
  # of the previous release still holds), retries after 10-60 s, and
  # deliberately no dead-letter policy, which could dead-letter a running
  # copy's only watch. The drain answers each delivery within 45 s.
  ack_deadline_seconds       = 300
  message_retention_duration = var.message_retention_duration
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "60s"
  }

  push_config {
    push_endpoint = "${google_cloud_run_v2_service.worker.uri}/pubsub/copy-operations"

    # The push account, as for the other push subscriptions: the worker
    # accepts it on the /pubsub/* routes.
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
