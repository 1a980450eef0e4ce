"""The app-settings contract: one `Settings`, built and validated in one place.

Names of the original app (`par_*`) are kept so an existing deployment upgrades
in place; the newer settings are upper case. Everything is read at the first
invocation (not at import) so a bad setting surfaces as one `SettingsError`
naming it, never as a `KeyError` deep inside a copy.

`SETTINGS` declares every name `load_settings` reads (and `TELEMETRY_SETTINGS` the
two `load_telemetry_settings` reads), in one place: the README,
the Bicep and `doctor` are checked against it (tests/unit/test_infra.py), and
the reader every parser goes through (`_get`) refuses a name that is not in it,
so the declaration cannot fall behind the code. **Adding a setting** is one line
in `SETTINGS` (`"NAME": "what it is for"`) plus the code that parses it with
`_get` (or `parse_bool`, `_positive_number`, ...); then document it in README's
Settings table and, unless infra/ sets it, list it in OPTIONAL_SETTINGS of
tests/unit/test_infra.py.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Literal, Mapping

from shared_code.core.errors import InvalidInput, SettingsError
from shared_code.core.naming import container_name_problem
from shared_code.core.prices import DEFAULT_PRICES, PriceTable, parse_prices
from shared_code.core.retention_policy import DEFAULT_MAX_REMOVE_PERCENT, RetentionPolicy, Side, parse_policy

DEFAULT_QUEUE_NAME = "queuesnapshotmetadata"
DEFAULT_BACKUP_SUFFIX = "bak"
DEFAULT_MAX_COPY_MINUTES = 10.0
DEFAULT_WRITE_CONCURRENCY = 16
DEFAULT_ADF_ENDPOINT = "https://management.azure.com"
DEFAULT_TIME_BUDGET_SECONDS = 200.0
DEFAULT_SCAN_STATE_CONTAINER = "reconcile-state"
DEFAULT_RECORDS_CONTAINER = "backup-records"  # deletion records, the scan log, restore audits (storage.records)
SERVICE_MAX_PAGE_SIZE = 5000  # List Blobs' maximum maxresults: fewest requests per entry
DEFAULT_AHEAD_MAX_KEYS = 1_000_000  # ~100 MB of keys held for a container whose scan has not started yet
# How long one storage request attempt may wait for an answer once sent. Listing pages, snapshots,
# queue sends and property reads answer in well under a second on Azure; storage that accepts a
# request and then stalls must not hold an HTTP trigger past Azure's 230 s: 4 attempts of 20 s plus
# the back-off waits stay under ~100 s. The one long operation, the synchronous server-side copy,
# waits up to its own deadline instead (see copiers.BlobCopier).
DEFAULT_READ_TIMEOUT_SECONDS = 20.0
BLOB_LEASE_SECONDS_RANGE = (15, 60)  # what the service allows for a finite blob lease
DEFAULT_BLOB_LEASE_SECONDS = 60      # the longest finite lease: fewest renewals
DEFAULT_ADF_POLL_SECONDS = 10.0
MAX_READ_TIMEOUT_SECONDS = 300.0  # the benchmark's stalled-Azurite tolerance; keep HTTP deployments at the default
HTTP_HARD_LIMIT_SECONDS = 230.0  # Azure's load balancer ends any HTTP call after this
ADF_SETTINGS = ("par_subscription_id", "par_resource_group_name", "par_adfv2_name", "par_adfv2_pipeline_name")

# Every app setting this module reads (see the module docstring): name -> what it is for. README's
# Settings table has the defaults and the rules.
SETTINGS: Mapping[str, str] = MappingProxyType({
    "SOURCE_STORAGE_CONNECTION_STRING": "the source account's connection string (keys, SAS, Azurite); wins over its name",
    "par_storage_account_name_source": "the source account's name, reached with DefaultAzureCredential",
    "BACKUP_STORAGE_CONNECTION_STRING": "the backup account's connection string; wins over its name",
    "par_storage_account_name_backup": "the backup account's name, reached with DefaultAzureCredential",
    "QUEUE_STORAGE_CONNECTION_STRING": "the request queue's account connection string; wins over its name",
    "par_storage_account_name_queue": "the request queue's account name",
    "par_storage_account_key_queue": "a key for par_storage_account_name_queue (else DefaultAzureCredential)",
    "AzureWebJobsStorage": "the Functions host's connection: the queue's fallback and the trigger's account",
    "AzureWebJobsStorage__accountName": "the host's identity-based account: the trigger's account",
    "par_queue_name": "the request queue (also the trigger binding's %par_queue_name%)",
    "par_subscription_id": "ADF engine: the factory's subscription",
    "par_resource_group_name": "ADF engine: the factory's resource group",
    "par_adfv2_name": "ADF engine: the factory",
    "par_adfv2_pipeline_name": "ADF engine: the copy pipeline",
    "ADF_MANAGEMENT_ENDPOINT": "ADF engine: the ARM endpoint (sovereign clouds, tests)",
    "ADF_POLL_SECONDS": "ADF engine: seconds between looks at a pipeline run",
    "BACKUP_COPY_ENGINE": "adf or blob",
    "USING_BLOB_LEASE": "lease the source while a copy reads the base blob",
    "BLOB_LEASE_SECONDS": "that lease's duration",
    "MAX_LEASE_COPY_TIME_MINUTES": "the longest wait for one copy",
    "BACKUP_CONTAINER_SUFFIX": "backup container = source container + suffix",
    "SCAN_WRITE_CONCURRENCY": "parallel snapshot + enqueue writes per scan",
    "HTTP_TIME_BUDGET_SECONDS": "how long an HTTP scan call may run before it answers with a continuation",
    "CONTINUATION_TOKEN_KEY": "HMAC key of continuation tokens",
    "SCAN_STATE_CONTAINER": "backup-account container of HTTP reconciliation state",
    "RECORDS_CONTAINER": "backup-account container of deletion records, scan log and restore audits",
    "RECONCILE_AHEAD_MAX_KEYS": "backup keys listed ahead for the next container",
    "SCAN_LIST_PAGE_SIZE": "entries per listing page",
    "STORAGE_READ_TIMEOUT_SECONDS": "how long one storage request attempt waits for an answer",
    "EXCLUDED_CONTAINERS": "containers the scans and reports leave out",
    "RESTORE_STORAGE_CONNECTION_STRING": "the connection for restore --to-account",
    "RETENTION_SNAPSHOTS": "the standing retention policy of snapshots (prune, the retention timer)",
    "RETENTION_BACKUPS": "the standing retention policy of backups",
    "RETENTION_MAX_REMOVE_PERCENT": "prune's safety brake: the largest share of a container's snapshots (or backups) one run removes",
    "PRICES_PER_GB_MONTH": "USD per GB-month per access tier, for cost estimates",
    "BACKUP_ACCESS_TIER": "the access tier new backups are written in",
    "STORAGE_SUBSCRIPTION_ID": "posture and prune: the subscription of the storage accounts (management plane)",
    "STORAGE_RESOURCE_GROUP": "posture and prune: the backup account's resource group",
    "SOURCE_RESOURCE_GROUP": "posture and prune: the source account's resource group",
})
# Read by `load_telemetry_settings`, apart from `load_settings` (see "telemetry" below).
TELEMETRY_SETTINGS: Mapping[str, str] = MappingProxyType({
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "the Application Insights resource metrics and traces go to (unset: none)",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD[;ClientId=...]: Entra ID ingestion",
})

HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
LOCAL_SETTINGS = "local.settings.json"
COPY_TIMEOUT_MARGIN_SECONDS = 120  # lookups, lease release and metadata after the copy wait
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?!.*--)[a-z0-9-]*[a-z0-9]$")
_SUFFIX = re.compile(r"^[a-z0-9-]{0,20}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}

CopyEngine = Literal["adf", "blob"]


@dataclass(frozen=True)
class StorageTarget:
    """How to reach one storage account: a connection string wins over an account name.

    `setting` names where the value came from, so errors can point at it.
    Secrets are excluded from `repr` so a logged Settings never leaks them.
    """

    setting: str
    connection_string: str | None = field(default=None, repr=False)
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    read_timeout_seconds: float = DEFAULT_READ_TIMEOUT_SECONDS

    def account_url(self, service: Literal["blob", "queue"]) -> str:
        return f"https://{self.account_name}.{service}.core.windows.net"


@dataclass(frozen=True)
class AdfSettings:
    """The ADFv2 pipeline that performs the copy in the `adf` engine."""

    subscription_id: str
    resource_group: str
    factory_name: str
    pipeline_name: str
    management_endpoint: str = DEFAULT_ADF_ENDPOINT
    poll_seconds: float = DEFAULT_ADF_POLL_SECONDS  # between looks at a pipeline run (ADF_POLL_SECONDS)


@dataclass(frozen=True)
class ManagementSettings:
    """Where the management plane (ARM) knows the two storage accounts, for the `posture` report.

    Optional: without a subscription and resource group the report says
    `unknown` for what only ARM can tell (container soft delete, public
    access, immutability lock state) instead of guessing.
    """

    subscription_id: str | None = None
    backup_resource_group: str | None = None  # STORAGE_RESOURCE_GROUP
    source_resource_group: str | None = None  # SOURCE_RESOURCE_GROUP
    endpoint: str = DEFAULT_ADF_ENDPOINT      # ADF_MANAGEMENT_ENDPOINT: one ARM endpoint for ADF and storage


@dataclass(frozen=True, kw_only=True)
class Settings:
    source: StorageTarget
    backup: StorageTarget
    queue: StorageTarget
    queue_name: str = DEFAULT_QUEUE_NAME
    copy_engine: CopyEngine = "blob"
    adf: AdfSettings | None = None
    use_blob_lease: bool = True
    blob_lease_seconds: int = DEFAULT_BLOB_LEASE_SECONDS
    max_copy_minutes: float = DEFAULT_MAX_COPY_MINUTES
    backup_container_suffix: str = DEFAULT_BACKUP_SUFFIX
    write_concurrency: int = DEFAULT_WRITE_CONCURRENCY
    time_budget_seconds: float = DEFAULT_TIME_BUDGET_SECONDS
    continuation_key: bytes = field(default=b"", repr=False)
    scan_state_container: str = DEFAULT_SCAN_STATE_CONTAINER
    ahead_max_keys: int = DEFAULT_AHEAD_MAX_KEYS
    list_page_size: int = SERVICE_MAX_PAGE_SIZE
    records_container: str = DEFAULT_RECORDS_CONTAINER
    # EXCLUDED_CONTAINERS: names, or `prefix*` patterns, that produce, reconcile, status, verify and prune leave out
    excluded_containers: tuple[str, ...] = ()
    # RESTORE_STORAGE_CONNECTION_STRING: the connection for `restore --to-account` (keys, Azurite), when set
    restore_connection_string: str | None = field(default=None, repr=False)
    # RETENTION_SNAPSHOTS / RETENTION_BACKUPS: the standing policies of prune and the timer (None: that side is not pruned)
    retention_snapshots: RetentionPolicy | None = None
    retention_backups: RetentionPolicy | None = None
    retention_max_remove_percent: float = DEFAULT_MAX_REMOVE_PERCENT
    prices: PriceTable = DEFAULT_PRICES  # PRICES_PER_GB_MONTH: the capacity prices status and prune estimate with
    backup_access_tier: str | None = None  # BACKUP_ACCESS_TIER: Hot/Cool/Cold/Archive for new backups (None: the account's default)
    management: ManagementSettings = field(default_factory=ManagementSettings)

    def excludes(self, container: str) -> bool:
        """Whether EXCLUDED_CONTAINERS leaves `container` out of the scans and reports."""
        return any(container.startswith(p[:-1]) if p.endswith("*") else container == p
                   for p in self.excluded_containers)

    def split_excluded(self, containers: Iterable[str]) -> tuple[list[str], list[str]]:
        """`containers` a whole-account run covers, and those EXCLUDED_CONTAINERS leaves out (reported)."""
        kept: list[str] = []
        left_out: list[str] = []
        for name in containers:
            (left_out if self.excludes(name) else kept).append(name)
        return kept, left_out

    @property
    def poison_queue_name(self) -> str:
        """The Functions host's convention for messages that failed maxDequeueCount times."""
        return f"{self.queue_name}-poison"

    @property
    def max_copy_seconds(self) -> float:
        return self.max_copy_minutes * 60.0


