# cloudtrain on Vertex AI: the APIs, a staging bucket (uniform access, public access prevented,
# versioned, encrypted with a customer-managed key, old bundles expired), an image repository, and
# a service account for training jobs that holds only what a Vertex custom training job uses:
# writing its logs, reading and writing its own staging bucket, pulling images from its own
# repository, and reading the secrets named in var.secret_ids. Nothing is granted project-wide
# except logging.logWriter.
#
#   terraform init && terraform apply -var project=MY_PROJECT
#   terraform output -json > vertex-outputs.json
#   cloudtrain init --cloud vertex --from-stack-outputs vertex-outputs.json

locals {
  services = concat(
    [
      "aiplatform.googleapis.com",       # Vertex AI custom training
      "storage.googleapis.com",          # the staging bucket
      "logging.googleapis.com",          # job logs (cloudtrain logs)
      "artifactregistry.googleapis.com", # custom training images
      "cloudkms.googleapis.com",         # the staging key
      "iam.googleapis.com",              # the training service account
    ],
    length(var.secret_ids) > 0 ? ["secretmanager.googleapis.com"] : [],
  )
}

data "google_project" "this" {
  project_id = var.project
}

resource "google_project_service" "apis" {
  for_each           = toset(local.services)
  project            = var.project
  service            = each.value
  disable_on_destroy = false
}

# -- encryption -------------------------------------------------------------------------------------

resource "google_kms_key_ring" "staging" {
  name       = "${var.name}-staging"
  location   = var.region
  project    = var.project
  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key" "staging" {
  name            = "${var.name}-staging"
  key_ring        = google_kms_key_ring.staging.id
  rotation_period = "7776000s" # 90 days
  lifecycle {
    prevent_destroy = true
  }
}

data "google_storage_project_service_account" "gcs" {
  project    = var.project
  depends_on = [google_project_service.apis]
}

resource "google_kms_crypto_key_iam_member" "gcs_uses_key" {
  crypto_key_id = google_kms_crypto_key.staging.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_kms_crypto_key_iam_member" "registry_uses_key" {
  crypto_key_id = google_kms_crypto_key.staging.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
  depends_on    = [google_project_service.apis]
}

# -- staging bucket ---------------------------------------------------------------------------------

resource "google_storage_bucket" "access_logs" {
  # checkov:skip=CKV_GCP_62: this bucket is the access-log target; logging it to itself would loop
  name                        = "${var.project}-${var.name}-access-logs"
  project                     = var.project
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = google_kms_crypto_key.staging.id
  }
  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

# Cloud Storage delivers usage and storage logs as this Google group
resource "google_storage_bucket_iam_member" "access_logs_delivery" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

resource "google_storage_bucket" "staging" {
  name                        = "${var.project}-${var.name}-staging"
  project                     = var.project
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  versioning {
    enabled = true
  }
  encryption {
    default_kms_key_name = google_kms_crypto_key.staging.id
  }
  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "staging/"
  }
  lifecycle_rule {
    # old code bundles: <prefix>/<job>/staging/code.tar.gz
    condition {
      age            = var.bundle_retention_days
      matches_prefix = ["${var.staging_prefix}/"]
      matches_suffix = ["/staging/code.tar.gz"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 7
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.gcs_uses_key]
}

# -- image repository -------------------------------------------------------------------------------

resource "google_artifact_registry_repository" "training" {
  repository_id = "${var.name}-training"
  project       = var.project
  location      = var.region
  format        = "DOCKER"
  description   = "cloudtrain custom training images (infra/docker)"
  kms_key_name  = google_kms_crypto_key.staging.id
  docker_config {
    immutable_tags = true
  }
  depends_on = [google_kms_crypto_key_iam_member.registry_uses_key]
}

# -- the training service account -------------------------------------------------------------------

resource "google_service_account" "training" {
  account_id   = "${var.name}-training"
  project      = var.project
  display_name = "cloudtrain training jobs"
  description  = "Runs cloudtrain's Vertex AI custom training jobs (vertex.service_account)"
  depends_on   = [google_project_service.apis]
}

resource "google_project_iam_member" "training_writes_logs" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.training.email}"
}

resource "google_storage_bucket_iam_member" "training_uses_staging" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.training.email}"
}

resource "google_artifact_registry_repository_iam_member" "training_pulls_images" {
  project    = var.project
  location   = var.region
  repository = google_artifact_registry_repository.training.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.training.email}"
}

resource "google_secret_manager_secret_iam_member" "training_reads_secrets" {
  for_each  = toset(var.secret_ids)
  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.training.email}"
}

# -- who submits ------------------------------------------------------------------------------------

resource "google_service_account_iam_member" "submitters_act_as_training" {
  for_each           = toset(var.submitters)
  service_account_id = google_service_account.training.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}

resource "google_storage_bucket_iam_member" "submitters_use_staging" {
  for_each = toset(var.submitters)
  bucket   = google_storage_bucket.staging.name
  role     = "roles/storage.objectUser"
  member   = each.value
}

resource "google_project_iam_member" "submitters_run_jobs" {
  for_each = toset(var.submitters)
  project  = var.project
  role     = "roles/aiplatform.user"
  member   = each.value
}

resource "google_project_iam_member" "submitters_read_job_logs" {
  for_each = toset(var.submitters)
  project  = var.project
  role     = "roles/logging.viewer" # cloudtrain logs reads the jobs' logs from Cloud Logging
  member   = each.value
}
