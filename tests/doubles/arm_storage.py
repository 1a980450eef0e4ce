"""A local imitation of the Azure Resource Manager storage endpoints that `posture` reads.

Why this exists: the posture report reads container soft delete, public access,
versioning, HNS and the immutability policies (with retention and lock state)
through ``azure.mgmt.storage.StorageManagementClient``. ARM cannot run here, so
this double answers the same REST calls the real client makes, over HTTPS with a
bearer token, and takes what Azurite knows (the containers, blob soft delete)
from Azurite itself, so both planes describe the same accounts. What Azurite
cannot hold (policies, holds, container soft delete, account properties) is
configured per account on ``ArmStorageAccount``.

Implemented (``GET`` only; any other method answers 405)::

    GET /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{a}
    GET .../storageAccounts/{a}/blobServices/default
    GET .../storageAccounts/{a}/blobServices/default/containers
    GET .../blobServices/default/containers/{c}/immutabilityPolicies/default

Rejections mirror ARM: no or wrong bearer token -> 401 ``AuthenticationFailed``;
no ``api-version`` -> 400 ``MissingApiVersionParameter`` (any dated version is
accepted, so an SDK upgrade within requirements.txt's range keeps working);
unknown subscription, resource group or account -> 404; an account with
``readable=False`` -> 403 ``AuthorizationFailed`` (a principal without Reader).
Error bodies are ARM's ``{"error": {"code", "message"}}``. TLS, the CA bundle and
the handler are the ADF double's (``serve_https``).
"""
from __future__ import annotations

import hmac
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.storage.blob import BlobServiceClient

from tests.doubles.adf_service import HttpsDouble, _arm_error

_ACCOUNT = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.storage"
    r"/storageaccounts/(?P<account>[^/]+)(?P<rest>/.*)?$", re.IGNORECASE)
_POLICY = re.compile(r"^/blobservices/default/containers/(?P<container>[^/]+)/immutabilitypolicies/default$")
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


@dataclass(frozen=True)
class ArmPolicy:
    """A time-based retention policy: ``state`` is ``Locked`` or ``Unlocked``."""

    days: int
    state: str


@dataclass
class ArmStorageAccount:
    """One account as ARM describes it; its containers and blob soft delete come from Azurite."""

    name: str
    resource_group: str
    connection_string: str = field(repr=False)
    allow_blob_public_access: bool | None = False
    is_hns_enabled: bool = False
    versioning: bool = False
    container_soft_delete_days: int | None = None  # None: disabled
    account_policy: ArmPolicy | None = None  # account-level version-level immutability, with its default policy
    policies: dict[str, ArmPolicy] = field(default_factory=dict)  # container -> its time-based policy
    legal_holds: set[str] = field(default_factory=set)  # containers with a legal hold
    readable: bool = True
    list_policies: bool = True  # False: the container list carries hasImmutabilityPolicy without the policy


@dataclass(frozen=True)
class ArmRequest:
    method: str
    path: str
    status: int


