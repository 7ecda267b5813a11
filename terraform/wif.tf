# Optional: workload identity federation for publishers running on AWS (EC2).
#
# EC2 instances exchange their AWS credentials (signed GetCallerIdentity) for a
# Google token, then impersonate the publisher service account, whose only
# permission is roles/pubsub.publisher on copy-requests (iam.tf). No service
# account key ever exists.
#
#   AWS role  --(STS token exchange, pool provider)-->  principalSet
#             --(workloadIdentityUser)-->               publisher SA
#             --(pubsub.publisher on copy-requests)-->  publish
#
# Two independent locks: the provider's attribute_condition rejects every
# identity of the account except the listed roles, and the
# workloadIdentityUser binding names the same roles.

locals {
  # The ARN an EC2 instance presents is the assumed-role form:
  #   arn:aws:sts::ACCOUNT:assumed-role/ROLE/INSTANCE-ID
  # The mapping below cuts the session name off, giving
  #   arn:aws:sts::ACCOUNT:assumed-role/ROLE
  aws_role_arns = [
    for r in var.aws_wif.role_names : "arn:aws:sts::${var.aws_wif.account_id}:assumed-role/${r}"
  ]
}

resource "google_iam_workload_identity_pool" "aws" {
  count = local.aws_wif_enabled ? 1 : 0

  project                   = var.project_id
  workload_identity_pool_id = var.aws_wif.pool_id
  display_name              = "copy-worker AWS publishers"
  description               = "AWS workloads that publish copy requests to copy-worker."

  depends_on = [google_project_service.enabled]
}

resource "google_iam_workload_identity_pool_provider" "aws" {
  #checkov:skip=CKV_GCP_125:False positive. The check is for GitHub Actions OIDC providers; this is an AWS provider, which has no oidc block, and checkov 3.3.30 reports FAILED when that block is absent. The trust is narrowed by aws.account_id plus attribute_condition on the exact role ARNs.
  count = local.aws_wif_enabled ? 1 : 0

  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.aws[0].workload_identity_pool_id
  workload_identity_pool_provider_id = var.aws_wif.provider_id
  display_name                       = "AWS ${var.aws_wif.account_id}"
  description                        = "Accepts only the listed IAM roles of AWS account ${var.aws_wif.account_id}."

  aws {
    account_id = var.aws_wif.account_id
  }

  # Google's documented mapping for AWS: subject = the full caller ARN,
  # aws_role = the assumed-role ARN without the session name.
  attribute_mapping = {
    "google.subject"     = "assertion.arn"
    "attribute.account"  = "assertion.account"
    "attribute.aws_role" = "assertion.arn.contains('assumed-role') ? assertion.arn.extract('{account_arn}assumed-role/') + 'assumed-role/' + assertion.arn.extract('assumed-role/{role_name}/') : assertion.arn"
  }

  attribute_condition = "attribute.aws_role in [${join(", ", [for a in local.aws_role_arns : "'${a}'"])}]"
}

# Each listed role may impersonate the publisher service account. principalSet
# by attribute.aws_role: every instance of the role, no other identity.
resource "google_service_account_iam_member" "publisher_wif" {
  for_each = local.aws_wif_enabled ? toset(local.aws_role_arns) : toset([])

  service_account_id = google_service_account.publisher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.aws[0].name}/attribute.aws_role/${each.value}"
}
