"""`posture`: how well the backups would survive ransomware or a compromised admin, one finding per check.

Backups protect against losing the lake only while nobody who can reach the
lake can also erase them. That depends on settings no scan looks at: soft
delete, public access, and above all immutability policies and their lock
state. This report reads them and says, per check, `ok`, `warning`,
`problem` or `unknown`, what it found and what to do.

Two halves, as in `doctor`:

- **decisions** (pure): observations (plain dataclasses, or a `Failure` when
  a read was refused) become findings. Every rule lives here, unit-tested
  without storage;
- **probes** (thin I/O): the data plane (`get_service_properties`,
  `list_containers`) with the app's storage principal, and the management
  plane (`azure-mgmt-storage`, DefaultAzureCredential) for what only ARM
  knows: container soft delete, `allowBlobPublicAccess`, versioning, HNS and
  the immutability policies with their retention and lock state.

What cannot be read is `unknown`, never guessed: a refused or unconfigured
management plane does not make a policy look locked or absent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Sequence, TypeVar

from azure.core.exceptions import ClientAuthenticationError

from shared_code.admin.doctor import TYPED_FAILURES, Failure, distinct_accounts_check, failure_of
from shared_code.core.errors import InvalidInput
from shared_code.core.immutability import ImmutabilityPolicy
from shared_code.core.naming import backup_container_name
from shared_code.core.settings import ManagementSettings, Settings, StorageTarget
from shared_code.storage.clients import blob_service, storage_management_client
from shared_code.storage.containers import lake_container_names
from shared_code.storage.immutability import Role, arm_location, policy_of

Status = Literal["ok", "warning", "problem", "unknown"]
# A blob soft-delete window shorter than this leaves little time to notice an attack (the portal's default).
MIN_SOFT_DELETE_DAYS = 7
UNLOCKED = "an unlocked policy gives no delete protection"
ADF_WORM = ("the adf engine sets the backup's provenance metadata after its run, and WORM forbids Set Blob "
            "Metadata: every backup into an immutable container would fail after its copy")
T = TypeVar("T")


# -- results --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One check's verdict; `recommendation` is empty when there is nothing to do."""

    check: str
    status: Status
    found: str
    recommendation: str = ""


@dataclass
class PostureReport:
    findings: list[Finding]

    @property
    def status(self) -> Status:
        """The worst finding: a problem outweighs not knowing, which outweighs a warning."""
        for status in ("problem", "unknown", "warning"):
            if any(f.status == status for f in self.findings):
                return status  # type: ignore[return-value]
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "findings": [asdict(f) for f in self.findings]}


# -- observations (plain data) --------------------------------------------------------------------

@dataclass(frozen=True)
class Retention:
    """A soft-delete setting."""

    enabled: bool
    days: int | None = None


@dataclass(frozen=True)
class ContainerFlags:
    """What the data plane's container listing says about one container."""

    name: str
    public_access: str | None = None
    has_immutability_policy: bool = False
    has_legal_hold: bool = False
    version_level: bool = False  # immutable_storage_with_versioning_enabled


@dataclass(frozen=True)
class ArmContainer:
    """One container in ARM's listing: the data plane's flags (ARM reports them too) and its policy."""

    flags: ContainerFlags
    policy: ImmutabilityPolicy | None = None


@dataclass(frozen=True)
class ArmAccount:
    """What only the management plane knows about one account."""

    allow_blob_public_access: bool | None
    hns: bool
    versioning: bool
    container_soft_delete: Retention
    blob_soft_delete: Retention | None = None  # ARM's copy of the data plane's setting
    account_policy: ImmutabilityPolicy | None = None  # the account-level version-level default, when enabled
    containers: dict[str, ArmContainer] = field(default_factory=dict)  # read for the backup account only


@dataclass(frozen=True)
class Observations:
    """Everything the probes saw; a `Failure` (or a sentence) stands for what could not be read."""

    settings: Settings
    soft_delete: dict[Role, Retention | Failure]
    arm: dict[Role, ArmAccount | Failure | str]
    backup_containers: list[ContainerFlags] | Failure
    source_containers: list[str] | Failure


