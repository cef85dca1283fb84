"""The engine's typed errors: why a command or a reconcile cannot go on. No exit codes here.

Public names: SyncdError, UsageError, LedgerRefusedError, LedgerOfAnotherProjectError,
LedgerBusyError, ServiceError, ServiceUnreachableError, KeyRefusedError, ProjectMissingError,
ServiceAnswerError, NothingToTrainError, TrainingRefusedError, ProjectKindError, PullError,
ReviewError.

    SyncdError                      the message is one line, safe to print (no key in it)
    ├── UsageError                  a flag or argument the command cannot use
    ├── LedgerRefusedError          a ledger syncd must not touch (corrupt, newer, other project)
    │   └── LedgerOfAnotherProjectError  bound to another project than the config names
    ├── LedgerBusyError             another process holds the ledger's writer lock
    ├── ServiceError                the service cannot be used for this mirror
    │   ├── ServiceUnreachableError   no answer, or a fatal one, after the client's retries
    │   ├── KeyRefusedError           401/403: the training key is not this resource's
    │   ├── ProjectMissingError       the mirror's project does not exist at the endpoint
    │   └── ServiceAnswerError        any other error answer the run cannot go past
    ├── NothingToTrainError         `train`: nothing changed since the last training
    ├── TrainingRefusedError        `train`: the service would not train (the data, not syncd)
    ├── ProjectKindError            a project syncd cannot mirror (e.g. object detection)
    ├── PullError                   `pull` cannot start (its target is another project's tree)
    └── ReviewError                 `review` cannot be made (no trained iteration, ...)

All are raised by the engine (TrainingRefusedError and NothingToTrainError by syncd.train,
UsageError by the CLI's commands; ProjectKindError by syncd.remote, PullError by syncd.pull,
ReviewError by syncd.review, which import them from here so that the CLI's exit-code table does not
load those modules at every start). Raised beside their modules, subclasses too: ConfigError
(syncd.config), CredentialsError (syncd.credentials), LocalIOError (syncd.localio).
`syncd.cli.main` holds the one table that turns each into an exit code; the daemon logs them
and retries.
"""

from __future__ import annotations


class SyncdError(Exception):
    """A reason syncd cannot go on; `str()` is one line that says what to do."""


class UsageError(SyncdError):
    """A command-line flag or argument that cannot be used (the message names it)."""


class LedgerRefusedError(SyncdError):
    """The ledger file cannot be used (not a ledger, a newer schema, another project's, unreadable);
    the message says why and what to do."""


class LedgerOfAnotherProjectError(LedgerRefusedError):
    """The ledger is bound to another project than the config names. Before this is said, the
    config's project is looked up: a mistyped `project_id` is the project's error, not the
    ledger's (syncd.reconcile.require_project)."""


class LedgerBusyError(SyncdError):
    """Another process holds the ledger's writer lock. Not a LedgerRefusedError: the ledger is
    fine, and it is worth waiting for (`--wait-lock`)."""


class ServiceError(SyncdError):
    """The service cannot be used for `mirror`'s project; `mirror` names it (may be empty)."""

    def __init__(self, message: str, mirror: str = "") -> None:
        super().__init__(message)
        self.mirror = mirror


class ServiceUnreachableError(ServiceError):
    """No usable answer from the service (network, timeouts, 5xx) past the client's retries."""


class KeyRefusedError(ServiceError):
    """The service refused the training key (401/403)."""


class ProjectMissingError(ServiceError):
    """The mirror's project does not exist at this endpoint."""


class ServiceAnswerError(ServiceError):
    """The service answered an error the run cannot go past."""


class NothingToTrainError(SyncdError):
    """The service found nothing changed since the last training, so it did not train."""


class TrainingRefusedError(SyncdError):
    """The service would not train (e.g. too few images per tag); `detail` is its answer."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the service would not train: {detail}")
        self.detail = detail


class ProjectKindError(SyncdError):
    """The project is not one syncd can mirror into (e.g. object detection)."""


class PullError(SyncdError):
    """The pull cannot start (the target folder belongs to another project, ...)."""


class ReviewError(SyncdError):
    """The review cannot be made (no trained iteration, a link folder with real files...)."""
