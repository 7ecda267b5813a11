terraform {
  # optional() attribute defaults need Terraform 1.3, check blocks 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.12 added the `urls` attribute of google_cloud_run_v2_service, used by
      # the deterministic-URL check in run.tf. The upper bound is the version
      # verify.sh checks the module against (the schema of
      # @cdktf/provider-google 16.12.1 is generated from hashicorp/google
      # 6.50.0, the last 6.x release); raise both together.
      version = ">= 6.12, <= 6.50.0"
    }
    google-beta = {
      source = "hashicorp/google-beta"
      # google_project_service_identity (service agents created before they
      # are granted anything, iam.tf) is a google-beta resource in 6.x. Same
      # bounds as google, checked against @cdktf/provider-google-beta 16.12.1.
      version = ">= 6.12, <= 6.50.0"
    }
    time = {
      source = "hashicorp/time"
      # time_sleep: the wait for log-based metrics to reach Cloud Monitoring
      # (monitoring.tf). create_duration and triggers exist since 0.7.
      version = ">= 0.9, < 1.0"
    }
  }
}
