"""`doctor`: a preflight of the configuration an operator has, before anything runs.

Each check ends as `Check(name, ok, detail, fix)`: what was looked at, what was
found, and, when it is a problem, what to do. The module has two halves:

- **decisions** (pure): functions that turn observations (a parsed or refused
  setting, a probe's outcome, a pipeline's parameter names, host.json's
  `functionTimeout`) into checks. They hold every rule and are unit-tested
  without storage;
- **probes** (thin I/O): harmless operations that exercise exactly the rights
  each function needs, with the principal the app would use. A probe catches
  only the SDK's typed exceptions (`HttpResponseError` and its subclasses,
  `ServiceRequestError`, `ServiceResponseError`, plus the `ValueError` the SDK
  raises for a malformed connection string) and turns them into a `Failure`:
  a one-line summary (status and service error code, never the SDK's message,
  which can quote a URL carrying a SAS) that the decisions turn into a failed
  check. No traceback, no key, connection string, SAS or token is ever shown
  (a refused copy is classified by its status and code, never by the SAS URL).

Which principal is checked matters: run from a laptop, `DefaultAzureCredential`
resolves the operator (Azure CLI, environment, ...), not the Function App's
managed identity, so the report says whose rights it measured.

The probes remove what they create (a delete that is refused names what it left):

- source: one page of the container listing and one of the first lake
  container's blobs; then a probe blob `.backup-doctor/probe-<random>` is
  created, snapshotted, leased and released, and deleted with its snapshots.
  **Why the scans never back it up**: the probe carries `hdi_isfolder=true`,
  the ADLS Gen2 directory marker that change detection (`core.detect.judge`)
  skips, in the producer, the reconciliation and `verify` alike. So a scan
  that lists it while it exists neither snapshots it nor queues a request; at
  most it counts one `directories_skipped`. (A name alone would not do: the
  scans skip no name.) When the source account has no container yet, a probe
  container `backup-doctor-<random>` is created for the probe and deleted;
- backup: a probe container `backup-doctor-<random>` (the app creates backup
  containers), a probe blob with metadata (the worker's writes), both deleted;
- copy (the `blob` engine's path, which the `adf` engine and restore use too):
  a probe snapshot in the source, its read-only SAS signed by the worker's own
  `storage.sas.signed_source_url` (a user-delegation SAS with a token
  credential: the only way to exercise `generateUserDelegationKey` without a
  backup; a service SAS with a key), copied by `storage.server_copy.copy_from_url`
  into a probe container of the backup account, its bytes read back, both
  removed. Which step fails decides whose right the report names;
- records: a probe record `doctor/probe-<random>` written into
  `RECORDS_CONTAINER` as `storage.records` writes every record, then deleted;
  a refused delete (an immutability policy) is a note, not a problem: records
  are write-once and the app never deletes one;
- queue: send and receive rights are probed on a separate queue
  `<par_queue_name>-doctor`, never on the request queue, where a running
  trigger could receive the probe first. Only the properties of the request
  and poison queues are read.

A missing request queue is a problem (exit 1): the queue trigger listens on it,
and the app creates it on its first send only when its principal may create
queues. A missing poison queue is normal (the host creates it on the first
poison message) and only a problem when the probe showed that queues cannot be
created (this run did not create its probe queue): then the host could not move the first poison
message there.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from datetime import timedelta
from typing import Any, Callable, Iterator, Literal, Mapping, Protocol, Sequence
from urllib.parse import urlsplit

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobServiceClient

from shared_code.core.clock import Deadline
from shared_code.core.errors import BackupError, SettingsError
from shared_code.core.schedule import Schedule, ScheduleError
from shared_code.core.settings import (
    COPY_TIMEOUT_MARGIN_SECONDS,
    HOST_JSON,
    AdfSettings,
    Settings,
    StorageTarget,
    _check_queue_is_the_triggers,  # the app's own rule: reused, not restated
    _connection_account,
    account_identity,
    connection_string_parts,
    load_settings,
    load_telemetry_settings,
    shown,
    timespan_seconds,
)
from shared_code.storage.clients import blob_service, default_credential, queue_client
from shared_code.storage.containers import lake_container_names
from shared_code.storage.records import RecordStore
from shared_code.storage.sas import SasKind, sas_kind, signed_source_url
from shared_code.storage.server_copy import copy_from_url

PROBE_PREFIX = ".backup-doctor/probe-"
PROBE_CONTAINER_PREFIX = "backup-doctor-"
# The directory marker the scans and verify skip (core.detect.is_directory_marker); see the module docstring.
PROBE_METADATA = {"hdi_isfolder": "true", "backup_doctor": "probe"}
PROBE_QUEUE_SUFFIX = "-doctor"
PROBE_MESSAGE_TTL_SECONDS = 60  # a probe message the doctor could not delete expires by itself
PROBE_LEASE_SECONDS = 15
PROBE_COPY_SECONDS = 60.0  # the copy probe moves a few bytes: the copy's own deadline, and its SAS's validity
RECORD_PROBE_PREFIX = "doctor/"  # records are read by prefix (deletions/, containers/, scans/, restores/): none reads this
STORAGE_SCOPE = "https://storage.azure.com/.default"
# Set by App Service / Azure Functions (and its managed-identity endpoint): the code runs as the app.
AZURE_HOST_VARIABLES = ("WEBSITE_INSTANCE_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
TRIGGER_CONNECTION = "AzureWebJobsStorage"

FailureKind = Literal["denied", "auth", "missing", "unreachable", "malformed", "http"]


# -- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One verdict: `fix` says what to do when `ok` is False (empty otherwise)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Principal:
    """Who the checks run as, per account, and whether that is the app itself."""

    source: str
    backup: str
    queue: str
    adf: str | None
    in_azure: bool
    identity_used: bool  # some account (or ADF) is reached through DefaultAzureCredential

    @property
    def note(self) -> str:
        if self.in_azure:
            return "running in Azure: these are the app's own rights"
        if self.identity_used:
            return ("run outside Azure: the identity DefaultAzureCredential resolved here is yours, so these checks "
                    "test your rights, not the Function App's managed identity")
        return "run outside Azure: these checks test the keys/SAS configured here, as the app would use them"


@dataclass
class DoctorReport:
    principal: Principal | None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        principal = None
        if self.principal is not None:
            principal = {**asdict(self.principal), "note": self.principal.note}
        return {"ok": self.ok, "principal": principal, "checks": [asdict(check) for check in self.checks]}


@dataclass(frozen=True)
class Failure:
    """A probe's failure as the decisions need it: its kind and one secret-free line."""

    kind: FailureKind
    summary: str
    code: str = ""


