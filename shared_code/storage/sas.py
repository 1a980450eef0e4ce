"""Read-only SAS URLs for the copy source, so the storage service pulls the bytes
itself and no blob content passes through the function.

The SAS is scoped to the one blob (or snapshot), grants read only, and expires
shortly after the copy's own timeout. Which kind is signed follows from how the
client authenticates: an account key signs a service SAS; a token credential
(managed identity) signs a user-delegation SAS; a client built from a SAS
connection string already carries a SAS, which is reused as it is.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Literal

from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient, UserDelegationKey, generate_blob_sas

CLOCK_SKEW = timedelta(minutes=5)
DELEGATION_KEY_LIFETIME = timedelta(hours=6)

_keys_lock = threading.Lock()
_delegation_keys: dict[str, UserDelegationKey] = {}


def _delegation_key(service: BlobServiceClient, now: datetime, needed_until: datetime) -> UserDelegationKey:
    """A cached user-delegation key valid until at least `needed_until` (one request per few hours)."""
    with _keys_lock:
        key = _delegation_keys.get(service.url)
        if key is not None and key.signed_expiry is not None:
            expiry = datetime.strptime(key.signed_expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            if expiry >= needed_until:
                return key
        key = service.get_user_delegation_key(now - CLOCK_SKEW, max(needed_until, now + DELEGATION_KEY_LIFETIME))
        _delegation_keys[service.url] = key
        return key


SasKind = Literal["service", "user-delegation", "connection"]


def sas_kind(service: BlobServiceClient) -> SasKind:
    """Which SAS `signed_source_url` hands the copy: `admin.doctor` names it when a copy is refused."""
    credential = service.credential
    if getattr(credential, "account_key", None):
        return "service"
    if credential is not None and hasattr(credential, "get_token"):
        return "user-delegation"
    return "connection"


def signed_source_url(
    service: BlobServiceClient,
    container: str,
    blob_name: str,
    snapshot: str | None,
    valid_for: timedelta,
    now: datetime | None = None,
) -> str:
    """URL of the blob (or snapshot) that the storage service can read for a copy."""
    now = now or datetime.now(timezone.utc)
    blob: BlobClient = service.get_blob_client(container, blob_name, snapshot=snapshot)
    credential = service.credential
    expiry = now + valid_for + CLOCK_SKEW
    common = dict(
        account_name=service.account_name,
        container_name=container,
        blob_name=blob_name,
        snapshot=snapshot,
        permission=BlobSasPermissions(read=True),
        start=now - CLOCK_SKEW,
        expiry=expiry,
    )
    kind = sas_kind(service)
    if kind == "service":
        token = generate_blob_sas(account_key=credential.account_key, **common)
    elif kind == "user-delegation":
        token = generate_blob_sas(user_delegation_key=_delegation_key(service, now, expiry), **common)
    else:
        return blob.url  # a SAS connection string: the client's URL already carries it
    separator = "&" if "?" in blob.url else "?"
    return f"{blob.url}{separator}{token}"
