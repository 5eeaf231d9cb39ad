"""How the Azure ML backend reads azure-core's and the SDK's errors: which left the create call
unsent, which are worth another attempt, and the one clear message (with a hint) for each."""

from __future__ import annotations

from typing import Iterator

from cloudtrain.errors import ProviderError, SpecError

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
CREDENTIALS_HINT = ("sign in with `az login`, or set AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET (a service principal), "
                    "or run where a managed identity is available; to use the local emulator, run "
                    "`cloudtrain emulator start --cloud azureml` and export what it prints")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps (the SDK wraps azure-core's errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def not_sent(error: Exception) -> bool:
    """azure-core's ServiceRequestError: "no request was sent" (refused, no route, TLS failure)."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    chain = list(_causes(error))
    return any(isinstance(e, ServiceRequestError) for e in chain) and \
        not any(isinstance(e, (ServiceResponseError, HttpResponseError)) for e in chain)


def transient(error: Exception) -> bool:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    for current in _causes(error):
        if isinstance(current, (ServiceRequestError, ServiceResponseError)):
            return True
        if isinstance(current, HttpResponseError) and getattr(current, "status_code", None) in TRANSIENT_STATUS:
            return True
    return False


def provider_error(what: str, error: Exception) -> ProviderError | SpecError:
    from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
                                       ServiceRequestError, ServiceResponseError)

    if isinstance(error, (ProviderError, SpecError)):
        return error
    text = " ".join(str(error).split())[:600]
    if isinstance(error, ClientAuthenticationError):
        return ProviderError(f"no usable Azure credentials to {what}: {text}", CREDENTIALS_HINT)
    if any(isinstance(e, (ServiceRequestError, ServiceResponseError)) for e in _causes(error)):  # also when the SDK wrapped it
        return ProviderError(f"cannot reach Azure ML while trying to {what}: {text}",
                             "check your network, or AZUREML_DEV_URL_MFE and REQUESTS_CA_BUNDLE when using the emulator")
    if isinstance(error, ResourceNotFoundError):
        return ProviderError(f"Azure ML found nothing to {what}: {text}",
                             "check azureml.subscription_id, azureml.resource_group and azureml.workspace, and the job's name")
    if isinstance(error, HttpResponseError):
        hint = CREDENTIALS_HINT if error.status_code in (401, 403) else "`cloudtrain submit --dry-run` shows the job that was sent"
        return ProviderError(f"Azure ML refused to {what}: {text}", hint)
    from azure.ai.ml.exceptions import ValidationException

    if isinstance(error, ValidationException):
        return SpecError(f"the Azure ML job is not valid: {text}", "fix the spec fields behind the job fields named above")
    return ProviderError(f"the Azure ML SDK failed to {what}: {type(error).__name__}: {text}",
                         "retry; if it persists, check the workspace settings and credentials")