# -- decisions (pure) -----------------------------------------------------------------------------

def failure_of(exc: Exception) -> Failure:
    """Classify an SDK exception; only its type, status and service error code are kept (no message)."""
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "error_code", None) or getattr(getattr(exc, "error", None), "code", None) or ""
    code = str(getattr(code, "value", code))  # the storage SDK hands out StorageErrorCode members
    where = f"HTTP {status} {code}".strip() if status else (code or type(exc).__name__)
    if isinstance(exc, ValueError):
        return Failure("malformed", "the connection string is malformed")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return Failure("unreachable", f"could not be reached ({type(exc).__name__})")
    # The SDK raises ResourceNotFoundError for some 403s too (CannotVerifyCopySource): the status decides.
    if status == 404 or (isinstance(exc, ResourceNotFoundError) and status is None):
        return Failure("missing", f"not found ({where})", code)
    if status == 403 and code not in ("AuthenticationFailed", "InvalidAuthenticationInfo"):
        return Failure("denied", f"refused ({where})", code)
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return Failure("auth", f"authentication failed ({where})" if status else "no credential could sign in", code)
    return Failure("http", f"failed ({where})", code)


def account_label(target: StorageTarget) -> str:
    """The account's name for display: its name, or a SAS connection string's endpoint host."""
    if target.account_name:
        return target.account_name
    name = _connection_account(target.connection_string)
    if name:
        return name
    parts = connection_string_parts(target.connection_string or "")
    endpoint = parts.get("BlobEndpoint") or parts.get("QueueEndpoint") or ""
    return urlsplit(endpoint).netloc + urlsplit(endpoint).path.rstrip("/") or "?"


def target_principal(target: StorageTarget, identity: str) -> str:
    """How one account is reached: a key, a SAS, or the identity (never the secret itself)."""
    if target.connection_string:
        parts = connection_string_parts(target.connection_string)
        account = account_label(target)
        if "SharedAccessSignature" in parts:
            return f"SAS from {target.setting} (account {account})"
        return f"account key of {account} (from {target.setting})"
    if target.account_key:
        return f"account key of {target.account_name} (from par_storage_account_key_queue)"
    return identity


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, decoded without verifying it: for display only, never trusted."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def identity_description(credential_name: str | None, claims: Mapping[str, Any] | None) -> str:
    """`identity <who> (oid ..., via AzureCliCredential)` from a token's claims (no token)."""
    via = f"via {credential_name}" if credential_name else "via DefaultAzureCredential"
    if not claims:
        return f"identity ({via}; token claims not readable)"
    who = claims.get("upn") or claims.get("unique_name") or claims.get("preferred_username") or claims.get("name")
    ids = [f"{key} {claims[key]}" for key in ("oid", "appid") if claims.get(key)]
    label = f"identity {who}" if who else "identity"
    return f"{label} ({', '.join(ids + [via])})"


def not_probed(account: str, why: str = "its principal is the identity, and none was resolved",
               first: str = "the identity check") -> list[Check]:
    """The one check standing for probes that could only fail the way an earlier check already did."""
    return [Check(f"{account}: not probed", False, why, f"fix {first} first, then run doctor again")]


def settings_check(error: SettingsError | None, settings: Settings | None) -> Check:
    if error is not None or settings is None:
        return Check("settings parse", False, str(error), "correct the setting named above (app settings, or "
                     "local.settings.json here); the other checks need valid settings")
    detail = f"engine {settings.copy_engine}, request queue {settings.queue_name!r}"
    return Check("settings parse", True, detail)


def identity_check(identity: str | None, failure: Failure | None, needed_by: Sequence[str]) -> Check | None:
    """Whether DefaultAzureCredential yields a token; None when no account uses an identity."""
    if not needed_by:
        return None
    users = ", ".join(needed_by)
    if failure is None:
        return Check("identity", True, f"{identity} (used for {users})")
    return Check("identity", False, f"DefaultAzureCredential found no identity for {users}: {failure.summary}",
                 "in Azure enable the Function App's system-assigned managed identity; on a laptop sign in "
                 "(az login) or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET")


def probe_check(name: str, failure: Failure | None, ok_detail: str, *, right: str, principal: str,
                setting: str, missing_fix: str = "") -> Check:
    """A probe's outcome as a check; the fix depends on why it failed."""
    if failure is None:
        return Check(name, True, ok_detail)
    detail = f"{failure.summary} as {principal}"
    firewall = " or the account's firewall does not admit this address (Networking)"
    if principal.startswith("account key") and failure.kind in ("denied", "auth"):
        # A key holds every right: refused means a wrong or rotated key (Azure: AuthenticationFailed,
        # Azurite: AuthorizationFailure), or a network rule (Azure: AuthorizationFailure).
        fix = f"the key in {setting} is wrong or was rotated (set the account's current connection string){firewall}"
    elif failure.kind == "denied":
        fix = f"grant {right} to {principal}"
        if principal.startswith("SAS"):
            fix = f"issue a SAS with the permissions for this ({right}) and put it in {setting}"
        if failure.code == "AuthorizationFailure":
            fix += f",{firewall}"
    elif failure.kind == "auth":
        if principal.startswith("SAS"):
            fix = f"the SAS in {setting} is invalid or expired: issue a new one"
        else:
            fix = "sign in with an identity that has the roles (az login), or enable the app's managed identity"
    elif failure.kind == "missing":
        fix = missing_fix or f"check the account configured in {setting}"
    elif failure.kind == "unreachable":
        fix = f"check the account in {setting} (name, endpoint), DNS, and the account's firewall / private endpoints"
    elif failure.kind == "malformed":
        fix = f"set {setting} to a connection string as the portal shows it (Access keys or Shared access signature)"
    else:
        fix = f"the service refused the request; check {setting} and the account's configuration"
    return Check(name, False, detail, fix)