# -- decisions (pure) -----------------------------------------------------------------------------

def _unread(check: str, failure: Failure | str, what: str, *, plane: Literal["data", "arm"] = "arm") -> Finding:
    """`unknown`, with the reason and what would let the next run read it."""
    why = failure if isinstance(failure, str) else failure.summary
    if isinstance(failure, str):
        fix = ("set STORAGE_SUBSCRIPTION_ID and STORAGE_RESOURCE_GROUP (and SOURCE_RESOURCE_GROUP if the source "
               "account is in another resource group)")
    elif failure.kind == "auth":
        fix = "sign in (DefaultAzureCredential: managed identity, environment or `az login`), then run posture again"
    elif failure.kind == "missing" and plane == "arm":
        fix = ("check STORAGE_SUBSCRIPTION_ID, STORAGE_RESOURCE_GROUP and SOURCE_RESOURCE_GROUP: ARM does not know "
               "the account there")
    elif failure.kind == "unreachable":
        fix = "check the network (and ADF_MANAGEMENT_ENDPOINT for the management plane), then run posture again"
    elif plane == "arm":
        fix = "give the principal Reader on the account (or run as one that has it), then run posture again"
    else:
        fix = "run posture as a principal that may read it (the app's storage settings decide which one)"
    return Finding(check, "unknown", f"{what} could not be read: {why}", fix)


def distinct_accounts_finding(settings: Settings) -> Finding:
    """The doctor's rule (backups in the source account die with it), as a posture finding."""
    check = distinct_accounts_check(settings)
    return Finding(check.name, "ok" if check.ok else "problem", check.detail, check.fix)


def blob_soft_delete_finding(role: Role, observed: Retention | Failure) -> Finding:
    """Soft delete keeps a deleted or overwritten blob (and snapshot) for its window: a second chance."""
    check = f"{role}: blob soft delete"
    if isinstance(observed, Failure):
        return _unread(check, observed, "the blob service properties", plane="data")
    if not observed.enabled:
        return Finding(check, "problem" if role == "backup" else "warning", "disabled",
                       "enable blob soft delete (1-365 days): a deleted blob can be restored within the window")
    if observed.days is not None and observed.days < MIN_SOFT_DELETE_DAYS:
        return Finding(check, "warning", f"enabled, {observed.days} days",
                       f"keep deleted blobs at least {MIN_SOFT_DELETE_DAYS} days: an attack is often noticed late")
    return Finding(check, "ok", f"enabled, {observed.days} days")


def container_soft_delete_finding(role: Role, arm: ArmAccount | Failure | str) -> Finding:
    """A deleted container takes every blob with it; container soft delete keeps it restorable."""
    check = f"{role}: container soft delete"
    if not isinstance(arm, ArmAccount):
        return _unread(check, arm, "the management plane")
    policy = arm.container_soft_delete
    if not policy.enabled:
        return Finding(check, "problem" if role == "backup" else "warning", "disabled",
                       "enable container soft delete: a deleted container and its blobs can then be restored")
    return Finding(check, "ok", f"enabled, {policy.days} days")


def public_access_finding(role: Role, arm: ArmAccount | Failure | str) -> Finding:
    """`allowBlobPublicAccess: false` makes every container private, whatever its own level says."""
    check = f"{role}: account public access"
    if not isinstance(arm, ArmAccount):
        return _unread(check, arm, "the management plane")
    if arm.allow_blob_public_access is False:
        return Finding(check, "ok", "allowBlobPublicAccess is false: no container can be read anonymously")
    fix = "set allowBlobPublicAccess to false on the account"
    if arm.allow_blob_public_access is None:
        return Finding(check, "warning", "allowBlobPublicAccess is not set (older API versions read a missing value "
                       "as allowed)", fix)
    return Finding(check, "problem" if role == "backup" else "warning",
                   "allowBlobPublicAccess is true: a container set to public access can be read anonymously", fix)


def _policy_text(policy: ImmutabilityPolicy) -> str:
    days = f"{policy.days} days" if policy.days is not None else "retention not reported"
    return f"{(policy.state or 'state not reported').lower()}, {days}"


