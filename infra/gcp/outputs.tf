output "project" {
  description = "vertex.project"
  value       = var.project
}

output "location" {
  description = "vertex.location"
  value       = var.region
}

output "staging_bucket" {
  description = "vertex.staging_bucket"
  value       = "gs://${google_storage_bucket.staging.name}/${var.staging_prefix}"
}

output "service_account" {
  description = "vertex.service_account"
  value       = google_service_account.training.email
}

output "image_repository" {
  description = "Push custom training images (infra/docker) here; name them in a spec's image.vertex"
  value       = "${var.region}-docker.pkg.dev/${var.project}/${google_artifact_registry_repository.training.repository_id}"
}