def request_queue_check(queue: str, account: str, failure: Failure | None, *, principal: str, setting: str) -> Check:
    """The request queue must exist: the trigger listens on it (decision: a missing one is a problem)."""
    return probe_check(
        "queue: request queue exists", failure, f"{queue!r} on {account}", right="Storage Queue Data Reader",
        principal=principal, setting=setting,
        missing_fix=(f"create queue {queue!r} on {account} (az storage queue create --name {queue} --account-name "
                     f"{account}), or let the first scan create it (needs Storage Queue Data Contributor)"))


def poison_queue_check(queue: str, account: str, failure: Failure | None, can_create_queues: bool, *,
                       principal: str, setting: str) -> Check:
    """A missing poison queue is normal, unless queues cannot be created (then the first poison fails)."""
    if failure is not None and failure.kind == "missing":
        if can_create_queues:
            return Check("queue: poison queue", True, f"{queue!r} does not exist yet: the host creates it on the "
                         "first poison message")
        return Check("queue: poison queue", False, f"{queue!r} does not exist and this principal cannot create queues",
                     f"create queue {queue!r} on {account} at deployment, or grant Storage Queue Data Contributor")
    return probe_check("queue: poison queue", failure, f"{queue!r} exists", right="Storage Queue Data Reader",
                       principal=principal, setting=setting)


CopyStep = Literal["source", "target", "sign", "copy", "verify"]
COPY_CHECK = "copy: snapshot to backup (server-side)"
# What each kind of copy SAS is, and what to fix when the backup account cannot read the source through it.
_SAS_NAMES = {"service": "a service SAS signed with the source key", "user-delegation": "a user-delegation SAS",
              "connection": "the SAS of the source connection string"}


def copy_path_check(step: CopyStep | None, failure: Failure | None, kind: SasKind, *, where: str,
                    source_principal: str, backup_principal: str, source_setting: str, backup_setting: str) -> Check:
    """The blob engine's copy path (and restore's): which step failed decides whose right is missing.

    `step` is the first step that failed (None: all passed): `source` (probe blob and snapshot),
    `target` (probe container in the backup account), `sign` (the user-delegation key: the only
    request signing makes), `copy` (Copy Blob From URL) or `verify` (the bytes that arrived).
    """
    sas = _SAS_NAMES[kind]
    if step is None:
        return Check(COPY_CHECK, True, f"signed {sas} (read-only, one snapshot) for a probe snapshot and copied it "
                     f"server-side into {where}; the bytes arrived")
    if step == "verify":
        return Check(COPY_CHECK, False, f"the copy into {where} succeeded but its bytes differ from the snapshot's",
                     "the service returned other bytes than the probe wrote: report it (run doctor again first)")
    assert failure is not None
    if step == "copy" and failure.code == "CannotVerifyCopySource":
        # The backup account's service read the source URL and was refused: the SAS is the problem, not the backup.
        fix = {"user-delegation": f"a user-delegation SAS grants no more than its identity holds: grant "
                                  f"{source_principal} Storage Blob Data Reader (or Contributor) on the source account",
               "service": f"the key in {source_setting} signs the SAS: set the account's current key",
               "connection": f"issue a SAS with read (sp=r) on objects, snapshots included, and put it in "
                             f"{source_setting}"}[kind]
        return Check(COPY_CHECK, False, f"the backup account could not read the source snapshot through {sas} "
                     f"({failure.summary})", f"{fix}; the source account's firewall must also admit the copy")
    if step == "sign":
        right = ("a Storage Blob Data role on the source account (Reader, Contributor or Owner: each includes "
                 "generateUserDelegationKey/action)")
        check = probe_check(COPY_CHECK, failure, "", right=right, principal=source_principal, setting=source_setting)
        if failure.kind == "denied":
            return Check(COPY_CHECK, False, "the identity cannot get a user-delegation key on the source account: it "
                         f"needs a Storage Blob Data role there ({failure.summary} as {source_principal})", check.fix)
        return Check(COPY_CHECK, False, f"getting a user-delegation key on the source account failed: {check.detail}",
                     check.fix)
    if step == "copy":
        check = probe_check(COPY_CHECK, failure, "", right="Storage Blob Data Contributor (the copy writes the backup)",
                            principal=backup_principal, setting=backup_setting)
        return Check(COPY_CHECK, False, f"the backup account refused the copy: {check.detail}", check.fix)
    principal, setting, account = ((source_principal, source_setting, "source") if step == "source"
                                   else (backup_principal, backup_setting, "backup"))
    check = probe_check(COPY_CHECK, failure, "", right="Storage Blob Data Contributor", principal=principal,
                        setting=setting)
    return Check(COPY_CHECK, False, f"could not prepare the probe in the {account} account: {check.detail}", check.fix)


RECORDS_CHECK = "backup: write records"


def records_check(container: str, record: str, write: Failure | None, delete: Failure | None, *,
                  principal: str, setting: str) -> Check:
    """Records are written once and never deleted by the app: only the write can fail this check.

    A delete refused by an immutability policy (or by a principal without the delete right) is
    what a write-once records container should do; it is noted, with what remains.
    """
    if write is not None:
        return probe_check(RECORDS_CHECK, write, "", right=f"Storage Blob Data Contributor on the backup account "
                           f"(or on its container {container!r})", principal=principal, setting=setting,
                           missing_fix=f"check RECORDS_CONTAINER ({container!r}) and {setting}")
    if delete is None:
        return Check(RECORDS_CHECK, True, f"wrote probe record {record!r} in {container!r} and deleted it")
    if delete.code.startswith("BlobImmutable"):  # BlobImmutableDueToPolicy (time-based retention or legal hold)
        why = "the container's immutability policy refused its delete, as expected: records are write-once"
    else:
        why = f"its delete was {delete.summary}, a right the app does not need (it never deletes records)"
    return Check(RECORDS_CHECK, True, f"wrote probe record {record!r} in {container!r}; note: {why}; the probe "
                 f"record remains (no reader looks under {RECORD_PROBE_PREFIX!r})")