def _policy_finding(check: str, policy: ImmutabilityPolicy, where: str) -> Finding:
    if (policy.state or "").lower() == "locked":
        return Finding(check, "ok", f"{where}: {_policy_text(policy)}")
    if (policy.state or "").lower() == "unlocked":
        return Finding(check, "warning",
                       f"{where}: {_policy_text(policy)}: {UNLOCKED} (anyone allowed to write the policy can "
                       "remove or shorten it, then delete the backups)",
                       "lock the policy once its retention is right (a locked policy can only be extended)")
    return Finding(check, "warning", f"{where}: {_policy_text(policy)}: no retention in effect",
                   "set a time-based retention policy and lock it")


def container_immutability_finding(flags: ContainerFlags, kind: str, arm: ArmAccount | Failure | str) -> Finding:
    """Whether a backup (or records) container's blobs can be deleted by whoever holds delete rights.

    RBAC cannot stop the app's own identity: with retention on it may delete
    backups, so a compromised app could too. Only a locked time-based policy
    (or a legal hold) stops it.
    """
    check = f"{kind} container {flags.name}: immutability"
    listed = arm.containers.get(flags.name) if isinstance(arm, ArmAccount) else None
    if listed is not None:  # either plane reporting a hold or a policy counts
        flags = union(flags, listed.flags)
    if flags.has_legal_hold:
        return Finding(check, "ok", "legal hold: nothing in it can be deleted or overwritten until every hold is "
                       "cleared (retention reports its items as blocked)")
    if not (flags.has_immutability_policy or flags.version_level):
        return Finding(check, "warning", "no immutability policy and no legal hold: whoever may delete blobs "
                       "(the app's identity, once retention runs) can erase these backups",
                       "set a time-based immutability policy on the container and lock it "
                       "(see README, Ransomware posture)")
    if not isinstance(arm, ArmAccount):
        flag = "version-level immutability" if flags.version_level else "an immutability policy"
        return _unread(check, arm, f"the container has {flag} (data plane); its retention and lock state")
    own = listed.policy if listed is not None else None
    if own is not None and own.in_effect:
        return _policy_finding(check, own, "container policy")
    if flags.version_level and arm.account_policy is not None:
        return _policy_finding(check, arm.account_policy, "account default policy (version-level)")
    return Finding(check, "warning", "immutability is reported but no policy with retention is in effect: "
                   "backups are written without retention",
                   "set a time-based policy on the container (or an account default) and lock it")


def union(data_plane: ContainerFlags, management: ContainerFlags) -> ContainerFlags:
    """What either plane says: a hold or policy seen by one of them is there (Azurite reports none)."""
    return ContainerFlags(
        data_plane.name, data_plane.public_access or management.public_access,
        data_plane.has_immutability_policy or management.has_immutability_policy,
        data_plane.has_legal_hold or management.has_legal_hold, data_plane.version_level or management.version_level)


def public_containers_finding(containers: Sequence[ContainerFlags]) -> Finding:
    """A backup container readable anonymously leaks every version of the lake."""
    public = [f"{c.name} ({c.public_access})" for c in containers if c.public_access]
    if public:
        return Finding("backup containers: public access level", "problem", f"public: {', '.join(public)}",
                       "set their public access level to private, and allowBlobPublicAccess to false")
    return Finding("backup containers: public access level", "ok", f"all {len(containers)} private")


def new_containers_finding(missing: Sequence[str], arm: ArmAccount | Failure | str) -> Finding:
    """A container-level policy covers only containers that exist when it is set, and the worker creates
    a backup container on the first backup of a new source container."""
    check = "backup containers created later"
    if isinstance(arm, ArmAccount) and arm.account_policy is not None and arm.account_policy.in_effect:
        finding = _policy_finding(check, arm.account_policy, "account-level version-level immutability covers new "
                                                              "containers")
        return finding
    if not missing:
        return Finding(check, "ok", "every source container has its backup container (a new source container's "
                       "will be created on first use, without a policy)")
    names = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
    if not isinstance(arm, ArmAccount):
        return _unread(check, arm, f"source containers without a backup container yet ({names}); whether an "
                                   "account-level policy will cover them")
    if arm.hns:
        other = "version-level immutability is not available on this account (hierarchical namespace)"
    else:
        other = ("or use account-level version-level immutability (set when an account is created; it needs blob "
                 f"versioning, {'on' if arm.versioning else 'off'} here)")
    return Finding(check, "warning", f"no backup container yet for {names}: the worker will create them on first "
                   "use, without any immutability policy",
                   f"create those backup containers and set their policy before the first backup; {other}")


