"""Storage that cannot be reached, as one error type for every caller.

The SDK reports an unreachable or failing account in several ways (no
connection, a reset, 5xx after its retries); every surface maps
`StorageUnavailable` once (HTTP 503, a retried message, CLI exit 1).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared_code.core.errors import StorageUnavailable


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Report unreachable or failing storage as StorageUnavailable (HTTP 503)."""
    try:
        yield
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise StorageUnavailable(f"storage could not be reached while {what}: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise StorageUnavailable(
                f"storage kept failing while {what} (HTTP {exc.status_code} after retries)"
            ) from exc
        raise


AUTHENTICATION_FAILED = ("authentication to storage failed or was refused; check the managed identity, its role "
                         "assignments, or the keys in the connection strings")


def describe_storage_failure(exc: AzureError) -> str:
    """One line for an SDK error that escaped every handler: what failed, never a secret.

    The surfaces show this instead of a traceback (HTTP 500 body, CLI exit 1).
    Only the status and the service's error code are shown: an SDK message can
    quote request URLs, and a URL can carry a SAS.
    """
    code = getattr(exc, "error_code", None) or ""
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return f"{AUTHENTICATION_FAILED} (HTTP {status} {code})".replace(" )", ")")
    if isinstance(exc, HttpResponseError):
        return f"storage answered HTTP {status} {code}".strip()
    return f"storage request failed: {type(exc).__name__}"
