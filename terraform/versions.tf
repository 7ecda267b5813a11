terraform {
  # optional() attribute defaults need Terraform 1.3, check blocks 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.12 added the `urls` attribute of google_cloud_run_v2_service, used by
      # the deterministic-URL check in run.tf.
      version = ">= 6.12, < 7.0"
    }
  }
}