def copy_engine_finding(engine: str, any_immutable: bool) -> Finding:
    """With WORM, a backup must be written once with its stamp; only the blob engine does that."""
    check = "copy engine and WORM"
    if engine == "blob":
        return Finding(check, "ok", "blob engine: each backup is written once, with its provenance stamp in the copy")
    if any_immutable:
        return Finding(check, "problem", ADF_WORM, "set BACKUP_COPY_ENGINE=blob")
    return Finding(check, "warning", f"adf engine, no immutable backup container yet; {ADF_WORM}",
                   "switch to BACKUP_COPY_ENGINE=blob before adding immutability")


def scan_state_finding(flags: ContainerFlags | None) -> Finding | None:
    """The reconciliation's scan state is rewritten and removed: an immutable state container breaks HTTP scans."""
    if flags is None or not (flags.has_immutability_policy or flags.has_legal_hold or flags.version_level):
        return None
    return Finding(f"scan state container {flags.name}", "problem",
                   "has an immutability policy or legal hold: the reconciliation cannot remove its saved keys",
                   "keep SCAN_STATE_CONTAINER out of every immutability policy (or point it at another container)")


def _backup_name(container: str, suffix: str) -> str | None:
    """None for a container that can have no backup container (the scans report it as an error)."""
    try:
        return backup_container_name(container, suffix)
    except InvalidInput:
        return None


def _is_immutable(flags: ContainerFlags) -> bool:
    return flags.has_immutability_policy or flags.has_legal_hold or flags.version_level


def soft_delete_seen(data_plane: Retention | Failure, arm: ArmAccount | Failure | str) -> Retention | Failure:
    """The data plane's answer, or ARM's copy of the same setting when the data plane refused it."""
    if isinstance(data_plane, Failure) and isinstance(arm, ArmAccount) and arm.blob_soft_delete is not None:
        return arm.blob_soft_delete
    return data_plane


def posture_findings(seen: Observations) -> PostureReport:
    """Every finding, in the order an operator would fix them."""
    settings = seen.settings
    findings = [distinct_accounts_finding(settings)]
    roles: tuple[Role, Role] = ("source", "backup")
    findings += [blob_soft_delete_finding(role, soft_delete_seen(seen.soft_delete[role], seen.arm[role]))
                 for role in roles]
    findings += [container_soft_delete_finding(role, seen.arm[role]) for role in roles]
    findings += [public_access_finding(role, seen.arm[role]) for role in roles]
    containers = seen.backup_containers
    if isinstance(containers, Failure):
        findings.append(_unread("backup containers", containers, "the backup account's container listing",
                                plane="data"))
        return PostureReport(findings)
    suffix = settings.backup_container_suffix
    backups = [c for c in containers if c.name.endswith(suffix) and c.name != settings.scan_state_container]
    by_name = {c.name: c for c in containers}
    records = by_name.get(settings.records_container)
    findings += [container_immutability_finding(c, "backup", seen.arm["backup"]) for c in backups]
    if records is not None:
        findings.append(container_immutability_finding(records, "records", seen.arm["backup"]))
    findings.append(public_containers_finding(backups + ([records] if records else [])))
    if isinstance(seen.source_containers, Failure):
        findings.append(_unread("backup containers created later", seen.source_containers,
                                "the source account's container listing", plane="data"))
    else:
        wanted = {name: _backup_name(name, suffix) for name in seen.source_containers if not settings.excludes(name)}
        missing = [name for name, backup in wanted.items() if backup is not None and backup not in by_name]
        findings.append(new_containers_finding(missing, seen.arm["backup"]))
    findings.append(copy_engine_finding(settings.copy_engine, any(_is_immutable(c) for c in backups)))
    state = scan_state_finding(by_name.get(settings.scan_state_container))
    if state is not None:
        findings.append(state)
    return PostureReport(findings)


