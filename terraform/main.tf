# copy-worker: the whole topology of DESIGN.md §2 on Cloud Run.
#
#   apis.tf     APIs the module needs
#   main.tf     shared locals, the project lookup, the Artifact Registry repository
#   pubsub.tf   the four topics, the worker's subscriptions, completion fan-out
#               (and, during an upgrade only, the drained copy-operations)
#   run.tf      the Cloud Run v2 service and who may invoke it
#   tasks.tf    the copy-start and copy-poll queues (Cloud Tasks), how their
#               rates are derived, and who may queue in them
#   iam.tf      service accounts and every IAM grant (worker, push, tasks,
#               Pub/Sub agent, Vertex AI)
#   wif.tf      optional AWS workload identity federation for publishers
#   monitoring.tf  log-based metrics, alert policies, dashboard (on by default)
#   outputs.tf  service URL, topic names, service accounts, WIF provider

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  names = var.names

  labels = merge({ "app" = "copy-worker", "managed-by" = "terraform" }, var.labels)

  project_number = data.google_project.this.number

  # Google-managed service agents of project_id, as IAM members
  # ("serviceAccount:service-NUMBER@gcp-sa-....iam.gserviceaccount.com"). A
  # service agent exists only once its API is enabled *and used*, and a grant
  # to one that does not exist yet fails, so iam.tf creates them first
  # (google_project_service_identity) and every grant uses its `member`,
  # read through time_sleep.service_agents_visible (iam.tf).
  pubsub_agent_member            = time_sleep.service_agents_visible.triggers["pubsub.googleapis.com"]
  artifact_registry_agent_member = time_sleep.service_agents_visible.triggers["artifactregistry.googleapis.com"]

  aws_wif_enabled = var.aws_wif.enabled

  # Image path prefix for `docker push` (README "Build and push").
  artifact_registry_url = "${var.region}-docker.pkg.dev/${var.project_id}/${local.names.artifact_repository}"
}

resource "google_artifact_registry_repository" "images" {
  #checkov:skip=CKV_GCP_84:CMEK is opt-in through var.artifact_registry_kms_key_name (the key must live in the repository's region and the module cannot create it); Google-managed encryption is the default.
  project       = var.project_id
  location      = var.region
  repository_id = local.names.artifact_repository
  description   = "copy-worker container images"
  format        = "DOCKER"
  labels        = local.labels
  kms_key_name  = var.artifact_registry_kms_key_name

  docker_config {
    # Tags may move (e.g. "latest" for humans), but Cloud Run is deployed by
    # digest (var.image), so a moved tag never changes what runs.
    immutable_tags = false
  }

  # Keep rollback targets; delete old untagged layers. KEEP wins over DELETE.
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent-versions"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.artifact_keep_recent_versions
    }
  }
  cleanup_policies {
    id     = "delete-old-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s" # 30 days
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_kms_crypto_key_iam_member.artifact_registry_cmek,
  ]
}
