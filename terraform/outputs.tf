output "service_url" {
  description = "URL of the worker service as Cloud Run reports it (the push endpoints are this + /pubsub/copy-requests and /pubsub/copy-operations)."
  value       = google_cloud_run_v2_service.worker.uri
}

output "service_name" {
  description = "Name of the Cloud Run service."
  value       = google_cloud_run_v2_service.worker.name
}

output "push_audience" {
  description = "Audience of the push OIDC tokens (oidc_token.audience of the three push subscriptions)."
  value       = local.push_audience
}

output "accepted_audiences" {
  description = "PUSH_AUDIENCE of the worker: every audience it accepts."
  value       = local.accepted_audiences
}

output "topics" {
  description = "Full resource names of the five topics, keyed requests, operations, completions, dead_letter, callbacks."
  value       = { for k, t in google_pubsub_topic.topic : k => t.id }
}

output "requests_topic" {
  description = "Full name of copy-requests: where callers publish (copy-worker publish --topic)."
  value       = google_pubsub_topic.topic["requests"].id
}

output "completions_topic" {
  description = "Full name of copy-completions: what downstream consumers subscribe to."
  value       = google_pubsub_topic.topic["completions"].id
}

output "dead_letter_topic" {
  description = "Full name of copy-dead-letter."
  value       = google_pubsub_topic.topic["dead_letter"].id
}

output "subscriptions" {
  description = "Full resource names of the worker's subscriptions."
  value = {
    requests_push      = google_pubsub_subscription.requests_push.id
    operations_push    = google_pubsub_subscription.operations_push.id
    dead_letter_replay = google_pubsub_subscription.dead_letter_replay.id
    callbacks_push     = google_pubsub_subscription.callbacks_push.id
  }
}

output "completion_subscriptions" {
  description = "Full resource names of the fan-out subscriptions created on copy-completions."
  value       = { for k, s in google_pubsub_subscription.completions : k => s.id }
}

output "completion_dead_letter_subscriptions" {
  description = "Pull subscriptions that keep what a push fan-out subscription could not deliver (one per completion subscription with a push_endpoint), keyed like completion_subscriptions."
  value       = { for k, s in google_pubsub_subscription.completions_dead_letter : k => s.id }
}

output "copy_start_queue" {
  description = "Full name of the copy-start queue (COPY_START_QUEUE): projects/P/locations/L/queues/Q. Inspect with `gcloud tasks queues describe`; pause with `gcloud tasks queues pause` to hold every copy start."
  value       = local.copy_start_queue_name
}

output "copy_start_url" {
  description = "URL the copy-start tasks call (COPY_START_URL, + /tasks/copy-starts), also their tokens' audience."
  value       = local.copy_start_url
}

output "ingress" {
  description = "The Cloud Run ingress setting the module chose (or var.ingress)."
  value       = local.ingress
}

output "worker_service_account" {
  description = "Email of the worker's service account."
  value       = google_service_account.worker.email
}

output "push_service_account" {
  description = "Email of the push invoker service account (PUSH_SERVICE_ACCOUNTS, COPY_START_SERVICE_ACCOUNT): the identity of Pub/Sub's pushes and of the copy-start tasks."
  value       = google_service_account.push.email
}

output "replay_service_account" {
  description = "Email of the replay service account: run `copy-worker replay` impersonating it (terraform/README.md section 5). It may read copy-dead-letter-replay and publish to copy-requests and copy-callbacks, nothing else."
  value       = google_service_account.replay.email
}

output "publisher_service_account" {
  description = "Email of the publisher service account (copy-requests only)."
  value       = google_service_account.publisher.email
}

output "waiter_project" {
  description = "The project of the waiters' temporary subscriptions: set COPY_WAITER_PROJECT to it for `copy-worker publish --wait` and `copy-worker wait`."
  value       = local.waiter_project
}

output "artifact_registry_repository" {
  description = "Image path prefix: docker push <this>/copy-worker:TAG."
  value       = local.artifact_registry_url
}

output "wif_provider_name" {
  description = "Full name of the AWS workload identity provider (projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER), or null when aws_wif is disabled."
  value       = local.aws_wif_enabled ? google_iam_workload_identity_pool_provider.aws[0].name : null
}

output "wif_audience" {
  description = "Audience for `gcloud iam workload-identity-pools create-cred-config` on EC2, or null when aws_wif is disabled."
  value       = local.aws_wif_enabled ? "//iam.googleapis.com/${google_iam_workload_identity_pool_provider.aws[0].name}" : null
}
