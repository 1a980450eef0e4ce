"""One error hierarchy, mapped once per surface.

HTTP triggers map these to status codes (`http_api`), the queue trigger maps
them to "retry" (raise) or "poison" (`worker`), the CLI to exit codes. Every
message says what is wrong and, where possible, what to do; none may contain a
secret.
"""
from __future__ import annotations


class BackupError(Exception):
    """Base of every error this app raises on purpose."""


class SettingsError(BackupError):
    """An app setting is missing or invalid; the message names the setting."""


class InvalidInput(BackupError):
    """A caller sent something we refuse (HTTP 400, CLI exit 2)."""


class ContainerNotFound(BackupError):
    """The source container named by the caller does not exist (HTTP 404)."""


class StorageUnavailable(BackupError):
    """Storage could not be reached or kept failing after retries (HTTP 503)."""


class InvalidMessage(BackupError):
    """A queue message that can never succeed: it goes to the poison queue."""


class CopyFailed(BackupError):
    """The copy did not finish successfully; the message must be retried."""


class SourceLeased(BackupError):
    """Someone else holds a lease on the source blob; retry later."""


class SourceSuperseded(BackupError):
    """The requested version is no longer current (rewritten or deleted): a newer
    request covers it, so the message is done, not failed."""


class BlobKeepsChanging(BackupError):
    """A blob was rewritten between every attempt to snapshot it (reported per blob; the next scan retries)."""


class NameNotListable(BackupError):
    """Azurite only: one name has more versions than a page holds and its base blob is beyond reach."""


class DestinationChanged(BackupError):
    """Someone else wrote the backup blob between our look at it and our copy (a twin delivery):
    the copy was refused by its destination condition, so look at the backup again."""