def trigger_binding_check(binding: Mapping[str, Any] | None, env: Mapping[str, str], settings: Settings) -> Check:
    """The queue the trigger listens on (function.json + app settings) is the queue the scans send to."""
    name = "queue: trigger listens where scans send"
    if binding is None:
        return Check(name, False, "no queueTrigger function.json found in the app root",
                     "run doctor from the app's folder (the one with host.json and the function folders)")
    connection = str(binding.get("connection") or TRIGGER_CONNECTION)
    raw_queue = str(binding.get("queueName") or "")
    queue = raw_queue
    if raw_queue.startswith("%") and raw_queue.endswith("%"):
        setting = raw_queue.strip("%")
        queue = (env.get(setting) or "").strip()
        if not queue:
            return Check(name, False, f"the trigger's queueName is {raw_queue} but {setting} is not set as an app "
                         "setting", f"set {setting}={settings.queue_name} in the Function App's configuration")
    trigger_account = _connection_account(env.get(connection)) or (env.get(f"{connection}__accountName") or "").strip()
    if not trigger_account:
        return Check(name, False, f"the trigger's connection {connection} is not set: the host cannot listen",
                     f"set {connection} (a connection string, or {connection}__accountName for an identity)")
    if connection == TRIGGER_CONNECTION:  # the app's own rule (load_settings applies it too)
        try:
            _check_queue_is_the_triggers(env, settings.queue)
        except SettingsError as exc:
            return Check(name, False, str(exc), f"point {settings.queue.setting} at {trigger_account!r}, or unset it")
    else:  # a function.json edited to listen through another connection setting
        target = settings.queue.account_name or _connection_account(settings.queue.connection_string)
        if target and target != trigger_account:
            return Check(name, False, f"scans send to account {target!r}, the trigger listens on {trigger_account!r} "
                         f"({connection})", f"point {settings.queue.setting} at {trigger_account!r}")
    if queue != settings.queue_name:
        return Check(name, False, f"scans send to {settings.queue_name!r}, the trigger listens on {queue!r}",
                     "use the same par_queue_name for both")
    return Check(name, True, f"{queue!r} on {trigger_account}")


def adf_pipeline_check(adf: AdfSettings, declared: Sequence[str] | None, expected: Sequence[str],
                       failure: Failure | None, principal: str) -> Check:
    """The pipeline exists and declares exactly the parameters the worker sends."""
    name = "adf: pipeline and its parameters"
    where = f"pipeline {adf.pipeline_name!r} of factory {adf.factory_name!r} (resource group {adf.resource_group})"
    if failure is not None:
        return probe_check(name, failure, "", right="Data Factory Contributor on the factory (or a role with "
                           "Microsoft.DataFactory/factories/pipelines/read)", principal=principal,
                           setting="par_adfv2_name / par_adfv2_pipeline_name",
                           missing_fix=(f"{where} was not found: import adf/pipeline into the factory, or correct "
                                        "par_subscription_id, par_resource_group_name, par_adfv2_name and "
                                        "par_adfv2_pipeline_name"))
    declared_set, expected_set = set(declared or ()), set(expected)
    if declared_set == expected_set:
        return Check(name, True, f"{where} declares {', '.join(sorted(expected_set))}")
    problems = []
    if expected_set - declared_set:
        problems.append(f"missing {', '.join(sorted(expected_set - declared_set))}")
    if declared_set - expected_set:
        problems.append(f"unexpected {', '.join(sorted(declared_set - expected_set))}")
    return Check(name, False, f"{where}: parameters differ from what the worker sends ({'; '.join(problems)})",
                 f"import adf/pipeline/BlobBackupCopyPipeline.json again: its parameters must be exactly "
                 f"{', '.join(sorted(expected_set))}")


def function_timeout_check(host_json: Path, raw: object, readable: bool, max_copy_seconds: float) -> Check:
    """`functionTimeout` must exceed the copy wait plus its margin, or every long copy is cut off."""
    name = "host.json functionTimeout"
    need = max_copy_seconds + COPY_TIMEOUT_MARGIN_SECONDS
    wait = f"the copy wait (MAX_LEASE_COPY_TIME_MINUTES {max_copy_seconds / 60:g} min) + {COPY_TIMEOUT_MARGIN_SECONDS} s"
    if not readable:
        return Check(name, False, f"{host_json} is missing or not JSON", "deploy the app's host.json")
    if raw is None:
        return Check(name, False, "host.json sets no functionTimeout: the plan's default applies (5 min on "
                     "Consumption, 30 min on Premium)", f'set "functionTimeout" above {wait}')
    if str(raw).strip() == "-1":
        return Check(name, True, "unlimited (-1; Premium and Dedicated plans only)")
    seconds = timespan_seconds(str(raw))
    if seconds is None:
        return Check(name, False, f"functionTimeout {str(raw)[:20]!r} is not a timespan (hh:mm:ss)",
                     'write it as "00:15:00"')
    if seconds < need:  # the app's own rule (core.settings._check_copy_time_fits): equal fits
        return Check(name, False, f"{raw} ({seconds / 60:g} min) is shorter than {wait} = {need / 60:g} min",
                     f"raise functionTimeout to at least {need / 60:g} min, or lower MAX_LEASE_COPY_TIME_MINUTES below "
                     f"{(seconds - COPY_TIMEOUT_MARGIN_SECONDS) / 60:g}")
    return Check(name, True, f"{raw} covers {wait} = {need / 60:g} min")