def shown(value: str) -> str:
    """A setting's value as it may appear in an error: never something that could be a secret.

    People paste connection strings into the wrong setting; a value that looks
    like one (or is long) is described, not echoed.
    """
    if len(value) > 40 or any(marker in value for marker in (";", "=", "sig", "Key", "key")):
        return f"<a {len(value)}-character value, not shown>"
    return repr(value)


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Strict boolean: a typo like `ture` is an error, not a silent False."""
    raw = _get(env, name)
    if raw is None:
        return default
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {shown(raw)}")


def _get(env: Mapping[str, str], name: str) -> str | None:
    """A setting's value, with empty or blank values treated as unset.

    Only declared settings can be read (a `KeyError` is a programming error): that keeps
    `SETTINGS`, which the README and infra/ are checked against, the list of what is read.
    """
    if name not in SETTINGS and name not in TELEMETRY_SETTINGS:
        raise KeyError(f"setting {name!r} is read but not declared in shared_code.core.settings.SETTINGS")
    value = env.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _positive_number(env: Mapping[str, str], name: str, default: float, *, integer: bool = False) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise SettingsError(f"{name} must be {kind} greater than 0, got {shown(raw)}") from None
    if not value > 0 or value != value:
        raise SettingsError(f"{name} must be greater than 0, got {shown(raw)}")
    return value


def _account(env: Mapping[str, str], conn_setting: str, name_setting: str) -> StorageTarget:
    conn = _get(env, conn_setting)
    if conn is not None:
        return StorageTarget(setting=conn_setting, connection_string=conn)
    name = _get(env, name_setting)
    if name is None:
        raise SettingsError(f"set {conn_setting} or {name_setting}: the storage account is not configured")
    if not _ACCOUNT_NAME.match(name):
        raise SettingsError(f"{name_setting} must be a storage account name (3-24 lowercase letters and digits), got {shown(name)}")
    return StorageTarget(setting=name_setting, account_name=name)


def _queue_account(env: Mapping[str, str]) -> StorageTarget:
    conn = _get(env, "QUEUE_STORAGE_CONNECTION_STRING")
    if conn is not None:
        return StorageTarget(setting="QUEUE_STORAGE_CONNECTION_STRING", connection_string=conn)
    name = _get(env, "par_storage_account_name_queue")
    if name is not None:
        if not _ACCOUNT_NAME.match(name):
            raise SettingsError(
                f"par_storage_account_name_queue must be a storage account name (3-24 lowercase letters and digits), got {shown(name)}"
            )
        return StorageTarget(
            setting="par_storage_account_name_queue",
            account_name=name,
            account_key=_get(env, "par_storage_account_key_queue"),
        )
    webjobs = _get(env, "AzureWebJobsStorage")
    if webjobs is not None:
        return StorageTarget(setting="AzureWebJobsStorage", connection_string=webjobs)
    raise SettingsError(
        "set QUEUE_STORAGE_CONNECTION_STRING, par_storage_account_name_queue or AzureWebJobsStorage: the queue is not configured"
    )


def _adf(env: Mapping[str, str]) -> AdfSettings | None:
    values = {name: _get(env, name) for name in ADF_SETTINGS}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise SettingsError(f"the ADF settings are incomplete: set {', '.join(missing)} too, or none of the four")
    return AdfSettings(
        subscription_id=values["par_subscription_id"],  # type: ignore[arg-type]
        resource_group=values["par_resource_group_name"],  # type: ignore[arg-type]
        factory_name=values["par_adfv2_name"],  # type: ignore[arg-type]
        pipeline_name=values["par_adfv2_pipeline_name"],  # type: ignore[arg-type]
        management_endpoint=_arm_endpoint(env),
        poll_seconds=_positive_number(env, "ADF_POLL_SECONDS", DEFAULT_ADF_POLL_SECONDS),
    )


def _arm_endpoint(env: Mapping[str, str]) -> str:
    endpoint = (_get(env, "ADF_MANAGEMENT_ENDPOINT") or DEFAULT_ADF_ENDPOINT).rstrip("/")
    if not endpoint.startswith("https://"):
        raise SettingsError(f"ADF_MANAGEMENT_ENDPOINT must be an https:// URL, got {shown(endpoint)}")
    return endpoint


def _management(env: Mapping[str, str]) -> ManagementSettings:
    """The ARM coordinates of the accounts; the ADF settings' subscription and group are the defaults."""
    backup_group = _get(env, "STORAGE_RESOURCE_GROUP") or _get(env, "par_resource_group_name")
    return ManagementSettings(
        subscription_id=_get(env, "STORAGE_SUBSCRIPTION_ID") or _get(env, "par_subscription_id"),
        backup_resource_group=backup_group,
        source_resource_group=_get(env, "SOURCE_RESOURCE_GROUP") or backup_group,
        endpoint=_arm_endpoint(env),
    )


