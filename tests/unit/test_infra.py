"""Offline checks of the infrastructure as code (infra/*.bicep, azure.yaml) against the app.

Why: Azure is unreachable here and the Bicep compiler cannot be installed, so a template that
names a role by the wrong GUID, forgets an app setting the code reads, lets an account accept
shared keys, or passes a module a parameter it does not declare would only fail at `azd up`
(or worse, deploy and fail at the first backup). Every .bicep file is parsed with a real parser
(pycep-parser: syntax only, no types) and the tests assert on its syntax tree, against the
sources of truth: settings.py (the settings the code reads), the function.json bindings, the
worker's ADF parameters, host.json, the ADF files under adf/ and README.md's role table.

What this cannot check (see README "Deploying to Azure"): property names and API versions
(no type check), what ARM evaluates at deployment (names, listKeys, outputs), and whether the
roles suffice at run time.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any, Iterator

import pycep  # pycep-parser, in requirements-dev.txt: a missing parser fails here rather than skipping the checks
import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
ADF_DIR = ROOT / "adf"
README = ROOT / "README.md"
RECONCILIATION_PIPELINE = ADF_DIR / "pipeline" / "ReconciliationLoopPipeline.json"

# Azure built-in role definition IDs (Microsoft's "Azure built-in roles" page): the same in every
# tenant. Listed here independently of infra/roles.json so a typo there is caught.
BUILTIN_ROLES = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Queue Data Message Sender": "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a",
    "Storage Queue Data Message Processor": "8a0f0c08-91a1-4084-bc3d-661d67233fed",
    "Storage Queue Data Reader": "19e7f393-937e-4f77-808e-94535e297925",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Data Factory Contributor": "673868aa-7521-48a0-acc6-0f60742d39f5",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Reader": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
}

# How the README's role table names principals and scopes, by the Bicep symbol that holds them, and
# the principalType each principal's assignments declare (a literal, or the parameter that holds it).
PRINCIPALS = {"functionPrincipalId": ("function app", "ServicePrincipal"),
              "factoryPrincipalId": ("data factory", "ServicePrincipal"),
              "operatorPrincipalId": ("operators", "operatorPrincipalType")}
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"
SCOPES = {
    "sourceAccount": ("source account", "Microsoft.Storage/storageAccounts"),
    "backupAccount": ("backup account", "Microsoft.Storage/storageAccounts"),
    "hostAccount": ("host storage account", "Microsoft.Storage/storageAccounts"),
    "deploymentContainer": ("deployment container", CONTAINER),
    "recordsContainer": ("records container of the backup account", CONTAINER),
    "requestQueue": ("request queue", QUEUE),
    "poisonQueue": ("poison queue", QUEUE),
    "factory": ("data factory", "Microsoft.DataFactory/factories"),
    "appInsights": ("Application Insights", "Microsoft.Insights/components"),
}

# Settings settings.py reads that the templates leave unset on purpose (the default applies, or
# they are the key/connection-string alternatives to the identities the templates use). Each must
# be documented in README.md's Settings table.
OPTIONAL_SETTINGS = {
    "SOURCE_STORAGE_CONNECTION_STRING": "keys/SAS/Azurite alternative to the account name + identity",
    "BACKUP_STORAGE_CONNECTION_STRING": "same",
    "QUEUE_STORAGE_CONNECTION_STRING": "same",
    "par_storage_account_key_queue": "a key for the queue account; the identity is used instead",
    "AzureWebJobsStorage": "the key-based host connection; the templates use AzureWebJobsStorage__* instead",
    "SCAN_WRITE_CONCURRENCY": "default 16",
    "HTTP_TIME_BUDGET_SECONDS": "default 200 (Azure ends HTTP calls at 230 s)",
    "RECONCILE_AHEAD_MAX_KEYS": "default 1,000,000",
    "STORAGE_READ_TIMEOUT_SECONDS": "default 20",
    "CONTINUATION_TOKEN_KEY": "derived from the source account settings",
    "SCAN_STATE_CONTAINER": "default reconcile-state",
    "SCAN_LIST_PAGE_SIZE": "default 5000, the service maximum",
    "RECORDS_CONTAINER": "default backup-records",
    "BACKUP_ACCESS_TIER": "default: the backup account's default tier",
    "EXCLUDED_CONTAINERS": "default: none excluded",
    "RESTORE_STORAGE_CONNECTION_STRING": "only for restore --to-account with keys or Azurite",
    "BLOB_LEASE_SECONDS": "default 60, the longest finite blob lease",
    "ADF_POLL_SECONDS": "default 10",
    "RETENTION_SNAPSHOTS": "default: snapshots are not pruned",
    "RETENTION_BACKUPS": "default: backups are not pruned",
    "RETENTION_MAX_REMOVE_PERCENT": "default 50",
    "PRICES_PER_GB_MONTH": "default: LRS East US 2 list prices",
    "AzureWebJobsStorage__accountName": "the system-identity form; the templates use the user-assigned form",
    "STORAGE_SUBSCRIPTION_ID": "posture's management-plane reads; default par_subscription_id",
    "STORAGE_RESOURCE_GROUP": "the backup account's resource group for posture; default par_resource_group_name",
    "SOURCE_RESOURCE_GROUP": "the source account's resource group for posture; default STORAGE_RESOURCE_GROUP",
}
# Settings the templates set that settings.py does not read: read by the Functions host, the
# Azure SDK's DefaultAzureCredential or the Functions Python worker.
HOST_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AZURE_CLIENT_ID",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "METRICS_SCHEDULE",  # %METRICS_SCHEDULE% in TimerProtectionGauges/function.json
    "RETENTION_SCHEDULE",  # %RETENTION_SCHEDULE% in TimerRetention/function.json
}
# App settings Flex Consumption ignores or rejects (its runtime comes from functionAppConfig), and
# the key-based host connection that would defeat allowSharedKeyAccess: false.
FLEX_IGNORED_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_USE_PLACEHOLDER_DOTNETISOLATED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "AzureWebJobsStorage",
}


# ---------------------------------------------------------------- parsing and AST helpers


def parse(path: Path) -> dict[str, Any]:
    return pycep.BicepParser().parse(file_path=path)


@pytest.fixture(scope="module")
def bicep() -> dict[str, dict[str, Any]]:
    """Every .bicep file under infra/, parsed: {file name: syntax tree}."""
    files = sorted(INFRA.glob("*.bicep"))
    assert files, "infra/ has no .bicep file"
    return {path.name: parse(path) for path in files}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, whether it is plain, conditional (`if`) or a loop."""
    config = resource["config"]
    while isinstance(config, dict) and "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def condition(resource: dict[str, Any]) -> Any:
    config = resource["config"]
    return config.get("condition") if isinstance(config, dict) and "config" in config else None


