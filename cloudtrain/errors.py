"""Errors that cloudtrain shows to its users.

Every error a user can cause (a wrong spec, a missing file, absent credentials, an unreachable
endpoint, an over-budget job) is a :class:`CloudtrainError` carrying a one-paragraph ``message``
and a ``hint`` saying what to do. The CLI prints both without a traceback and exits with the
error's ``exit_code``: 2 for bad input, 3 for a cloud or environment problem, 4 for a budget
refusal, 124 when ``wait --timeout`` runs out, 1 otherwise.
"""

from __future__ import annotations


class CloudtrainError(Exception):
    """Base class: a message for the user and a hint naming the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class SpecError(CloudtrainError):
    """The job spec (or an override, or a config file) is wrong."""

    exit_code = 2


class UsageError(CloudtrainError):
    """The command line asks for something that cannot be done (unknown job, unknown cloud...)."""

    exit_code = 2


class CatalogError(CloudtrainError):
    """No offer in the catalog satisfies the request, or an accelerator name is unknown."""

    exit_code = 2


class UnsupportedFeatureError(CloudtrainError):
    """A provider cannot do what the spec asks for; raised at plan time, before anything runs."""

    exit_code = 2


class BudgetExceededError(CloudtrainError):
    """The job's upper-bound cost exceeds ``budget.max_usd``; nothing was staged or created."""

    exit_code = 4


class ProviderError(CloudtrainError):
    """A cloud (or emulator) refused or failed a call, or credentials/configuration are missing."""

    exit_code = 3


class SubmissionUncertainError(ProviderError):
    """The create request may have been accepted but no answer came back; the job is kept PENDING
    in the store so ``cloudtrain status`` can find out."""


class ProviderNotInstalledError(ProviderError):
    """The optional dependencies of a provider are not installed."""

    exit_code = 3


class WaitTimeoutError(CloudtrainError):
    """``wait --timeout`` ran out while the job was still going (the job is not touched)."""

    exit_code = 124  # as timeout(1)


class JobNotFoundError(UsageError):
    """No job with that id or name in the job store."""
