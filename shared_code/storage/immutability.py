"""The management plane's view of immutability: what ARM alone reports about a container's policy.

Both `posture` (every container of an account) and retention (one container
whose data-plane listing says it has a policy) need the policy's period and
lock state, which the data plane never returns. They reach ARM the same way:
the subscription and the account's resource group from the settings, the
account's name from its connection string or account name, and the
`azure-mgmt-storage` client of `storage.clients`.
"""
from __future__ import annotations

from typing import Any, Literal

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

from shared_code.core.immutability import ImmutabilityPolicy
from shared_code.core.settings import Settings, account_identity
from shared_code.storage.clients import storage_management_client

Role = Literal["source", "backup"]
NOT_CONFIGURED = "the management plane is not configured"


def arm_location(settings: Settings, role: Role) -> tuple[str, str] | str:
    """(resource group, account name) of one of the two accounts, or why ARM cannot be asked about it."""
    management = settings.management
    group = management.backup_resource_group if role == "backup" else management.source_resource_group
    if not management.subscription_id or not group:
        return NOT_CONFIGURED
    name = account_identity(settings.backup if role == "backup" else settings.source)[0]
    if name is None:
        return "the account's name is not known from its connection string"
    return group, name


def policy_of(properties: Any) -> ImmutabilityPolicy | None:
    """An ARM ImmutabilityPolicyProperty (or an account's policy properties) as plain data."""
    if properties is None:
        return None
    return ImmutabilityPolicy(properties.immutability_period_since_creation_in_days, properties.state)


def describe_arm_failure(exc: Exception) -> str:
    """One line for a failed management-plane read, in ARM's terms (never a token or a URL)."""
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return f"no management-plane token ({type(exc).__name__})"
    if isinstance(exc, HttpResponseError):
        error = getattr(exc, "error", None)  # ARM's OData error (the storage SDK's `error_code` is not set here)
        status, code = exc.status_code, getattr(exc, "error_code", None) or getattr(error, "code", None) or ""
        hint = {401: "the token was refused", 403: "the identity needs Reader on the account",
                404: "check STORAGE_SUBSCRIPTION_ID, STORAGE_RESOURCE_GROUP and SOURCE_RESOURCE_GROUP"}.get(status or 0)
        return f"ARM answered HTTP {status} {code}".rstrip() + (f": {hint}" if hint else "")
    if isinstance(exc, ValueError):
        return f"ARM's answer could not be read ({type(exc).__name__})"
    return f"the ARM request failed ({type(exc).__name__})"


def read_container_policy(settings: Settings, role: Role, container: str) -> ImmutabilityPolicy | None | str:
    """One container's time-based policy from ARM, or a sentence saying why it could not be read.

    One request (`get_immutability_policy`). ARM answers a container without
    a policy with an empty one (0 days), so a 404 means a wrong subscription,
    resource group or account, and is a sentence like any other failure: the
    caller says why it does not know instead of guessing a period.
    """
    where = arm_location(settings, role)
    if isinstance(where, str):
        return where
    group, name = where
    try:
        policy = storage_management_client(settings.management).blob_containers.get_immutability_policy(
            group, name, container)
    except (AzureError, ValueError) as exc:  # DeserializationError is a ValueError
        return describe_arm_failure(exc)
    return policy_of(policy.properties) if policy is not None else None