class FakeArmStorage(HttpsDouble):
    """HTTPS imitation of the storage resource provider for a few accounts.

    Attributes (after ``start()``): ``endpoint`` (the client's ``base_url``; scope
    ``endpoint + "/.default"``), ``ca_bundle_path`` (for ``REQUESTS_CA_BUNDLE``),
    ``requests`` (every request, rejected ones included).
    """

    serving_name = "fake-arm-storage"

    def __init__(self, *, subscription_id: str, expected_token: str, accounts: list[ArmStorageAccount]) -> None:
        self.subscription_id = subscription_id
        self._expected_token = expected_token
        self.accounts = {account.name: account for account in accounts}
        self.requests: list[ArmRequest] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None

    def __repr__(self) -> str:  # never show the expected token
        return f"FakeArmStorage(endpoint={self.endpoint!r}, accounts={sorted(self.accounts)!r})"

    # -- request handling (called by the shared HTTPS handler) --------------------------------
    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        authorization = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        status, reply = self._route(method, path, query, authorization)
        with self._lock:
            self.requests.append(ArmRequest(method, path, status))
        return status, reply

    def _route(self, method: str, path: str, query: dict[str, str], authorization: str) -> tuple[int, Any]:
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(),
                                                                 self._expected_token.encode()):
            return 401, _arm_error("AuthenticationFailed", "Authentication failed. The access token is missing, "
                                   "invalid or not for this audience.")
        if not _API_VERSION.match(query.get("api-version", "")):
            return 400, _arm_error("MissingApiVersionParameter",
                                   "The api-version query parameter (?api-version=) is required for all requests.")
        match = _ACCOUNT.match(path)
        if match is None:
            return 404, _arm_error("NotFound", f"No resource provider route for '{path}'.")
        if match["sub"].lower() != self.subscription_id.lower():
            return 404, _arm_error("SubscriptionNotFound", f"The subscription '{match['sub']}' could not be found.")
        account = self.accounts.get(match["account"].lower())
        if account is None or account.resource_group.lower() != match["rg"].lower():
            return 404, _arm_error("ResourceNotFound", f"The Resource 'Microsoft.Storage/storageAccounts/"
                                   f"{match['account']}' under resource group '{match['rg']}' was not found.")
        if method != "GET":
            return 405, _arm_error("MethodNotAllowed", f"The fake ARM storage service answers GET only, not {method}.")
        scope = path.split("/blobServices")[0]
        if not account.readable:
            return 403, _arm_error("AuthorizationFailed", "The client does not have authorization to perform action "
                                   f"'Microsoft.Storage/storageAccounts/read' over scope '{scope}' or the scope "
                                   "is invalid.")
        rest = (match["rest"] or "").rstrip("/").lower()
        if rest == "":
            return 200, self._account(account, scope)
        if rest == "/blobservices/default":
            return 200, self._blob_service(account, scope)
        if rest == "/blobservices/default/containers":
            return 200, {"value": self._containers(account, scope)}
        policy_path = _POLICY.match(rest)
        if policy_path is not None:
            policy = account.policies.get(policy_path["container"])
            if policy is None:  # ARM answers a container without a policy with an empty, unlocked one
                return 200, {"id": f"{scope}{rest}", "name": "default", "etag": '"0"',
                             "properties": {"immutabilityPeriodSinceCreationInDays": 0, "state": "Unlocked"}}
            return 200, {"id": f"{scope}{rest}", "name": "default",
                         "type": "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies",
                         **_policy_body(policy)}
        return 404, _arm_error("NotFound", f"The fake ARM storage service has no route for '{rest}'.")

    @staticmethod
    def _account(account: ArmStorageAccount, scope: str) -> dict[str, Any]:
        properties: dict[str, Any] = {"isHnsEnabled": account.is_hns_enabled, "provisioningState": "Succeeded",
                                      "allowSharedKeyAccess": False}
        if account.allow_blob_public_access is not None:
            properties["allowBlobPublicAccess"] = account.allow_blob_public_access
        if account.account_policy is not None:
            properties["immutableStorageWithVersioning"] = {"enabled": True, "immutabilityPolicy": {
                "immutabilityPeriodSinceCreationInDays": account.account_policy.days,
                "state": account.account_policy.state, "allowProtectedAppendWrites": False}}
        return {"id": scope, "name": account.name, "type": "Microsoft.Storage/storageAccounts", "kind": "StorageV2",
                "location": "westeurope", "sku": {"name": "Standard_LRS", "tier": "Standard"},
                "properties": properties}

    @staticmethod
    def _blob_service(account: ArmStorageAccount, scope: str) -> dict[str, Any]:
        with BlobServiceClient.from_connection_string(account.connection_string) as service:
            deleted = service.get_service_properties()["delete_retention_policy"]
        days = account.container_soft_delete_days
        return {"id": f"{scope}/blobServices/default", "name": "default",
                "type": "Microsoft.Storage/storageAccounts/blobServices",
                "properties": {
                    "deleteRetentionPolicy": {"enabled": bool(deleted.enabled), **({"days": deleted.days}
                                                                                    if deleted.enabled else {})},
                    "containerDeleteRetentionPolicy": {"enabled": days is not None,
                                                       **({"days": days} if days is not None else {})},
                    "isVersioningEnabled": account.versioning}}

    @staticmethod
    def _containers(account: ArmStorageAccount, scope: str) -> list[dict[str, Any]]:
        with BlobServiceClient.from_connection_string(account.connection_string) as service:
            listed = [(c.name, c.public_access) for c in service.list_containers()]
        items = []
        for name, public in listed:
            policy = account.policies.get(name)
            properties: dict[str, Any] = {
                "publicAccess": {"blob": "Blob", "container": "Container"}.get(public or "", "None"),
                "hasImmutabilityPolicy": policy is not None, "hasLegalHold": name in account.legal_holds,
                "leaseStatus": "Unlocked", "leaseState": "Available"}
            if policy is not None and account.list_policies:
                properties["immutabilityPolicy"] = {"updateHistory": [], **_policy_body(policy)}
            items.append({"id": f"{scope}/blobServices/default/containers/{name}", "name": name,
                          "type": "Microsoft.Storage/storageAccounts/blobServices/containers", "etag": '"0x1"',
                          "properties": properties})
        return items


def _policy_body(policy: ArmPolicy) -> dict[str, Any]:
    return {"etag": '"8d9f0a1b2c3d4e5"', "properties": {"immutabilityPeriodSinceCreationInDays": policy.days,
                                                       "state": policy.state, "allowProtectedAppendWrites": False}}
