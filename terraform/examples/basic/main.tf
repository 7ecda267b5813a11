# A complete deployment of copy-worker: the topology, EC2 publishers through
# workload identity federation, two filtered pull consumers of
# copy-completions and, opt-in, a push consumer.
#
#   terraform init
#   terraform apply -var project_id=my-worker-proj \
#     -var source_project=my-training-proj -var destination_project=my-serving-proj \
#     -var image=us-central1-docker.pkg.dev/my-worker-proj/copy-worker/copy-worker@sha256:...
#
# Every project id must be a real project you can read: the plan reads the
# worker project's number, and the apply creates the destination project's
# Vertex AI service agent. See ../../README.md for the walk-through (the
# repository must exist before the image can be pushed).

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.12, <= 6.50.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.12, <= 6.50.0"
    }
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9, < 1.0"
    }
  }
}

variable "project_id" {
  description = "Project of the worker."
  type        = string
}

variable "region" {
  description = "Region of the worker."
  type        = string
  default     = "us-central1"
}

variable "image" {
  description = "copy-worker image, by digest."
  type        = string
}

# No defaults: a made-up project id fails the plan or the apply (403, or "not
# found or not in ACTIVE state"). Use project_id for both to copy within the
# worker project.
variable "source_project" {
  description = "Project the models come from (a real project id, Vertex AI enabled)."
  type        = string
}

variable "destination_project" {
  description = "Project the models are copied to (a real project id, Vertex AI enabled)."
  type        = string
}

variable "aws_account_id" {
  description = "AWS account of the EC2 pipeline; empty disables federation."
  type        = string
  default     = ""
}

# Opt-in: a downstream service notified of successful copies by push. Both
# must be set; then the subscription carries an OIDC token of that account
# and dead-letters after 10 attempts into copy-completions-registry-sync-dead-letter.
variable "registry_sync_url" {
  description = "HTTPS endpoint of a downstream service notified of successful copies; null: no push consumer."
  type        = string
  default     = null
}

variable "registry_sync_service_account" {
  description = "Service account whose OIDC token the downstream push carries (the downstream service checks it); required with registry_sync_url."
  type        = string
  default     = null
}

# Only for the upgrade from the watch-message release (../../README.md,
# section 11): true while the watches still in flight are drained, false
# again afterwards.
variable "drain_copy_operations" {
  description = "Drain the previous release's copy-operations (upgrade only; README section 11)."
  type        = bool
  default     = false
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channels (projects/P/notificationChannels/ID) for the module's alerts."
  type        = list(string)
  default     = []
}

provider "google" {
  project = var.project_id
  region  = var.region
}

# The module creates service agents with google_project_service_identity, a
# google-beta resource in provider 6.x.
provider "google-beta" {
  project = var.project_id
  region  = var.region
}

module "copy_worker" {
  source = "../.."

  project_id = var.project_id
  region     = var.region
  image      = var.image

  # Short-form requests ({"source_model_id", "destination_model_id"}) resolve here.
  default_source_project = var.source_project
  default_target_project = var.destination_project
  default_location       = var.region

  # The worker gets its Vertex AI roles in both projects, and the destination
  # project's Vertex AI service agent gets roles/aiplatform.serviceAgent on
  # the source project (grant_vertex_service_agent_on_sources, default true).
  source_projects      = [var.source_project]
  destination_projects = [var.destination_project]

  # Alerts and dashboard are on by default (monitoring_enabled).
  notification_channels = var.notification_channels

  # Tuning: the defaults are DESIGN.md §2; shown here to make them visible.
  requests_ack_deadline_seconds = 60
  max_delivery_attempts         = 10
  request_timeout_seconds       = 120
  concurrency                   = 80
  max_instances                 = 10

  # Vertex AI calls a minute for the whole deployment, half of the default
  # quotas: the copy-start queue runs at vertex_copy_rate, the copy-poll
  # queue at what the starts' reads leave of vertex_read_rate (300 - 3 x 30
  # = 210). See ../../tasks.tf.
  vertex_copy_rate = 30
  vertex_read_rate = 300

  # Upgrade only (README section 11): -var drain_copy_operations=true.
  drain_copy_operations = var.drain_copy_operations

  aws_wif = {
    enabled    = var.aws_account_id != ""
    account_id = var.aws_account_id
    role_names = ["ec2-nightly-pipeline"]
  }

  completion_subscriptions = merge(var.registry_sync_url == null ? {} : {
    # A downstream service that registers successful copies (push, opt-in).
    "copy-completions-registry-sync" = {
      filter                     = "attributes.status = \"succeeded\""
      push_endpoint              = var.registry_sync_url
      push_service_account_email = var.registry_sync_service_account
      max_delivery_attempts      = 10
    }
    }, {
    # Alerting on everything that did not succeed (pull).
    "copy-completions-failures" = {
      filter = "attributes.status != \"succeeded\""
    }

    # The EC2 pipeline waits for its own copies into the destination project:
    # copy-worker publish --wait --completions-subscription copy-completions-ec2
    "copy-completions-ec2" = {
      filter              = "attributes.destination_project = \"${var.destination_project}\""
      subscribe_publisher = true
    }
  })
}

output "service_url" {
  value = module.copy_worker.service_url
}

output "topics" {
  value = module.copy_worker.topics
}

output "copy_start_queue" {
  value = module.copy_worker.copy_start_queue
}

output "copy_poll_queue" {
  value = module.copy_worker.copy_poll_queue
}

output "queue_rates_per_minute" {
  value = module.copy_worker.queue_rates_per_minute
}

output "copy_operations_drain" {
  value = module.copy_worker.copy_operations_drain
}

output "publisher_service_account" {
  value = module.copy_worker.publisher_service_account
}

output "wif_provider_name" {
  value = module.copy_worker.wif_provider_name
}

output "wif_audience" {
  value = module.copy_worker.wif_audience
}