def _copy_engine(env: Mapping[str, str], adf: AdfSettings | None) -> CopyEngine:
    raw = _get(env, "BACKUP_COPY_ENGINE")
    if raw is None:
        return "adf" if adf is not None else "blob"
    engine = raw.lower()
    if engine not in ("adf", "blob"):
        raise SettingsError(f"BACKUP_COPY_ENGINE must be 'adf' or 'blob', got {shown(raw)}")
    if engine == "adf" and adf is None:
        raise SettingsError(f"BACKUP_COPY_ENGINE=adf needs {', '.join(ADF_SETTINGS)}")
    return engine  # type: ignore[return-value]


def timespan_seconds(text: str) -> float | None:
    """A .NET TimeSpan as host.json writes it (`[d.]hh:mm:ss[.fffffff]`) in seconds; None if it is not one.

    The day part matters: `1.00:00:00` is a day, not an hour.
    """
    match = _TIMESPAN.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups()[:4])
    fraction = float(f"0.{match.group(5)}") if match.group(5) else 0.0
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds) + fraction


@functools.lru_cache(maxsize=4)
def function_timeout_seconds(host_json: Path) -> float | None:
    """`functionTimeout` from host.json in seconds; None when absent or unlimited ("-1")."""
    try:
        raw = json.loads(host_json.read_text(encoding="utf-8")).get("functionTimeout")
    except (OSError, ValueError):
        return None
    return timespan_seconds(str(raw or ""))


