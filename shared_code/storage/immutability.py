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

from azure.core.exceptions import AzureError, ResourceNotFoundError

from shared_code.core.immutability import ImmutabilityPolicy
from shared_code.core.settings import Settings, account_identity
from shared_code.storage.clients import storage_management_client
from shared_code.storage.failures import describe_storage_failure

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


def read_container_policy(settings: Settings, role: Role, container: str) -> ImmutabilityPolicy | None | str:
    """One container's time-based policy from ARM; None when it has none; a sentence when it cannot be read.

    One request (`get_immutability_policy`). A refusal, a missing identity or
    an unconfigured management plane is a sentence, so the caller can say why
    it does not know instead of guessing a period.
    """
    where = arm_location(settings, role)
    if isinstance(where, str):
        return where
    group, name = where
    try:
        policy = storage_management_client(settings.management).blob_containers.get_immutability_policy(
            group, name, container)
    except ResourceNotFoundError:
        return None
    except AzureError as exc:
        return f"the management plane refused or failed: {describe_storage_failure(exc)}"
    return policy_of(policy.properties if policy is not None else None) if policy is not None else None
