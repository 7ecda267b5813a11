output "service_url" {
  description = "URL of the worker service as Cloud Run reports it (the push endpoints are this + /pubsub/copy-requests and /pubsub/copy-callbacks)."
  value       = google_cloud_run_v2_service.worker.uri
}

output "service_name" {
  description = "Name of the Cloud Run service."
  value       = google_cloud_run_v2_service.worker.name
}

output "push_audience" {
  description = "Audience of the push OIDC tokens (oidc_token.audience of the push subscriptions)."
  value       = local.push_audience
}

output "accepted_audiences" {
  description = "PUSH_AUDIENCE of the worker: every audience it accepts from Pub/Sub's pushes and direct callers (the tasks' audience is tasks_url)."
  value       = local.accepted_audiences
}

output "topics" {
  description = "Full resource names of the topology's topics, keyed requests, completions, dead_letter, callbacks."
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
  value       = local.task_queue_names["starts"]
}

output "copy_poll_queue" {
  description = "Full name of the copy-poll queue (COPY_POLL_QUEUE): projects/P/locations/L/queues/Q. Its tasks are the running copies' next polls; pausing it holds them (nothing is lost, the copies are followed again on resume)."
  value       = local.task_queue_names["polls"]
}

output "queue_rates_per_minute" {
  description = "The dispatch rates the module derived for the two queues, a minute: starts = vertex_copy_rate, polls = vertex_read_rate - 3 x vertex_copy_rate (tasks.tf)."
  value = {
    starts = local.copy_start_rate_per_minute
    polls  = local.copy_poll_rate_per_minute
  }
}

output "tasks_url" {
  description = "URL both queues' tasks call (TASKS_URL, + /tasks/copy-starts or /tasks/copy-polls), also their tokens' audience."
  value       = local.tasks_url
}

output "copy_operations_drain" {
  description = "While drain_copy_operations is true: the full name of the previous release's copy-operations-push subscription, which must hold no undelivered message before drain_copy_operations goes back to false. null otherwise."
  value       = var.drain_copy_operations ? google_pubsub_subscription.operations_drain[0].id : null
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
  description = "Email of the push invoker service account (PUSH_SERVICE_ACCOUNTS): the identity of Pub/Sub's pushes, accepted on the /pubsub/* routes only."
  value       = google_service_account.push.email
}

output "tasks_service_account" {
  description = "Email of the tasks invoker service account (TASKS_SERVICE_ACCOUNT): the identity of both queues' tasks, accepted on the /tasks/* routes only."
  value       = google_service_account.tasks.email
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