def _check_copy_time_fits(max_copy_minutes: float, host_json: Path | None) -> None:
    """A copy wait longer than the function may run would be cut off mid-copy, every time."""
    timeout = function_timeout_seconds(host_json) if host_json else None
    if timeout is not None and max_copy_minutes * 60 + COPY_TIMEOUT_MARGIN_SECONDS > timeout:
        raise SettingsError(
            f"MAX_LEASE_COPY_TIME_MINUTES={max_copy_minutes:g} does not fit host.json functionTimeout "
            f"({timeout / 60:g} min) with a {COPY_TIMEOUT_MARGIN_SECONDS} s margin: lower it, or raise functionTimeout"
        )


def connection_string_parts(connection_string: str) -> dict[str, str]:
    """`Key=Value;...` of a storage connection string (values may contain `=`, e.g. base64 keys)."""
    return dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)


def _connection_account(connection_string: str | None) -> str | None:
    if not connection_string:
        return None
    parts = connection_string_parts(connection_string)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return "devstoreaccount1"
    return parts.get("AccountName")


def account_identity(target: StorageTarget) -> tuple[str | None, str | None]:
    """(account name, blob endpoint) of a target, to tell two accounts apart."""
    if target.connection_string:
        parts = connection_string_parts(target.connection_string)
        endpoint = parts.get("BlobEndpoint")
        if endpoint is None and parts.get("AccountName"):
            endpoint = f"https://{parts['AccountName']}.blob.{parts.get('EndpointSuffix', 'core.windows.net')}"
        return _connection_account(target.connection_string), (endpoint or "").rstrip("/").lower() or None
    return target.account_name, target.account_url("blob").lower()