def distinct_accounts_check(settings: Settings) -> Check:
    """Backups in the source account die with it: they must live in another account."""
    source, backup = account_identity(settings.source), account_identity(settings.backup)
    same_name = source[0] is not None and source[0] == backup[0]
    same_endpoint = source[1] is not None and source[1] == backup[1]
    if same_name and (same_endpoint or None in (source[1], backup[1])):
        return Check("backup account is not the source", False,
                     f"{settings.source.setting} and {settings.backup.setting} both point at account {source[0]!r}",
                     f"point {settings.backup.setting} at a second storage account: backups in the source account "
                     "are lost with it")
    return Check("backup account is not the source", True, f"source {source[0]}, backup {backup[0]}")


# -- probes (thin I/O) ----------------------------------------------------------------------------

TYPED_FAILURES = (HttpResponseError, ServiceRequestError, ServiceResponseError, ValueError)


class _Probe:
    """Runs one step; a typed SDK failure ends it as a `Failure` (the later steps then do not run)."""

    def __init__(self) -> None:
        self.failure: Failure | None = None

    def __call__(self, step: Callable[[], Any]) -> Any:
        if self.failure is not None:
            return None
        try:
            return step()
        except TYPED_FAILURES as exc:
            self.failure = failure_of(exc)
            return None


def _random() -> str:
    return secrets.token_hex(6)


def _probe_source(settings: Settings, principal: str) -> list[Check]:
    """List, then create / snapshot / lease / delete a directory-marker probe blob (see module docstring)."""
    setting = settings.source.setting
    checks: list[Check] = []
    listing = _Probe()
    service: BlobServiceClient | None = listing(lambda: blob_service(settings.source))
    containers: list[str] = []
    if service is not None:
        containers = listing(lambda: _first_container_page(service)) or []
        if listing.failure is None and containers:
            listing(lambda: next(service.get_container_client(containers[0]).list_blobs(
                include=["snapshots", "metadata"], results_per_page=1).by_page(), None))
    checks.append(probe_check("source: list", listing.failure,
                              f"listed containers ({containers[0]!r} first) and one page of blobs" if containers else
                              "listed containers (none yet)", right="Storage Blob Data Reader (or Contributor)",
                              principal=principal, setting=setting))
    if service is None or listing.failure is not None:
        return checks
    temporary = None if containers else f"{PROBE_CONTAINER_PREFIX}{_random()}"
    container = containers[0] if containers else temporary
    assert container is not None
    blob = service.get_blob_client(container, f"{PROBE_PREFIX}{_random()}")
    write = _Probe()
    made_container = temporary is not None and write(lambda: service.create_container(temporary)) is not None
    created = write(lambda: blob.upload_blob(b"", metadata=PROBE_METADATA)) is not None
    snapshot = _Probe()
    if created:
        snapshot(blob.create_snapshot)
        if snapshot.failure is None:
            lease = snapshot(lambda: blob.acquire_lease(PROBE_LEASE_SECONDS))
            if lease is not None:
                snapshot(lease.release)
    remove = _Probe()
    if created:
        remove(lambda: blob.delete_blob(delete_snapshots="include"))
    if made_container:
        remove(lambda: service.delete_container(temporary))
    where = f"probe blob in container {container!r}"
    checks.append(probe_check("source: snapshot and lease", write.failure or snapshot.failure,
                              f"created, snapshotted, leased and released a {where}",
                              right="Storage Blob Data Contributor (snapshots and leases are writes)",
                              principal=principal, setting=setting))
    if created or remove.failure is not None:
        check = probe_check("source: delete snapshots", remove.failure, f"deleted the {where} with its snapshots",
                            right="Storage Blob Data Contributor (the producer removes a snapshot whose request "
                            "could not be queued)", principal=principal, setting=setting)
        if not check.ok:  # say what was left, so the operator can remove it (the scans skip it meanwhile)
            left = f"container {container!r}" if temporary else f"probe blob {blob.blob_name!r} in {container!r}"
            check = Check(check.name, False, f"{check.detail}; {left} remains (the scans skip it)",
                          f"{check.fix}, then delete that {'container' if temporary else 'blob'}")
        checks.append(check)
    return checks


def _first_container_page(service: BlobServiceClient) -> list[str]:
    """The lake containers on the first listing page (`lake_container_names` reads them all)."""
    page = next(service.list_containers(results_per_page=5).by_page(), [])
    names = [container.name for container in page if not container.name.startswith("$")]
    return names or lake_container_names(service)[:1]


def _probe_backup(settings: Settings, principal: str) -> list[Check]:
    """Create a probe container and a probe blob with metadata (the worker's writes), then delete both."""
    setting = settings.backup.setting
    probe = _Probe()
    name = f"{PROBE_CONTAINER_PREFIX}{_random()}"
    service: BlobServiceClient | None = probe(lambda: blob_service(settings.backup))
    container = service.get_container_client(name) if service is not None else None
    if container is not None:
        probe(container.create_container)
    made_container = container is not None and probe.failure is None
    create = probe.failure
    write = _Probe()
    if made_container:
        assert container is not None
        blob = container.get_blob_client(f"{PROBE_PREFIX}{_random()}")
        if write(lambda: blob.upload_blob(b"probe", metadata=PROBE_METADATA)) is not None:
            write(lambda: blob.set_blob_metadata({**PROBE_METADATA, "source_etag": "probe"}))
    remove = _Probe()
    if made_container:
        assert container is not None
        remove(container.delete_container)
    checks = [probe_check("backup: create container", create, f"created container {name!r}",
                          right="Storage Blob Data Contributor", principal=principal, setting=setting)]
    if made_container:
        checks.append(probe_check("backup: write", write.failure, "wrote a probe blob and its metadata",
                                  right="Storage Blob Data Contributor", principal=principal, setting=setting))
        check = probe_check("backup: delete", remove.failure, f"deleted container {name!r} again",
                            right="Storage Blob Data Contributor (an unverified backup is deleted)",
                            principal=principal, setting=setting)
        if not check.ok:
            check = Check(check.name, False, f"{check.detail}; container {name!r} remains",
                          f"{check.fix}, then delete that container")
        checks.append(check)
    return checks


