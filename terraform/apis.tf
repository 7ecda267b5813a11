# APIs the module needs in project_id. disable_on_destroy = false: destroying
# this module must never switch off an API that other workloads in the project
# use.
#
# cloudresourcemanager.googleapis.com is enabled here for later applies and
# the project IAM grants, but that cannot help the first plan: the plan reads
# data.google_project.this (main.tf) before anything is applied, so the API
# must already be on in project_id (terraform/README.md, step 1). It is on in
# every project created in the console or with `gcloud projects create`.
#
# Vertex AI must also be enabled in every source and destination project; the
# module does not manage APIs in projects it does not own (README pre-flight).

locals {
  required_apis = toset(concat(
    [
      "aiplatform.googleapis.com",           # Vertex AI, when project_id is also a source or destination
      "artifactregistry.googleapis.com",     # the image repository
      "cloudtasks.googleapis.com",           # the copy-start queue (tasks.tf)
      "cloudresourcemanager.googleapis.com", # project IAM grants; see the note below
      "iam.googleapis.com",                  # service accounts, workload identity pools
      "iamcredentials.googleapis.com",       # token minting for impersonation (WIF, push OIDC)
      "pubsub.googleapis.com",               # topics and subscriptions
      "run.googleapis.com",                  # the worker service
    ],
    local.aws_wif_enabled ? ["sts.googleapis.com"] : [],                            # token exchange for AWS credentials
    var.callback_signing_secret_id == null ? [] : ["secretmanager.googleapis.com"], # CALLBACK_SIGNING_SECRET
    var.pubsub_kms_key_name == null && var.artifact_registry_kms_key_name == null ? [] : ["cloudkms.googleapis.com"],
    var.monitoring_enabled ? ["logging.googleapis.com", "monitoring.googleapis.com"] : [], # log-based metrics, alerts, dashboard
  ))
}

resource "google_project_service" "enabled" {
  for_each = var.enable_apis ? local.required_apis : toset([])

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}