def _check_queue_is_the_triggers(env: Mapping[str, str], queue: StorageTarget) -> None:
    """The queue trigger listens on AzureWebJobsStorage's account (function.json): requests sent
    to another account would never be processed."""
    trigger = _connection_account(_get(env, "AzureWebJobsStorage")) or _get(env, "AzureWebJobsStorage__accountName")
    target = queue.account_name or _connection_account(queue.connection_string)
    if trigger and target and trigger != target:
        raise SettingsError(
            f"{queue.setting} points at storage account {target!r}, but the queue trigger listens on "
            f"AzureWebJobsStorage's account {trigger!r}: backup requests would never be processed; "
            "use the same account for both"
        )


def _continuation_key(env: Mapping[str, str], source: StorageTarget) -> bytes:
    """The HMAC key of continuation tokens: explicit, or bound to this source account's configuration."""
    explicit = _get(env, "CONTINUATION_TOKEN_KEY")
    material = explicit or f"{source.setting}|{source.connection_string or ''}|{source.account_name or ''}"
    return hashlib.sha256(b"continuation-token|" + material.encode("utf-8")).digest()


def _list_page_size(env: Mapping[str, str]) -> int:
    """Entries per listing page the scans ask for (and the most the cursor grows a page to)."""
    size = int(_positive_number(env, "SCAN_LIST_PAGE_SIZE", SERVICE_MAX_PAGE_SIZE, integer=True))
    if size > SERVICE_MAX_PAGE_SIZE:
        raise SettingsError(f"SCAN_LIST_PAGE_SIZE must be at most {SERVICE_MAX_PAGE_SIZE} (the service's maximum), got {size}")
    return size


