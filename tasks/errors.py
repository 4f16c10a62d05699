"""The failures a user can cause or fix: one hierarchy, caught in one place by the CLI.

Each message says what is wrong (the file, row, column, field or option) and what to do. The CLI
prints it as one `error: ...` line and exits 1; any other exception is a bug and keeps its traceback.
The built-in bases (ValueError, RuntimeError) are kept so that callers who catch those still do.
"""

from __future__ import annotations


class HeadstartError(Exception):
    """An expected failure whose message is the whole story."""


class CompetitionDataError(HeadstartError, ValueError):
    """A competition's files are not what its spec says (names the file, row or column)."""


class SubmissionError(CompetitionDataError):
    """A submission file does not match the competition's sample submission."""


class DuplicateSubmissionError(SubmissionError):
    """This exact file was submitted before."""


class SpecError(HeadstartError, ValueError):
    """A competition spec (built-in name, .toml or .json) is unknown or malformed."""


class ConfigError(HeadstartError, ValueError):
    """A run setting or command-line option is invalid, or names something that does not exist."""


class CorruptFileError(HeadstartError, ValueError):
    """A file the kit wrote itself is damaged beyond what it repairs on its own (names the file and line)."""


class DiskFullError(HeadstartError, OSError):
    """The disk filled up while writing a file (names it); nothing half-written is left, finished work is kept."""


class WeightsUnavailableError(HeadstartError, RuntimeError):
    """A backbone's pretrained weights are not on disk and cannot be downloaded."""


class BackendError(HeadstartError, RuntimeError):
    """A competition backend (Kaggle, a local competition, a notebook's mount) refused or failed a request."""


class AuthenticationError(BackendError):
    """401: no credentials, or wrong ones."""


class AccessDeniedError(BackendError):
    """403: the competition's rules are not accepted, or the account may not do this."""


class NotFoundError(BackendError):
    """404: no such competition, kernel, dataset or file (or no access to it)."""


class TransientBackendError(BackendError):
    """429, 5xx or a dropped connection: worth retrying later (the network steps do). `status` is the HTTP status
    (None: no answer); `retry_after` the seconds the server asked to wait (None: it did not say)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class UploadError(BackendError):
    """A file upload failed, so nothing was submitted or published."""


class QuotaError(BackendError):
    """The day's submission quota is used."""
