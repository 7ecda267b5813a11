terraform {
  # optional() attribute defaults need Terraform 1.3, check blocks 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.12 added the `urls` attribute of google_cloud_run_v2_service, used by
      # the deterministic-URL check in run.tf. verify.sh checks the module
      # against both bounds: the schema of @cdktf/provider-google 14.11.0 is
      # generated from hashicorp/google 6.12.0, that of 16.12.1 from 6.50.0,
      # the last 6.x release. Move a bound and its pin in verify.sh together.
      version = ">= 6.12, <= 6.50.0"
    }
    google-beta = {
      source = "hashicorp/google-beta"
      # google_project_service_identity (service agents created before they
      # are granted anything, iam.tf) is a google-beta resource in 6.x. Same
      # bounds as google, checked against @cdktf/provider-google-beta 14.11.0
      # (6.12.0) and 16.12.1 (6.50.0).
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