def _own_container(env: Mapping[str, str], setting: str, default: str, suffix: str) -> str:
    """A container of the backup account the app keeps for itself (scan state, records).

    It must not end with the backup suffix, or it could be mistaken for (or
    collide with) the backup container of a source container.
    """
    name = _get(env, setting) or default
    problem = container_name_problem(name)
    if problem:
        raise SettingsError(f"{setting}: {problem}")
    if suffix and name.endswith(suffix):
        raise SettingsError(f"{setting} {name!r} ends with BACKUP_CONTAINER_SUFFIX {suffix!r}: "
                            "it could be the backup container of a source container; choose another name")
    return name


_EXCLUDED = re.compile(r"^[a-z0-9-]{1,63}\*?$")


ACCESS_TIERS = ("Hot", "Cool", "Cold", "Archive")


def _access_tier(env: Mapping[str, str]) -> str | None:
    """BACKUP_ACCESS_TIER, spelled as the service spells it; unset: the backup account's default tier."""
    raw = _get(env, "BACKUP_ACCESS_TIER")
    if raw is None:
        return None
    for tier in ACCESS_TIERS:
        if raw.lower() == tier.lower():
            return tier
    raise SettingsError(f"BACKUP_ACCESS_TIER must be one of {', '.join(ACCESS_TIERS)}, got {shown(raw)}")


def _excluded_containers(env: Mapping[str, str]) -> tuple[str, ...]:
    """EXCLUDED_CONTAINERS: comma-separated container names or `prefix*` patterns."""
    raw = _get(env, "EXCLUDED_CONTAINERS") or ""
    patterns = tuple(part.strip() for part in raw.split(",") if part.strip())
    for pattern in patterns:
        if not _EXCLUDED.match(pattern):
            raise SettingsError(f"EXCLUDED_CONTAINERS: {shown(pattern)} is neither a container name nor a "
                                "`prefix*` pattern (lowercase letters, digits, hyphens, optional trailing *)")
    return patterns


def _list_error(name: str, raw: str, example: str, error: InvalidInput) -> SettingsError:
    """A policy or price list always holds `=`, so `shown` would hide every value: hide only what may be a secret."""
    if ";" in raw or "key" in raw.lower() or "sig" in raw.lower():
        return SettingsError(f"{name} must look like {example}, got <a {len(raw)}-character value, not shown>")
    return SettingsError(f"{name}: {error}")