def _server_copy(destination: Any, url: str, name: str, size: int) -> Failure | None:
    """The worker's own copy call; its `CopyFailed` carries the service's answer, which decides the fix."""
    try:
        copy_from_url(destination, url, source_name=name, blob_type="BlockBlob", size=size, metadata=PROBE_METADATA,
                      condition={"match_condition": MatchConditions.IfMissing},
                      deadline=Deadline.after(PROBE_COPY_SECONDS))
    except BackupError as exc:
        if isinstance(exc.__cause__, TYPED_FAILURES):
            return failure_of(exc.__cause__)
        return Failure("http", str(exc))
    return None


def probe_copy_path(source: BlobServiceClient, backup: BlobServiceClient, source_container: str | None, *,
                    source_principal: str, backup_principal: str, source_setting: str,
                    backup_setting: str) -> list[Check]:
    """The blob engine's copy, step by step as the worker runs it, on a probe snapshot.

    A probe blob (a directory marker, skipped by the scans) is snapshotted in
    `source_container` (or in a temporary container when the account has none);
    `signed_source_url` signs the SAS exactly as for a backup (with a token
    credential that requests a user-delegation key); `copy_from_url` copies it
    into a probe container of the backup account; the bytes are read back;
    both sides are removed. Takes clients rather than settings so the
    user-delegation path can be probed against an emulator reached by URL.
    """
    kind = sas_kind(source)
    data = f"backup-doctor copy probe {_random()}".encode()
    temporary = None if source_container else f"{PROBE_CONTAINER_PREFIX}{_random()}"
    container = source_container or temporary
    assert container is not None
    blob = source.get_blob_client(container, f"{PROBE_PREFIX}{_random()}")
    target = backup.get_container_client(f"{PROBE_CONTAINER_PREFIX}{_random()}")
    step: CopyStep | None = None
    failure: Failure | None = None
    prepare = _Probe()
    made_source = temporary is None or prepare(lambda: source.create_container(temporary)) is not None
    created = made_source and prepare(lambda: blob.upload_blob(data, metadata=PROBE_METADATA)) is not None
    snapshot = prepare(blob.create_snapshot) if created else None
    if prepare.failure is not None:
        step, failure = "source", prepare.failure
    made_target = step is None and prepare(target.create_container) is not None
    if step is None and not made_target:
        step, failure = "target", prepare.failure
    if step is None:
        assert snapshot is not None
        sign = _Probe()
        url = sign(lambda: signed_source_url(source, container, blob.blob_name, snapshot["snapshot"],
                                             timedelta(seconds=PROBE_COPY_SECONDS)))
        if sign.failure is not None:
            step, failure = "sign", sign.failure
        else:
            destination = target.get_blob_client(blob.blob_name)
            failure = _server_copy(destination, url, blob.blob_name, len(data))
            if failure is not None:
                step = "copy"
            else:
                read = _Probe()
                arrived = read(lambda: destination.download_blob().readall())
                step, failure = (None, None) if arrived == data else ("verify", read.failure)
                if read.failure is not None:
                    step = "copy"  # the backup could not be read back: the backup account's right
    remove = _Probe()
    if made_target:
        remove(target.delete_container)
    if temporary is not None and made_source:
        remove(lambda: source.delete_container(temporary))
    elif created:
        remove(lambda: blob.delete_blob(delete_snapshots="include"))
    checks = [copy_path_check(step, failure, kind, where=f"container {target.container_name!r} of the backup account",
                              source_principal=source_principal, backup_principal=backup_principal,
                              source_setting=source_setting, backup_setting=backup_setting)]
    if remove.failure is not None:
        left = [f"probe container {target.container_name!r} in the backup account"] if made_target else []
        left.append(f"container {temporary!r}" if temporary else f"probe blob {blob.blob_name!r} in {container!r}")
        checks.append(Check("copy: clean up", False, f"{remove.failure.summary}; left: {', '.join(left)} "
                            "(the scans skip them)", "delete what is left by hand"))
    return checks


def _probe_copy(settings: Settings, principal: Principal, earlier: Sequence[Check],
                no_identity: set[str]) -> list[Check]:
    """The copy path, once the source and backup probes showed both accounts take writes."""
    if no_identity & {"source", "backup"}:
        return not_probed("copy")
    passed = {check.name for check in earlier if check.ok}
    if not {"source: snapshot and lease", "backup: create container"} <= passed:
        return not_probed("copy", "the copy needs the source and backup probes above to pass",
                          "the source and backup checks")
    source, backup = blob_service(settings.source), blob_service(settings.backup)
    containers = _Probe()(lambda: _first_container_page(source)) or []
    return probe_copy_path(source, backup, containers[0] if containers else None,
                           source_principal=principal.source, backup_principal=principal.backup,
                           source_setting=settings.source.setting, backup_setting=settings.backup.setting)


def _probe_records(settings: Settings, principal: str) -> Check:
    """Write a probe record the way every record is written (`RecordStore`), then try to delete it."""
    record = f"{RECORD_PROBE_PREFIX}probe-{_random()}"
    write = _Probe()
    service: BlobServiceClient | None = write(lambda: blob_service(settings.backup))
    store = RecordStore(service, settings.records_container) if service is not None else None
    if store is not None:
        write(lambda: store._create(record, {"record_kind": "doctor-probe"}, {"probe": record}))
    delete = _Probe()
    if store is not None and write.failure is None:
        delete(lambda: store.container.delete_blob(record))
    return records_check(settings.records_container, record, write.failure, delete.failure, principal=principal,
                         setting=settings.backup.setting)