# -- probes (thin I/O) ----------------------------------------------------------------------------

def _attempt(step: Callable[[], T]) -> T | Failure:
    """One read; a typed SDK failure (refused, missing, unreachable, no credential) becomes a `Failure`."""
    try:
        return step()
    except (*TYPED_FAILURES, ClientAuthenticationError) as exc:
        return failure_of(exc)


def _soft_delete(target: StorageTarget) -> Retention:
    policy = blob_service(target).get_service_properties()["delete_retention_policy"]
    return Retention(bool(policy.enabled), policy.days)


def _container_flags(target: StorageTarget) -> list[ContainerFlags]:
    return [ContainerFlags(c.name, c.public_access or None, bool(c.has_immutability_policy), bool(c.has_legal_hold),
                           bool(c.immutable_storage_with_versioning_enabled))
            for c in blob_service(target).list_containers()]


def _arm_account(management: ManagementSettings, group: str, name: str, *, containers: bool) -> ArmAccount:
    client = storage_management_client(management)
    account = client.storage_accounts.get_properties(group, name).properties
    service = client.blob_services.get_service_properties(group, name)
    deleted = service.container_delete_retention_policy
    blobs = service.delete_retention_policy
    immutable = account.immutable_storage_with_versioning
    listed: dict[str, ArmContainer] = {}
    if containers:
        for item in client.blob_containers.list(group, name):
            props = item.properties
            policy = props.immutability_policy if props is not None else None
            versioned = props.immutable_storage_with_versioning if props is not None else None
            public = str(getattr(props.public_access, "value", props.public_access) or "") if props else ""
            has_policy = bool(props and props.has_immutability_policy)
            if has_policy and (policy is None or policy.properties is None):
                # A listing without the policy's details: one request for this container's policy.
                policy = client.blob_containers.get_immutability_policy(group, name, item.name)
            listed[item.name] = ArmContainer(
                ContainerFlags(item.name, public.lower() if public.lower() not in ("", "none") else None,
                               has_policy, bool(props and props.has_legal_hold), bool(versioned and versioned.enabled)),
                policy_of(policy.properties if policy is not None else None))
    return ArmAccount(
        allow_blob_public_access=account.allow_blob_public_access, hns=bool(account.is_hns_enabled),
        versioning=bool(service.is_versioning_enabled),
        container_soft_delete=Retention(bool(deleted and deleted.enabled), deleted.days if deleted else None),
        blob_soft_delete=Retention(bool(blobs.enabled), blobs.days) if blobs is not None else None,
        account_policy=policy_of(immutable.immutability_policy) if immutable and immutable.enabled else None,
        containers=listed)


def _arm_for(settings: Settings, role: Role) -> ArmAccount | Failure | str:
    where = arm_location(settings, role)
    if isinstance(where, str):
        return where
    group, name = where
    return _attempt(lambda: _arm_account(settings.management, group, name, containers=role == "backup"))


def observe(settings: Settings) -> Observations:
    """Read everything the decisions need; nothing here raises for a refused or failed read."""
    return Observations(
        settings=settings,
        soft_delete={"source": _attempt(lambda: _soft_delete(settings.source)),
                     "backup": _attempt(lambda: _soft_delete(settings.backup))},
        arm={"source": _arm_for(settings, "source"), "backup": _arm_for(settings, "backup")},
        backup_containers=_attempt(lambda: _container_flags(settings.backup)),
        source_containers=_attempt(lambda: lake_container_names(blob_service(settings.source))),
    )


def run_posture(settings: Settings) -> PostureReport:
    return posture_findings(observe(settings))


def format_posture(report: PostureReport) -> str:
    """One line per finding, its recommendation indented below."""
    width = max(len(f.check) for f in report.findings)
    lines = []
    for f in report.findings:
        lines.append(f"{f.status:<8} {f.check:<{width}}  {f.found}")
        if f.recommendation:
            lines.append(f"{'':<8} {'':<{width}}  do: {f.recommendation}")
    lines.append("")
    lines.append(f"posture: {report.status}")
    return "\n".join(lines)