def _retention_policy(name: str, raw: str | None, side: Side) -> RetentionPolicy | None:
    if raw is None:
        return None
    try:
        return parse_policy(raw, side)
    except InvalidInput as error:
        raise _list_error(name, raw, "keep-last=3,keep-daily=14,min-age=7d", error) from None


def _prices(raw: str | None) -> PriceTable:
    if raw is None:
        return DEFAULT_PRICES
    try:
        return parse_prices(raw)
    except InvalidInput as error:
        raise _list_error("PRICES_PER_GB_MONTH", raw, "hot=0.0184,cool=0.01", error) from None


def _max_remove_percent(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_MAX_REMOVE_PERCENT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 100:
        raise SettingsError(f"RETENTION_MAX_REMOVE_PERCENT must be a number from 0 to 100, got {shown(raw)}")
    return value


def load_settings(env: Mapping[str, str], host_json: Path | None = HOST_JSON) -> Settings:
    """Build and validate the settings from the app settings (environment)."""
    queue_name = _get(env, "par_queue_name") or DEFAULT_QUEUE_NAME
    if not _QUEUE_NAME.match(queue_name):
        raise SettingsError(
            f"par_queue_name must be a queue name (3-63 lowercase letters, digits and single hyphens), got {shown(queue_name)}"
        )
    suffix = _get(env, "BACKUP_CONTAINER_SUFFIX")
    suffix = DEFAULT_BACKUP_SUFFIX if suffix is None else suffix
    if not _SUFFIX.match(suffix) or "--" in suffix:
        raise SettingsError(
            f"BACKUP_CONTAINER_SUFFIX must be at most 20 lowercase letters, digits or single hyphens, got {shown(suffix)}"
        )
    read_timeout = _positive_number(env, "STORAGE_READ_TIMEOUT_SECONDS", DEFAULT_READ_TIMEOUT_SECONDS)
    if read_timeout > MAX_READ_TIMEOUT_SECONDS:
        raise SettingsError(f"STORAGE_READ_TIMEOUT_SECONDS must be at most {MAX_READ_TIMEOUT_SECONDS:g}, got {read_timeout:g}")
    source, backup, queue = (
        replace(target, read_timeout_seconds=read_timeout) for target in (
            _account(env, "SOURCE_STORAGE_CONNECTION_STRING", "par_storage_account_name_source"),
            _account(env, "BACKUP_STORAGE_CONNECTION_STRING", "par_storage_account_name_backup"),
            _queue_account(env)))
    adf = _adf(env)
    _check_queue_is_the_triggers(env, queue)
    max_copy_minutes = _positive_number(env, "MAX_LEASE_COPY_TIME_MINUTES", DEFAULT_MAX_COPY_MINUTES)
    _check_copy_time_fits(max_copy_minutes, host_json)
    budget = _positive_number(env, "HTTP_TIME_BUDGET_SECONDS", DEFAULT_TIME_BUDGET_SECONDS)
    if budget > HTTP_HARD_LIMIT_SECONDS - 10:
        raise SettingsError(f"HTTP_TIME_BUDGET_SECONDS must be at most {HTTP_HARD_LIMIT_SECONDS - 10:g}: "
                            f"Azure ends HTTP calls after {HTTP_HARD_LIMIT_SECONDS:g} s")
    scan_state = _own_container(env, "SCAN_STATE_CONTAINER", DEFAULT_SCAN_STATE_CONTAINER, suffix)
    records = _own_container(env, "RECORDS_CONTAINER", DEFAULT_RECORDS_CONTAINER, suffix)
    if records == scan_state:
        raise SettingsError(f"RECORDS_CONTAINER and SCAN_STATE_CONTAINER are both {records!r}: scan state is deleted "
                            "when it gets old, records are kept; give them different containers")
    return Settings(
        blob_lease_seconds=_blob_lease_seconds(env),
        source=source,
        backup=backup,
        queue=queue,
        queue_name=queue_name,
        copy_engine=_copy_engine(env, adf),
        adf=adf,
        use_blob_lease=parse_bool(env, "USING_BLOB_LEASE", True),
        max_copy_minutes=max_copy_minutes,
        backup_container_suffix=suffix,
        write_concurrency=int(_positive_number(env, "SCAN_WRITE_CONCURRENCY", DEFAULT_WRITE_CONCURRENCY, integer=True)),
        time_budget_seconds=budget,
        continuation_key=_continuation_key(env, source),
        scan_state_container=scan_state,
        records_container=records,
        excluded_containers=_excluded_containers(env),
        restore_connection_string=_get(env, "RESTORE_STORAGE_CONNECTION_STRING"),
        retention_snapshots=_retention_policy("RETENTION_SNAPSHOTS", _get(env, "RETENTION_SNAPSHOTS"), "snapshot"),
        retention_backups=_retention_policy("RETENTION_BACKUPS", _get(env, "RETENTION_BACKUPS"), "backup"),
        retention_max_remove_percent=_max_remove_percent(_get(env, "RETENTION_MAX_REMOVE_PERCENT")),
        prices=_prices(_get(env, "PRICES_PER_GB_MONTH")),
        backup_access_tier=_access_tier(env),
        management=_management(env),
        ahead_max_keys=int(_positive_number(env, "RECONCILE_AHEAD_MAX_KEYS", DEFAULT_AHEAD_MAX_KEYS, integer=True)),
        list_page_size=_list_page_size(env),
    )


def _blob_lease_seconds(env: Mapping[str, str]) -> int:
    low, high = BLOB_LEASE_SECONDS_RANGE
    seconds = int(_positive_number(env, "BLOB_LEASE_SECONDS", DEFAULT_BLOB_LEASE_SECONDS, integer=True))
    if not low <= seconds <= high:
        raise SettingsError(f"BLOB_LEASE_SECONDS must be {low}-{high} (a finite blob lease), got {seconds}")
    return seconds


def load_local_settings(path: Path) -> int:
    """Put `Values` of local.settings.json into the environment (set variables win); returns how many.

    What `func start` does: the CLI and `make run` read the same file, so
    local settings are defined once.
    """
    if not path.exists():
        return 0
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    loaded = 0
    for name, value in values.items():
        if name not in os.environ and isinstance(value, str):
            os.environ[name] = value
            loaded += 1
    return loaded


# ---------------------------------------------------------------- telemetry
#
# Read apart from `load_settings`: telemetry is configured before, and whether
# or not, the lake's settings load (an invocation failing on them is still
# counted as a failed try). Timer schedules (`METRICS_SCHEDULE`) are the
# Functions host's to read, through function.json; `doctor` checks them.

@dataclass(frozen=True)
class TelemetrySettings:
    """Where metrics and traces go: nowhere without a connection string.

    `aad` is true when `APPLICATIONINSIGHTS_AUTHENTICATION_STRING` says
    `Authorization=AAD` (Microsoft's format, optionally with `ClientId=<user-assigned
    identity>`): ingestion then authenticates with Entra ID, which a resource with
    local authentication disabled requires. The connection string is kept out of
    `repr`: a logged TelemetrySettings must never carry it.
    """

    connection_string: str | None = field(default=None, repr=False)
    aad: bool = False
    client_id: str | None = None

    @property
    def enabled(self) -> bool:
        return self.connection_string is not None


def load_telemetry_settings(env: Mapping[str, str]) -> TelemetrySettings:
    connection_string = _get(env, "APPLICATIONINSIGHTS_CONNECTION_STRING")
    auth = _get(env, "APPLICATIONINSIGHTS_AUTHENTICATION_STRING")
    if auth is None:
        return TelemetrySettings(connection_string)
    parts: dict[str, str] = {}
    for item in filter(None, (piece.strip() for piece in auth.split(";"))):
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise SettingsError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be 'Authorization=AAD' with an "
                                f"optional ';ClientId=<client id>', got {shown(auth)}")
        parts[key.strip().lower()] = value.strip()
    if parts.get("authorization", "").upper() != "AAD" or set(parts) - {"authorization", "clientid"}:
        raise SettingsError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be 'Authorization=AAD' with an "
                            f"optional ';ClientId=<client id>', got {shown(auth)}")
    return TelemetrySettings(connection_string, aad=True, client_id=parts.get("clientid"))