def _probe_queues(settings: Settings, principal: str) -> list[Check]:
    """Send/receive/delete on `<queue>-doctor`; only properties of the request and poison queues."""
    setting, account = settings.queue.setting, account_label(settings.queue)
    probe_name = f"{settings.queue_name}{PROBE_QUEUE_SUFFIX}"
    checks: list[Check] = []
    create = _Probe()
    probe_queue = create(lambda: queue_client(settings.queue, probe_name))
    created = False
    if probe_queue is not None and not _exists(probe_queue):  # an existing one needs no create right
        try:
            probe_queue.create_queue()
            created = True
        except ResourceExistsError:
            pass
        except TYPED_FAILURES as exc:
            create.failure = failure_of(exc)
    checks.append(probe_check(
        "queue: create", create.failure, f"probe queue {probe_name!r} " + ("created" if created else "exists"),
        right="Storage Queue Data Contributor", principal=principal, setting=setting))
    if create.failure is not None and create.failure.kind == "denied":
        checks[-1] = Check("queue: create", False, f"{create.failure.summary}: this principal cannot create queues, "
                           f"so the probe queue {probe_name!r} cannot be made",
                           f"create queue {probe_name!r} on {account} once (then send/receive are probed without "
                           "the create right), or grant Storage Queue Data Contributor")
    if create.failure is None:
        assert probe_queue is not None
        marker = f"backup-doctor probe {_random()}"
        send = _Probe()
        send(lambda: probe_queue.send_message(marker, time_to_live=PROBE_MESSAGE_TTL_SECONDS))
        checks.append(probe_check("queue: send", send.failure, f"sent a probe message to {probe_name!r}",
                                  right="Storage Queue Data Message Sender", principal=principal, setting=setting))
        if send.failure is None:
            receive = _Probe()
            found = receive(lambda: _receive_and_delete(probe_queue, marker))
            detail = "received and deleted it" if found else "the probe message did not come back"
            check = probe_check("queue: receive and delete", receive.failure, detail,
                                right="Storage Queue Data Message Processor", principal=principal, setting=setting)
            if receive.failure is None and not found:
                check = Check(check.name, False, detail, "another process reads the probe queue: stop it and retry")
            checks.append(check)
        if created:  # whoever could create it may delete it (Queue Data Contributor); a leftover is an empty queue
            _Probe()(probe_queue.delete_queue)
    for name, poison in ((settings.queue_name, False), (settings.poison_queue_name, True)):
        props = _Probe()
        props(lambda: queue_client(settings.queue, name).get_queue_properties())
        if poison:
            # A probe queue that already existed proves nothing; one made by the operator suggests no create right.
            can_create = created
            checks.append(poison_queue_check(name, account, props.failure, can_create, principal=principal,
                                             setting=setting))
        else:
            checks.append(request_queue_check(name, account, props.failure, principal=principal, setting=setting))
    return checks


def _exists(queue: Any) -> bool:
    """Whether a queue exists; False when that cannot be read either (creating it then tells)."""
    try:
        queue.get_queue_properties()
        return True
    except TYPED_FAILURES:
        return False


def _receive_and_delete(queue: Any, marker: str) -> bool:
    """Delete this run's probe message (and stale probes) by pop receipt; True if ours came back."""
    found = False
    for message in queue.receive_messages(messages_per_page=32, visibility_timeout=30, max_messages=32):
        if str(message.content).startswith("backup-doctor probe"):
            queue.delete_message(message)
            found = found or message.content == marker
    return found


class AdfCopierLike(Protocol):
    """What the doctor needs of `backup.copiers.AdfCopier` (handed in by the CLI: admin cannot import backup)."""

    client: Any

    def parameters(self, job: Any) -> dict[str, str]: ...


@dataclass(frozen=True)
class _ParameterNamesJob:
    """Stands in for a CopyJob so that `AdfCopier.parameters` itself names what the worker sends."""

    container: str = "container"
    blob_name: str = "blob"
    backup: Any = field(default_factory=lambda: _NamedBackup())


@dataclass(frozen=True)
class _NamedBackup:
    container_name: str = "containerbak"
    blob_name: str = "blob_backup"


def _probe_adf(adf: AdfSettings, make_copier: Callable[[AdfSettings, TokenCredential], AdfCopierLike],
               credential: TokenCredential, principal: str) -> Check:
    """GET the pipeline through the real DataFactoryManagementClient the worker uses."""
    probe = _Probe()
    copier = make_copier(adf, credential)
    expected = list(copier.parameters(_ParameterNamesJob()))
    pipeline = probe(lambda: copier.client.pipelines.get(adf.resource_group, adf.factory_name, adf.pipeline_name))
    declared = list((getattr(pipeline, "parameters", None) or {}).keys()) if pipeline is not None else None
    return adf_pipeline_check(adf, declared, expected, probe.failure, principal)


def _resolve_identity(settings: Settings, needed: list[str]) -> tuple[str, Check | None]:
    """Who DefaultAzureCredential is here, from a token's claims (the token itself is never kept)."""
    if not needed:
        return "identity (not used)", None
    scope = STORAGE_SCOPE
    if needed == ["adf"] and settings.adf is not None:
        scope = f"{settings.adf.management_endpoint}/.default"
    credential = default_credential()
    try:
        token = credential.get_token(scope).token
    except (ClientAuthenticationError, ServiceRequestError, ServiceResponseError) as exc:
        failure = Failure("auth", f"{type(exc).__name__} (--debug lists each credential it tried)")
        return "identity (none resolved)", identity_check(None, failure, needed)
    chosen = getattr(credential, "_successful_credential", None)  # display only; private to azure-identity
    described = identity_description(type(chosen).__name__ if chosen is not None else None, jwt_claims(token))
    del token
    return described, identity_check(described, None, needed)