def resources(bicep: dict[str, dict[str, Any]], type_: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for file, tree in bicep.items():
        for symbol, resource in tree.get("resources", {}).items():
            if type_ is None or resource["type"] == type_:
                yield file, symbol, resource


def created(bicep: dict[str, dict[str, Any]], type_: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [item for item in resources(bicep, type_) if not item[2]["existing"]]


def one_created(bicep: dict[str, dict[str, Any]], type_: str) -> tuple[str, str, dict[str, Any]]:
    found = created(bicep, type_)
    assert len(found) == 1, f"expected one {type_}, found {[(f, s) for f, s, _ in found]}"
    return found[0]


def op(node: Any, kind: str) -> dict[str, Any] | None:
    if isinstance(node, dict) and isinstance(node.get("operator"), dict) and node["operator"]["type"] == kind:
        return node["operator"]["operands"]
    return None


def fn(node: Any, kind: str) -> dict[str, Any] | None:
    if isinstance(node, dict) and isinstance(node.get("function"), dict) and node["function"]["type"] == kind:
        return node["function"]["parameters"]
    return None


def dotted(node: Any) -> str | None:
    """`a.b.c` for a chain of property accessors (or a bare identifier), else None."""
    if isinstance(node, str):
        return node
    operands = op(node, "property_accessor")
    if operands is None:
        return None
    left, right = dotted(operands["operand_1"]), dotted(operands["operand_2"])
    return f"{left}.{right}" if left and right else None


def render_with(node: Any, identifiers: set[str]) -> str:
    """A condition as Bicep text (pycep keeps no source text): `copyEngine == 'adf'`.

    pycep gives identifiers and string literals alike as str, so the caller passes the names
    that are identifiers (parameters) and everything else renders quoted.
    """
    if node is None:
        return "always"
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, str):
        return node if node in identifiers else f"'{node}'"
    symbols = {"equals": "==", "not_equals": "!=", "and": "&&", "or": "||", "greater_than": ">"}
    kind = node["operator"]["type"]
    operands = node["operator"]["operands"]
    if kind == "not":
        return f"!{render_with(operands['bool_value'], identifiers)}"
    if kind in symbols:
        return f"{render_with(operands['operand_1'], identifiers)} {symbols[kind]} {render_with(operands['operand_2'], identifiers)}"
    raise AssertionError(f"cannot render condition {node}")


def function_linked_service_name(bicep: dict[str, dict[str, Any]]) -> str:
    """The Azure Function linked service's name, which main.bicep passes to datafactory.bicep."""
    name = body(bicep["main.bicep"]["modules"]["reconciliation"])["params"]["functionLinkedServiceName"]
    assert body(bicep["reconciliation.bicep"]["resources"]["functionLinkedService"])["name"] == "functionLinkedServiceName"
    return name


def accessors(node: Any) -> Iterator[str]:
    """Every `a.b.c` reference anywhere under an AST node (outermost chains)."""
    name = dotted(node) if isinstance(node, dict) else None
    if name:
        yield name
    elif isinstance(node, dict):
        for value in node.values():
            yield from accessors(value)
    elif isinstance(node, list):
        for value in node:
            yield from accessors(value)


def references(node: Any) -> Iterator[dict[str, Any]]:
    """Every {"referenceName": ..., "type": ...} object in an ADF JSON document."""
    if isinstance(node, dict):
        if "referenceName" in node and "type" in node:
            yield node
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def load_json_paths(node: Any) -> Iterator[str]:
    """Every loadJsonContent('<path>') anywhere under an AST node."""
    if isinstance(node, dict):
        params = fn(node, "load_json_content")
        if params is not None:
            yield params["file_path"]
        for value in node.values():
            yield from load_json_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from load_json_paths(value)


def variable(tree: dict[str, Any], name: str) -> Any:
    return tree["variables"][name]["value"]


def settings_object(tree: dict[str, Any], node: Any) -> dict[str, Any]:
    """The app settings an expression yields, as one dict: object literals, variables holding
    them, union(...) and both branches of `cond ? a : b` (every setting that can be set)."""
    if isinstance(node, str) and node in tree.get("variables", {}):
        return settings_object(tree, variable(tree, node))
    if isinstance(node, dict) and "function" not in node and "operator" not in node:
        return dict(node)
    union = fn(node, "union")
    if union is not None:
        merged: dict[str, Any] = {}
        for arg in union.values():
            if arg is not None:
                merged.update(settings_object(tree, arg))
        return merged
    conditional = op(node, "conditional")
    if conditional is not None:
        return {**settings_object(tree, conditional["true_value"]), **settings_object(tree, conditional["false_value"])}
    raise AssertionError(f"app settings expression not understood: {node}")


@pytest.fixture(scope="module")
def app_settings(bicep: dict[str, dict[str, Any]]) -> dict[str, Any]:
    file, _, config = one_created(bicep, "Microsoft.Web/sites/config")
    assert body(config)["name"] == "appsettings"
    settings = settings_object(bicep[file], body(config)["properties"])
    assert settings, "the appsettings resource sets nothing"
    return settings


def markdown_section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README.md has no '## {heading}' section"
    return match.group(1)


def table_rows(section: str, header: list[str]) -> list[dict[str, str]]:
    """Rows of the markdown table whose header row is exactly `header`."""
    lines = section.splitlines()
    for i, line in enumerate(lines):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells == header:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                values = [cell.strip() for cell in row.strip().strip("|").split("|")]
                rows.append(dict(zip(header, values)))
            return rows
    raise AssertionError(f"no table with header {header}")


def strip_md(cell: str) -> str:
    return cell.replace("*", "").replace("`", "").strip()


# ---------------------------------------------------------------- the files parse and link up


def test_every_bicep_file_parses_and_main_wires_the_modules(bicep: dict[str, dict[str, Any]]) -> None:
    main = bicep["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    modules = main["modules"]
    assert {m["detail"]["path"] for m in modules.values()} == set(bicep) - {"main.bicep"}, \
        "every module file is used by main.bicep, and every module main.bicep uses exists"
    for symbol, module in modules.items():
        assert module["type"] == "local", f"{symbol}: only local modules (no registry at build time)"
        target = bicep[module["detail"]["path"]]
        declared = target.get("parameters", {})
        passed = set(body(module)["params"])
        assert passed <= set(declared), f"{symbol} passes undeclared params {passed - set(declared)}"
        required = {name for name, spec in declared.items() if "default" not in spec}
        assert required <= passed, f"{symbol} leaves required params unset: {required - passed}"
    # An output read from a module must be one it declares.
    outputs_read = {tuple(ref.split(".")[:3:2]) for ref in accessors(main) if ".outputs." in ref}
    assert outputs_read
    for symbol, output in outputs_read:
        target = bicep[modules[symbol]["detail"]["path"]]
        assert output in target.get("outputs", {}), f"main.bicep reads {symbol}.outputs.{output}, which is not declared"


def test_every_loaded_json_file_exists(bicep: dict[str, dict[str, Any]]) -> None:
    loaded = [(file, path) for file, tree in bicep.items() for path in load_json_paths(tree)]
    assert {path for _, path in loaded} >= {"roles.json", "../adf/pipeline/BlobBackupCopyPipeline.json"}
    for file, path in loaded:
        target = (INFRA / path).resolve()
        if target == RECONCILIATION_PIPELINE.resolve() and not target.is_file():
            continue  # added on another branch; test_reconciliation_loop_pipeline_is_deployed says so
        assert target.is_file(), f"{file} loads {path}, which does not exist"
        json.loads(target.read_text(encoding="utf-8"))


def test_no_resource_or_module_comes_from_a_registry() -> None:
    for path in INFRA.glob("*.bicep"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"module\s+\w+\s+'(br|ts)[:/]", text), f"{path.name} pulls a module from a registry"


def test_parameters_file_matches_main(bicep: dict[str, dict[str, Any]]) -> None:
    declared = bicep["main.bicep"]["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= set(declared), f"main.parameters.json sets unknown params {set(given) - set(declared)}"
    required = {name for name, spec in declared.items() if "default" not in spec}
    assert required <= set(given), f"azd cannot prompt-free provision: {required - set(given)} unset"
    assert given["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert given["location"]["value"] == "${AZURE_LOCATION}"


def test_azure_yaml_deploys_the_root_as_a_python_function_to_the_tagged_app(bicep: dict[str, dict[str, Any]]) -> None:
    lines = [line for line in (ROOT / "azure.yaml").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    # A minimal YAML mapping reader (no PyYAML here): path of keys -> scalar.
    values: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if value.strip():
            values[".".join(k for _, k in stack)] = value.strip()
    assert values["services.api.project"] == "."
    assert values["services.api.language"] == "python"
    assert values["services.api.host"] == "function"
    assert values["infra.provider"] == "bicep"
    assert (ROOT / values["infra.path"] / f"{values.get('infra.module', 'main')}.bicep").is_file()
    _, _, site = one_created(bicep, "Microsoft.Web/sites")
    tags = fn(body(site)["tags"], "union")
    # pycep keeps the quotes of a quoted object key.
    assert tags is not None and {k.strip("'"): v for k, v in tags["arg_2"].items()} == {"azd-service-name": "api"}, \
        "azd finds the app by this tag"


# ---------------------------------------------------------------- the resources


def test_flex_consumption_app_runs_python_from_its_deployment_container(bicep: dict[str, dict[str, Any]]) -> None:
    _, _, plan = one_created(bicep, "Microsoft.Web/serverfarms")
    assert body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert body(plan)["properties"]["reserved"] is True  # Linux
    file, _, site = one_created(bicep, "Microsoft.Web/sites")
    config = body(site)
    assert config["kind"] == "functionapp,linux"
    assert config["identity"]["type"] == "UserAssigned"
    props = config["properties"]
    assert props["httpsOnly"] is True
    assert "appSettings" not in props.get("siteConfig", {}), "settings live in one place: the appsettings resource"
    assert "linuxFxVersion" not in props.get("siteConfig", {}), "Flex takes the runtime from functionAppConfig"
    app_config = props["functionAppConfig"]
    assert app_config["runtime"]["name"] == "python"
    versions = next(d["argument"] for d in bicep[file]["parameters"][app_config["runtime"]["version"]]["decorators"]
                    if d["type"] == "allowed")
    assert set(versions) <= {"3.11", "3.12", "3.13"}, "Flex's Python versions the code supports (3.11+)"
    storage = app_config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert storage["authentication"]["userAssignedIdentityResourceId"] == "identityId"
    assert "${deploymentContainerName}" in storage["value"]
    assert set(app_config["scaleAndConcurrency"]) >= {"maximumInstanceCount", "instanceMemoryMB"}
    one_created(bicep, "Microsoft.ManagedIdentity/userAssignedIdentities")


def test_accounts_refuse_shared_keys_and_anonymous_reads(bicep: dict[str, dict[str, Any]]) -> None:
    accounts = created(bicep, "Microsoft.Storage/storageAccounts")
    assert {symbol for _, symbol, _ in accounts} == {"hostAccount", "backupAccount"}, \
        "the deployment creates the host and backup accounts, never the source lake"
    for _, symbol, account in accounts:
        props = body(account)["properties"]
        assert props["allowSharedKeyAccess"] is False, symbol
        assert props["allowBlobPublicAccess"] is False, symbol
        assert props["minimumTlsVersion"] == "TLS1_2", symbol
        assert props["supportsHttpsTrafficOnly"] is True, symbol
    for _, symbol, container in created(bicep, "Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert body(container)["properties"]["publicAccess"] == "None", symbol
    sources = [s for _, s, r in resources(bicep, "Microsoft.Storage/storageAccounts") if s == "sourceAccount"]
    assert sources and all(r["existing"] for _, s, r in resources(bicep, "Microsoft.Storage/storageAccounts")
                           if s == "sourceAccount")


def test_backup_account_soft_deletes_and_can_be_immutable(bicep: dict[str, dict[str, Any]]) -> None:
    file, _, service = next(item for item in created(bicep, "Microsoft.Storage/storageAccounts/blobServices")
                            if body(item[2])["parent"] == "backupAccount")
    props = body(service)["properties"]
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):
        assert props[policy]["enabled"] is True, policy
        assert props[policy]["days"] == "softDeleteDays", policy
    _, _, immutability = one_created(bicep, "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies")
    assert body(immutability)["properties"]["immutabilityPeriodSinceCreationInDays"] == "immutabilityDays"
    loop = immutability["config"]["loop_type"]["detail"]
    # The policy applies only when asked for and only with the blob engine (the adf engine sets
    # metadata after the copy, which immutability forbids).
    selector = op(variable(bicep[file], loop["array_name"]), "conditional")
    assert selector is not None and selector["true_value"] == "backupContainerNames" and selector["false_value"] == []
    assert render_with(selector["condition"], {"immutabilityDays", "copyEngine"}) == \
        "immutabilityDays > 0 && copyEngine == 'blob'"
    main_params = bicep["main.bicep"]["parameters"]
    assert main_params["immutabilityDays"]["default"] == 0, "immutability is opt-in"


def test_queue_and_poison_queue_are_on_the_host_account(bicep: dict[str, dict[str, Any]], app_settings: dict[str, Any]) -> None:
    tree = bicep["storage.bicep"]
    queues = {body(r)["name"]: body(r)["parent"] for _, _, r in created(bicep, "Microsoft.Storage/storageAccounts/queueServices/queues")}
    assert queues == {"queueName": "hostQueueService", "${queueName}-poison": "hostQueueService"}
    assert body(tree["resources"]["hostQueueService"])["parent"] == "hostAccount"
    outputs = tree["outputs"]
    assert dotted(outputs["hostAccountName"]["value"]) == "hostAccount.name"
    assert dotted(outputs["hostQueueEndpoint"]["value"]) == "hostAccount.properties.primaryEndpoints.queue"
    assert dotted(outputs["queueName"]["value"]) == "requestQueue.name"
    # The trigger listens where the app sends (settings.py refuses a queue account that is not
    # the trigger's): both settings come from the same account's outputs in main.bicep.
    assert app_settings["par_storage_account_name_queue"] == "hostAccountName"
    assert app_settings["AzureWebJobsStorage__queueServiceUri"] == "hostQueueEndpoint"
    assert app_settings["par_queue_name"] == "queueName"
    params = body(bicep["main.bicep"]["modules"]["function"])["params"]
    assert dotted(params["hostAccountName"]) == "storage.outputs.hostAccountName"
    assert dotted(params["hostQueueEndpoint"]) == "storage.outputs.hostQueueEndpoint"
    assert dotted(params["queueName"]) == "storage.outputs.queueName"
    assert bicep["main.bicep"]["parameters"]["queueName"]["default"] == "queuesnapshotmetadata", \
        "an upgraded deployment keeps the original app's queue"
    assert bicep["main.bicep"]["parameters"]["backupContainerSuffix"]["default"] == "bak"


def test_application_insights_takes_only_identity_based_ingestion(bicep: dict[str, dict[str, Any]], app_settings: dict[str, Any]) -> None:
    _, _, components = one_created(bicep, "Microsoft.Insights/components")
    props = body(components)["properties"]
    assert props["DisableLocalAuth"] is True
    assert dotted(props["WorkspaceResourceId"]) == "logAnalytics.id"
    one_created(bicep, "Microsoft.OperationalInsights/workspaces")
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"


def test_data_factory_is_defined_by_the_files_under_adf(bicep: dict[str, dict[str, Any]]) -> None:
    _, _, factory = one_created(bicep, "Microsoft.DataFactory/factories")
    assert body(factory)["identity"]["type"] == "SystemAssigned"
    # ADF resources are children of the one factory (created, or referenced as existing).
    for file, symbol, resource in resources(bicep):
        if resource["type"].startswith("Microsoft.DataFactory/factories/"):
            parent = bicep[file]["resources"][body(resource)["parent"]]
            assert parent["type"] == "Microsoft.DataFactory/factories", symbol
    loaded = {(file, name): spec["value"] for file, tree in bicep.items() if file != "main.bicep"
              for name, spec in tree.get("variables", {}).items() if fn(spec["value"], "load_json_content")}
    files = {name: fn(value, "load_json_content")["file_path"] for (_, name), value in loaded.items()
             if fn(value, "load_json_content")["file_path"] != "roles.json"}
    shipped = {f"../adf/{p.relative_to(ADF_DIR).as_posix()}" for p in ADF_DIR.glob("*/*.json")}
    expected = shipped | {"../adf/pipeline/ReconciliationLoopPipeline.json"}
    assert set(files.values()) == expected, "every ADF file is deployed from adf/, and nothing else"
    by_type = {"linkedservices": "linkedService", "datasets": "dataset", "pipelines": "pipeline"}
    deployed_names: dict[str, set[str]] = {kind: set() for kind in by_type}
    for _, symbol, resource in created(bicep, "Microsoft.DataFactory/factories/linkedservices") + \
            created(bicep, "Microsoft.DataFactory/factories/datasets") + created(bicep, "Microsoft.DataFactory/factories/pipelines"):
        kind = resource["type"].rsplit("/", 1)[1]
        config = body(resource)
        name = dotted(config["name"])
        if name and name.endswith(".name") and name[:-5] in files:
            source = files[name[:-5]]
            assert source.startswith(f"../adf/{by_type[kind]}/"), f"{symbol} loads a {kind} from {source}"
            # The whole definition comes from the file (linked services only swap in the endpoint).
            props = config["properties"]
            if kind == "linkedservices":
                union = fn(props, "union")
                assert union and dotted(union["arg_1"]) == f"{name[:-5]}.properties"
                endpoint = union["arg_2"]["typeProperties"]
                assert set(endpoint["function"]["parameters"]["arg_2"]) == {"serviceEndpoint"}
            else:
                assert dotted(props) == f"{name[:-5]}.properties"
            path = (INFRA / source).resolve()
            if path.is_file():
                deployed_names[kind].add(json.loads(path.read_text(encoding="utf-8"))["name"])
            else:
                assert path == RECONCILIATION_PIPELINE.resolve(), f"{source} does not exist"
        else:
            assert kind == "linkedservices" and config["properties"]["type"] == "AzureFunction", \
                f"{symbol}: only the Azure Function linked service is defined in Bicep"
            deployed_names[kind].add(function_linked_service_name(bicep))
            # ... under the name, and with the description, of its file under adf/ (the manual-import template)
            shipped_function = json.loads((ADF_DIR / "linkedService" / "BackupFunctionApp.json").read_text(encoding="utf-8"))
            assert function_linked_service_name(bicep) == shipped_function["name"]
            assert dotted(config["properties"]["description"]).endswith(".properties.description")
    # Every reference the shipped files make is to a resource this factory gets.
    kinds = {"LinkedServiceReference": "linkedservices", "DatasetReference": "datasets"}
    for path in ADF_DIR.glob("*/*.json"):
        for ref in references(json.loads(path.read_text(encoding="utf-8"))):
            if ref["type"] in kinds:
                assert ref["referenceName"] in deployed_names[kinds[ref["type"]]], \
                    f"{path.name} references {ref['type']} {ref['referenceName']!r}, which the Bicep does not deploy"


def test_reconciliation_loop_pipeline_is_deployed(bicep: dict[str, dict[str, Any]]) -> None:
    if not RECONCILIATION_PIPELINE.is_file():
        pytest.skip(f"{RECONCILIATION_PIPELINE.relative_to(ROOT)} is added on another branch; "
                    "infra/datafactory.bicep already loads it and this test checks it once merged")
    pipeline = json.loads(RECONCILIATION_PIPELINE.read_text(encoding="utf-8"))
    text = json.dumps(pipeline)
    assert '"type": "Until"' in text, "the reconciliation pipeline loops with an Until activity"
    assert "HttpSnapshotIncBackupStorageReconciliation" in text
    linked_services = {function_linked_service_name(bicep)} | {
        json.loads(p.read_text(encoding="utf-8"))["name"] for p in (ADF_DIR / "linkedService").glob("*.json")}
    used = {ref["referenceName"] for ref in references(pipeline) if ref["type"] == "LinkedServiceReference"}
    assert used, "the Azure Function activity names its linked service"
    assert used <= linked_services, f"the reconciliation pipeline references linked services {used - linked_services}, which the Bicep does not deploy"


def test_copy_pipeline_parameters_are_what_the_worker_sends(bicep: dict[str, dict[str, Any]], app_settings: dict[str, Any]) -> None:
    (copiers,) = [p for p in (ROOT / "shared_code").rglob("copiers.py")]
    sent: set[str] | None = None
    for node in ast.walk(ast.parse(copiers.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == "parameters":
            (ret,) = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
            assert isinstance(ret.value, ast.Dict)
            sent = {k.value for k in ret.value.keys if isinstance(k, ast.Constant)}
    assert sent, "the ADF copier's parameters() was not found"
    main = bicep["main.bicep"]
    copy_name = variable(main, "copyPipelineName")
    path = fn(op(copy_name, "property_accessor")["operand_1"], "load_json_content")["file_path"]
    pipeline = json.loads((INFRA / path).read_text(encoding="utf-8"))
    assert set(pipeline["properties"]["parameters"]) == sent
    # The worker starts runs of that pipeline, in that factory.
    assert body(main["modules"]["function"])["params"]["copyPipelineName"] == "copyPipelineName"
    assert app_settings["par_adfv2_pipeline_name"] == "copyPipelineName"
    assert app_settings["par_adfv2_name"] == "factoryName"
    assert body(main["modules"]["function"])["params"]["factoryName"] == body(main["modules"]["dataFactory"])["params"]["name"]


# ---------------------------------------------------------------- app settings


class RecordingEnv(dict):  # type: ignore[type-arg]
    """An environment that notes every setting name load_settings asks for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(name)
        return super().get(name, default)


def settings_read_by_the_code() -> set[str]:
    """The settings settings.py declares (SETTINGS, TELEMETRY_SETTINGS): its one reader refuses any other name."""
    from shared_code.core.settings import SETTINGS, TELEMETRY_SETTINGS

    return set(SETTINGS) | set(TELEMETRY_SETTINGS)


def test_the_declared_settings_are_exactly_what_load_settings_reads() -> None:
    """SETTINGS is the list the comparisons below trust: nothing declared goes unread, nothing read is undeclared."""
    from shared_code.core.settings import _get, load_settings

    # Account names (not connection strings), no AzureWebJobsStorage and the ADF group: every fallback is asked for.
    env = RecordingEnv({"par_storage_account_name_source": "lake", "par_storage_account_name_backup": "vault",
                        "par_storage_account_name_queue": "lake", "par_subscription_id": "s",
                        "par_resource_group_name": "rg", "par_adfv2_name": "f", "par_adfv2_pipeline_name": "p"})
    from shared_code.core.settings import SETTINGS, TELEMETRY_SETTINGS, load_telemetry_settings

    load_settings(env, host_json=None)
    assert env.asked == set(SETTINGS)
    telemetry = RecordingEnv({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"})
    load_telemetry_settings(telemetry)
    assert telemetry.asked == set(TELEMETRY_SETTINGS)
    with pytest.raises(KeyError, match="not declared"):
        _get({}, "METRICS_SCHEDULE_TYPO")


def test_every_setting_the_code_reads_is_set_or_documented_optional(app_settings: dict[str, Any]) -> None:
    read = settings_read_by_the_code()
    assert {"par_queue_name", "par_storage_account_name_source", "par_adfv2_pipeline_name", "USING_BLOB_LEASE"} <= read
    set_by_bicep = set(app_settings)
    assert read - set_by_bicep - set(OPTIONAL_SETTINGS) == set(), "read by the code, neither set nor listed optional"
    assert set(OPTIONAL_SETTINGS) <= read, f"listed optional but not read: {set(OPTIONAL_SETTINGS) - read}"
    assert not set(OPTIONAL_SETTINGS) & set_by_bicep, "an optional setting is set after all: drop it from the list"
    assert set_by_bicep - read - HOST_SETTINGS == set(), "the Bicep sets settings nobody reads (a typo?)"
    readme = README.read_text(encoding="utf-8")
    documented = markdown_section(readme, "Settings (app settings / environment variables)") + \
        markdown_section(readme, "Deploying to Azure")
    for name in OPTIONAL_SETTINGS:
        assert f"`{name}`" in documented, f"optional setting {name} is documented neither in README's Settings nor its Deploying section"


def test_no_setting_flex_ignores(app_settings: dict[str, Any]) -> None:
    assert not FLEX_IGNORED_SETTINGS & set(app_settings)


def test_every_binding_connection_is_identity_based(app_settings: dict[str, Any]) -> None:
    bindings = [b for path in ROOT.glob("*/function.json")
                for b in json.loads(path.read_text(encoding="utf-8"))["bindings"]]
    connections = {b["connection"]: b["type"] for b in bindings if "connection" in b}
    assert connections == {"AzureWebJobsStorage": "queueTrigger"}
    for name, kind in connections.items():
        assert name not in app_settings, f"{name} as a connection string would need keys"
        if f"{name}__accountName" in app_settings:
            continue  # system identity
        assert app_settings[f"{name}__credential"] == "managedidentity"
        assert app_settings[f"{name}__clientId"] == "identityClientId"
        service = {"queueTrigger": "queue", "blobTrigger": "blob"}[kind]
        assert f"{name}__{service}ServiceUri" in app_settings
    # The host itself needs blobs (keys, locks) on AzureWebJobsStorage too.
    assert app_settings["AzureWebJobsStorage__blobServiceUri"] == "hostBlobEndpoint"
    # The app's own clients (DefaultAzureCredential) pick the user-assigned identity by client id.
    assert app_settings["AZURE_CLIENT_ID"] == "identityClientId"
    for binding in bindings:
        for value in binding.values():
            for setting in re.findall(r"%(\w+)%", str(value)):
                assert setting in app_settings, f"binding reads %{setting}%, which is not set"


def test_copy_wait_fits_function_timeout(bicep: dict[str, dict[str, Any]], app_settings: dict[str, Any]) -> None:
    from shared_code.core.settings import COPY_TIMEOUT_MARGIN_SECONDS, timespan_seconds

    timeout = timespan_seconds(json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["functionTimeout"])
    assert timeout is not None
    spec = bicep["main.bicep"]["parameters"]["maxCopyMinutes"]
    maximum = next(d["argument"] for d in spec["decorators"] if d["type"] == "max_value")
    assert spec["default"] * 60 + COPY_TIMEOUT_MARGIN_SECONDS <= timeout
    assert maximum * 60 + COPY_TIMEOUT_MARGIN_SECONDS <= timeout, "the parameter allows a wait the host would cut off"
    fn_string = fn(app_settings["MAX_LEASE_COPY_TIME_MINUTES"], "string")
    assert fn_string is not None and fn_string["value_to_convert"] == "maxCopyMinutes"


# ---------------------------------------------------------------- roles: Bicep == README


def bicep_role_assignments(bicep: dict[str, dict[str, Any]]) -> set[tuple[str, str, str, str, str]]:
    roles = json.loads((INFRA / "roles.json").read_text(encoding="utf-8"))
    found = set()
    for file, symbol, resource in resources(bicep, "Microsoft.Authorization/roleAssignments"):
        tree = bicep[file]
        config = body(resource)
        props = config["properties"]
        principal = props["principalId"]
        assert principal in PRINCIPALS, f"{symbol}: principal {principal!r}"
        assert props["principalType"] == PRINCIPALS[principal][1], f"{symbol}: principalType {props['principalType']!r}"
        role_ref = dotted(fn(props["roleDefinitionId"], "subscription_resource_id")["resource_name_1"])
        assert fn(props["roleDefinitionId"], "subscription_resource_id")["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        assert role_ref and role_ref.startswith("roles."), f"{symbol}: role {role_ref}"
        assert fn(variable(tree, "roles"), "load_json_content")["file_path"] == "roles.json"
        role_key = role_ref.split(".", 1)[1]
        scope = config["scope"]
        scope_label, scope_type = SCOPES[scope]
        assert tree["resources"][scope]["type"] == scope_type, f"{symbol}: scope {scope} is not a {scope_type}"
        if scope_type in (CONTAINER, QUEUE):  # a child scope: `<account>/default/<name>`, of the account its label names
            account = {"recordsContainer": "backupAccountName", "requestQueue": "hostAccountName",
                       "poisonQueue": "hostAccountName", "deploymentContainer": "hostAccountName"}[scope]
            assert body(tree["resources"][scope])["name"].startswith(f"${{{account}}}/default/"), f"{symbol}: scope {scope}"
        name = fn(config["name"], "guid")
        assert name is not None, f"{symbol}: name is not guid(...)"
        assert (dotted(name["base_string"]), name["extra_string_1"], dotted(name["extra_string_2"])) == \
            (f"{scope}.id", principal, role_ref), f"{symbol}: name is not guid(scope.id, principal, role)"
        role_name = next((n for n in BUILTIN_ROLES if n.replace(" ", "") == role_key), None)
        assert role_name, f"{symbol}: {role_key} is not a known built-in role"
        assert roles[role_key] == BUILTIN_ROLES[role_name], f"roles.json: wrong GUID for {role_name}"
        when = render_with(condition(resource), set(tree.get("parameters", {})))
        if "condition" in props:  # an ABAC condition narrowing the role (see the backupDeletes test)
            abac = op(props["condition"], "conditional")
            assert abac is not None, f"{symbol}: an ABAC condition is a parameter's choice"
            when += f"; without delete unless {abac['condition']}"
        found.add((PRINCIPALS[principal][0], scope_label, role_name, roles[role_key], when))
    return found


def readme_role_table() -> set[tuple[str, str, str, str, str]]:
    security = markdown_section(README.read_text(encoding="utf-8"), "Security")
    rows = table_rows(security, ["identity", "scope", "role", "role definition ID", "when", "why"])
    assert rows
    table = set()
    for row in rows:
        assert row["why"], f"row {row} says nothing about why"
        table.add((strip_md(row["identity"]), strip_md(row["scope"]), strip_md(row["role"]),
                   strip_md(row["role definition ID"]), strip_md(row["when"])))
    return table


def test_every_role_guid_is_the_builtin_one_for_its_name() -> None:
    roles = json.loads((INFRA / "roles.json").read_text(encoding="utf-8"))
    assert roles
    for key, guid in roles.items():
        (name,) = [n for n in BUILTIN_ROLES if n.replace(" ", "") == key]
        assert guid == BUILTIN_ROLES[name], key
    for _, _, role, guid, _ in readme_role_table():
        assert BUILTIN_ROLES.get(role) == guid, f"README names {role} with {guid}"


def test_readme_role_table_and_bicep_cannot_drift(bicep: dict[str, dict[str, Any]]) -> None:
    in_bicep = bicep_role_assignments(bicep)
    in_readme = readme_role_table()
    assert in_bicep - in_readme == set(), "granted by the Bicep but not in README's role table"
    assert in_readme - in_bicep == set(), "in README's role table but not granted by the Bicep"


def test_backup_deletes_switch_is_an_abac_condition_on_the_function_role(bicep: dict[str, dict[str, Any]]) -> None:
    tree = bicep["rbac.bicep"]
    props = body(tree["resources"]["functionBackupBlob"])["properties"]
    cond = op(props["condition"], "conditional")
    assert cond is not None and cond["condition"] == "backupDeletes" and cond["true_value"] is None
    expression = variable(tree, cond["false_value"]).replace("\\'", "'")
    assert expression == "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'})))"
    version = op(props["conditionVersion"], "conditional")
    assert version is not None and version["false_value"] == "2.0"
    assert bicep["main.bicep"]["parameters"]["backupDeletes"]["default"] is True


def test_operator_roles_are_opt_in_for_a_group_and_scoped_to_what_they_touch(bicep: dict[str, dict[str, Any]]) -> None:
    """No operator role without operatorPrincipalId; a group by default; the records container and queues are the
    ones the app uses (the container the role is scoped to is RECORDS_CONTAINER's default, which the app keeps)."""
    from shared_code.core.settings import DEFAULT_RECORDS_CONTAINER

    params = bicep["main.bicep"]["parameters"]
    assert params["operatorPrincipalId"]["default"] == ""
    assert params["operatorPrincipalType"]["default"] == "Group"
    assert next(d["argument"] for d in params["operatorPrincipalType"]["decorators"] if d["type"] == "allowed") == \
        ["Group", "User", "ServicePrincipal"]
    assert params["operatorRestoreInPlace"]["default"] is False
    for module in ("access", "sourceAccess"):
        passed = body(bicep["main.bicep"]["modules"][module])["params"]
        assert passed["operatorPrincipalId"] == "operatorPrincipalId"
        assert passed["operatorPrincipalType"] == "operatorPrincipalType"
    assert body(bicep["main.bicep"]["modules"]["sourceAccess"])["params"]["operatorRestoreInPlace"] == "operatorRestoreInPlace"
    storage = bicep["storage.bicep"]
    assert storage["parameters"]["recordsContainerName"]["default"] == DEFAULT_RECORDS_CONTAINER
    assert body(storage["resources"]["recordsContainer"])["parent"] == "backupBlobService"
    access = body(bicep["main.bicep"]["modules"]["access"])["params"]
    assert dotted(access["recordsContainerName"]) == "storage.outputs.recordsContainerName"
    assert dotted(access["queueName"]) == "storage.outputs.queueName"
    rbac = bicep["rbac.bicep"]["resources"]
    assert body(rbac["requestQueue"])["name"] == "${hostAccountName}/default/${queueName}"
    assert body(rbac["poisonQueue"])["name"] == "${hostAccountName}/default/${queueName}-poison"
    operators = [(file, symbol) for file, symbol, r in resources(bicep, "Microsoft.Authorization/roleAssignments")
                 if body(r)["properties"]["principalId"] == "operatorPrincipalId"]
    assert len(operators) == 6
    for file, symbol in operators:
        when = render_with(condition(bicep[file]["resources"][symbol]), set(bicep[file]["parameters"]))
        assert when.startswith("operatorPrincipalId != ''"), f"{symbol} is granted without an operator: {when}"


# ---------------------------------------------------------------- monitoring: alerts == README == instruments


def alert_rules(bicep: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {symbol: body(resource)["properties"]
            for _, symbol, resource in created(bicep, "Microsoft.Insights/scheduledQueryRules")}


def test_three_alert_rules_watch_lag_poison_and_heartbeat_with_parameters(bicep: dict[str, dict[str, Any]]) -> None:
    from shared_code.telemetry import instruments

    rules = alert_rules(bicep)
    assert set(rules) == {"protectionLagAlert", "poisonQueueAlert", "heartbeatAlert"}
    tree = bicep["alerts.bicep"]
    for symbol, props in rules.items():
        assert props["enabled"] is True, symbol
        assert [dotted(scope) for scope in props["scopes"]] == ["appInsights.id"], symbol
        assert tree["resources"]["appInsights"]["type"] == "Microsoft.Insights/components"
        assert props["actions"] == "actions", f"{symbol}: the optional e-mail action group"
        (condition_,) = props["criteria"]["allOf"]
        assert condition_["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
    lag = rules["protectionLagAlert"]["criteria"]["allOf"][0]
    assert f'name == "{instruments.PROTECTION_LAG}"' in lag["query"]
    assert (lag["operator"], lag["threshold"], lag["timeAggregation"]) == \
        ("GreaterThan", "protectionLagThresholdSeconds", "Maximum")
    assert lag["dimensions"][0]["name"] == "container", "one alert per lagging container"
    poison = rules["poisonQueueAlert"]["criteria"]["allOf"][0]
    assert f'name == "{instruments.QUEUE_LENGTH}"' in poison["query"] and '== "poison"' in poison["query"]
    assert (poison["operator"], poison["threshold"]) == ("GreaterThan", 0)
    beat = rules["heartbeatAlert"]["criteria"]["allOf"][0]
    assert beat["query"] == f'customMetrics | where name == "{instruments.HEARTBEAT}"'
    assert (beat["operator"], beat["threshold"], beat["timeAggregation"]) == ("LessThan", 1, "Count"), \
        "no heartbeat row in the window is the alert: missing data fires"
    assert rules["heartbeatAlert"]["windowSize"] == "PT${heartbeatMissingMinutes}M"
    # The thresholds are parameters of main.bicep, passed through to the module.
    main = bicep["main.bicep"]
    passed = body(main["modules"]["alerts"])["params"]
    for name in ("protectionLagThresholdSeconds", "heartbeatMissingMinutes", "alertEmail"):
        assert name in main["parameters"] and passed[name] == name, name
    assert main["parameters"]["alertEmail"]["default"] == ""
    group = tree["resources"]["actionGroup"]
    negated = op(condition(group), "not")
    assert negated is not None and fn(negated["bool_value"], "empty") == {"item_to_test": "alertEmail"}, \
        "the action group exists only with an e-mail address"
    receivers = body(group)["properties"]["emailReceivers"]
    assert receivers[0]["emailAddress"] == "alertEmail"


def test_the_timer_schedule_is_an_app_setting_the_host_can_index(app_settings: dict[str, Any]) -> None:
    from shared_code.core.schedule import Schedule

    timer = json.loads((ROOT / "TimerProtectionGauges" / "function.json").read_text(encoding="utf-8"))["bindings"][0]
    assert (timer["type"], timer["schedule"]) == ("timerTrigger", "%METRICS_SCHEDULE%")
    assert app_settings["METRICS_SCHEDULE"] == "metricsSchedule"
    default = parse(INFRA / "main.bicep")["parameters"]["metricsSchedule"]["default"]
    Schedule.parse(default)
    example = json.loads((ROOT / "local.settings.json.example").read_text(encoding="utf-8"))["Values"]
    assert example["METRICS_SCHEDULE"] == default


def test_host_and_worker_do_not_send_the_same_telemetry_twice(app_settings: dict[str, Any]) -> None:
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["telemetryMode"] == "OpenTelemetry"
    assert app_settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert "azure-monitor-opentelemetry" in (ROOT / "requirements.txt").read_text(encoding="utf-8")


def test_readme_documents_every_instrument_and_alert() -> None:
    from shared_code.telemetry import instruments

    monitoring = markdown_section(README.read_text(encoding="utf-8"), "Monitoring")
    rows = table_rows(monitoring, ["instrument", "kind", "unit", "attributes", "from"])
    names = {value for key, value in vars(instruments).items() if key.isupper() and isinstance(value, str)
             and key != "METER_NAME"}
    assert {strip_md(row["instrument"]) for row in rows} == names
    for parameter in ("protectionLagThresholdSeconds", "heartbeatMissingMinutes", "alertEmail", "metricsSchedule"):
        assert f"`{parameter}`" in monitoring, parameter
