variable "project" {
  description = "The Google Cloud project that runs the training jobs (vertex.project)."
  type        = string
}

variable "region" {
  description = "Region of the Vertex AI jobs, the staging bucket and the image repository (vertex.location)."
  type        = string
  default     = "us-central1"
}

variable "name" {
  description = "Prefix of the resources' names."
  type        = string
  default     = "cloudtrain"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,20}$", var.name))
    error_message = "name: 3 to 21 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "staging_prefix" {
  description = "Prefix inside the staging bucket under which cloudtrain stages jobs."
  type        = string
  default     = "cloudtrain"
}

variable "bundle_retention_days" {
  description = "Days after which staged code bundles expire."
  type        = number
  default     = 30
}

variable "noncurrent_version_retention_days" {
  description = "Days after which overwritten or deleted object versions are removed."
  type        = number
  default     = 30
}

variable "secret_ids" {
  description = "Secret Manager secret ids that training jobs may read (the gcp_secret: references in job specs)."
  type        = list(string)
  default     = []
}

variable "submitters" {
  description = "Principals that submit jobs with cloudtrain (e.g. \"user:me@example.com\", \"group:ml@example.com\"): they may run jobs as the training service account and use the staging bucket."
  type        = list(string)
  default     = []
}