def trigger_bindings(app_root: Path, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(function folder, binding) for every `kind` trigger of the app's function folders (what the host reads)."""
    for function_json in sorted(app_root.glob("*/function.json")):
        try:
            bindings = json.loads(function_json.read_text(encoding="utf-8")).get("bindings", [])
        except (OSError, ValueError):
            continue
        for binding in bindings:
            if isinstance(binding, dict) and binding.get("type") == kind:
                yield function_json.parent.name, binding


def read_trigger_binding(app_root: Path) -> dict[str, Any] | None:
    """The queueTrigger binding of the app's function folders."""
    return next((binding for _, binding in trigger_bindings(app_root, "queueTrigger")), None)


def timer_checks(app_root: Path, env: Mapping[str, str]) -> list[Check]:
    """Each timer's schedule: Azure's host cannot index a timer whose `%SETTING%` is missing or invalid."""
    checks = []
    for name, binding in trigger_bindings(app_root, "timerTrigger"):
        raw = str(binding.get("schedule", ""))
        reference = re.fullmatch(r"%(\w+)%", raw)
        value = (env.get(reference.group(1)) or "").strip() if reference else raw
        check = f"timer: {name} schedule"
        if not value:
            setting = reference.group(1) if reference else "schedule"
            checks.append(Check(check, False, f"{raw!r} needs app setting {setting}, which is not set: the host "
                                "cannot index this timer", f"set {setting} (e.g. '0 */5 * * * *': every 5 minutes)"))
            continue
        try:
            Schedule.parse(value)
        except ScheduleError as exc:
            checks.append(Check(check, False, str(exc), "six NCRONTAB fields: second minute hour day month day-of-week"))
            continue
        checks.append(Check(check, True, f"{shown(value)}" + (f" ({reference.group(1)})" if reference else "")))
    return checks


def telemetry_check(env: Mapping[str, str]) -> Check:
    """Where metrics go (README "Monitoring"); off is fine, a malformed authentication string is not."""
    try:
        telemetry = load_telemetry_settings(env)
    except SettingsError as exc:
        return Check("telemetry", False, str(exc), "set it to 'Authorization=AAD' (optionally ';ClientId=<client id>') "
                     "or remove it; until then nothing is sent")
    if not telemetry.enabled:
        return Check("telemetry", True, "off: APPLICATIONINSIGHTS_CONNECTION_STRING is not set, nothing is sent")
    if not telemetry.aad:
        return Check("telemetry", True, "Application Insights, connection-string ingestion")
    return Check("telemetry", True, "Application Insights, Entra ID ingestion"
                 + (f" as client id {telemetry.client_id}" if telemetry.client_id else ""))


def read_function_timeout(host_json: Path) -> tuple[object, bool]:
    """(raw functionTimeout or None, whether host.json could be read)."""
    try:
        data = json.loads(host_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, False
    return (data.get("functionTimeout") if isinstance(data, dict) else None), isinstance(data, dict)


def in_azure(env: Mapping[str, str]) -> bool:
    return any((env.get(name) or "").strip() for name in AZURE_HOST_VARIABLES)


def run_doctor(env: Mapping[str, str] | None = None, *, host_json: Path = HOST_JSON,
               adf_copier: Callable[[AdfSettings, TokenCredential], AdfCopierLike] | None = None) -> DoctorReport:
    """Every check, in the order an operator fixes them; never raises for a configuration problem.

    `load_settings` runs without host.json here (its functionTimeout rule is a
    check of its own below, with its own fix), so "settings parse" means the
    settings themselves.
    """
    env = os.environ if env is None else env
    try:
        settings: Settings | None = load_settings(env, host_json=None)
        error = None
    except SettingsError as exc:
        settings, error = None, exc
    report = DoctorReport(principal=None, checks=[settings_check(error, settings)])
    if settings is None:
        return report
    identity_users = [name for name, target in (("source", settings.source), ("backup", settings.backup),
                                                ("queue", settings.queue))
                      if not target.connection_string and not target.account_key]
    if settings.copy_engine == "adf":
        identity_users.append("adf")
    here_azure = in_azure(env)
    identity, identity_result = _resolve_identity(settings, identity_users)
    principal = Principal(
        source=target_principal(settings.source, identity), backup=target_principal(settings.backup, identity),
        queue=target_principal(settings.queue, identity),
        adf=identity if settings.copy_engine == "adf" else None, in_azure=here_azure,
        identity_used=bool(identity_users))
    report.principal = principal
    if identity_result is not None:
        report.checks.append(identity_result)
    # Without an identity, its probes could only fail the same way, each after DefaultAzureCredential's
    # whole chain timed out again: they are reported as not probed instead.
    no_identity = set(identity_users) if identity_result is not None and not identity_result.ok else set()
    report.checks.append(distinct_accounts_check(settings))
    report.checks.extend(not_probed("source") if "source" in no_identity else _probe_source(settings, principal.source))
    report.checks.extend(not_probed("backup") if "backup" in no_identity else _probe_backup(settings, principal.backup))
    report.checks.extend(_probe_copy(settings, principal, report.checks, no_identity))
    if "backup" not in no_identity:
        report.checks.append(_probe_records(settings, principal.backup))
    report.checks.append(trigger_binding_check(read_trigger_binding(host_json.parent), env, settings))
    report.checks.extend(not_probed("queue") if "queue" in no_identity else _probe_queues(settings, principal.queue))
    if settings.copy_engine == "adf" and settings.adf is not None:
        if "adf" in no_identity:
            report.checks.extend(not_probed("adf"))
        elif adf_copier is None:  # admin cannot import backup: the surface hands AdfCopier in
            report.checks.append(Check("adf: pipeline and its parameters", False, "not checked: no ADF client given",
                                       "run it as `python -m shared_code doctor`"))
        else:
            report.checks.append(_probe_adf(settings.adf, adf_copier, default_credential(), identity))
    raw, readable = read_function_timeout(host_json)
    report.checks.append(function_timeout_check(host_json, raw, readable, settings.max_copy_seconds))
    report.checks.extend(timer_checks(host_json.parent, env))
    report.checks.append(telemetry_check(env))
    return report


__all__ = ["Check", "DoctorReport", "Failure", "Principal", "run_doctor"]
