"""The ADF pipeline definition in adf/ matches what the app sends and is self-consistent.

Why: the app calls createRun with four parameter names, and ADF only reports a
mismatch at run time (in production, as a failed backup). A rename on either side,
a dataset reference to a file that was never committed, or a dataset parameter left
unwired would otherwise only be caught after deployment.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.doubles.adf_service import COPY_ACTIVITY_NAME, PIPELINE_PARAMETERS

ADF_DIR = Path(__file__).resolve().parents[2] / "adf"
PIPELINE_NAME = "BlobBackupCopyPipeline"
EXPECTED_PARAMETERS = {"container", "container_backup", "blob_name", "blob_name_backup"}
# Which pipeline parameter must feed which dataset parameter, per copy side.
EXPECTED_WIRING = {
    "inputs": {"container": "container", "fileName": "blob_name"},
    "outputs": {"container": "container_backup", "fileName": "blob_name_backup"},
}
_PIPELINE_PARAM_EXPR = re.compile(r"^@pipeline\(\)\.parameters\.(?P<name>\w+)$")
_DATASET_PARAM_EXPR = re.compile(r"^@dataset\(\)\.(?P<name>\w+)$")
_SECRET_PROPERTIES = {
    "connectionString", "accountKey", "sasUri", "sasToken", "servicePrincipalId",
    "servicePrincipalKey", "encryptedCredential", "credential",
}


def load(kind: str, name: str) -> dict[str, Any]:
    """One resource file as ADF's git integration lays it out: adf/<kind>/<name>.json."""
    path = ADF_DIR / kind / f"{name}.json"
    assert path.is_file(), f"{kind} {name!r} is referenced but {path.relative_to(ADF_DIR.parent)} does not exist"
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert resource["name"] == name, f"{path.name}: file name and 'name' differ"
    return resource


@pytest.fixture(scope="module")
def pipeline() -> dict[str, Any]:
    return load("pipeline", PIPELINE_NAME)


def copy_activity(pipeline: dict[str, Any]) -> dict[str, Any]:
    (activity,) = pipeline["properties"]["activities"]
    return activity


def test_every_file_is_an_adf_resource() -> None:
    kinds = {"pipeline": "pipelines", "dataset": "datasets", "linkedService": "linkedservices"}
    files = sorted(ADF_DIR.glob("*/*.json"))
    assert files
    for path in files:
        resource = json.loads(path.read_text(encoding="utf-8"))
        assert path.parent.name in kinds, f"unexpected folder {path.parent.name}"
        assert resource["type"] == f"Microsoft.DataFactory/factories/{kinds[path.parent.name]}", path
        assert resource["name"] == path.stem
        assert "properties" in resource


def test_pipeline_parameters_are_exactly_what_the_app_sends(pipeline: dict[str, Any]) -> None:
    parameters = pipeline["properties"]["parameters"]
    assert set(parameters) == EXPECTED_PARAMETERS
    assert all(spec["type"].lower() == "string" for spec in parameters.values())
    # The local ADF double copies with the same names, so tests exercise the real contract.
    assert set(PIPELINE_PARAMETERS) == EXPECTED_PARAMETERS


def test_single_binary_copy_activity(pipeline: dict[str, Any]) -> None:
    activity = copy_activity(pipeline)
    assert activity["type"] == "Copy"
    assert activity["name"] == COPY_ACTIVITY_NAME
    assert activity["policy"]["retry"] == 2
    props = activity["typeProperties"]
    assert props["source"]["type"] == "BinarySource"
    assert props["sink"]["type"] == "BinarySink"
    assert props["source"]["storeSettings"]["type"] == "AzureBlobStorageReadSettings"
    assert props["sink"]["storeSettings"]["type"] == "AzureBlobStorageWriteSettings"
    assert "Attributes" in props.get("preserve", [])
    assert len(activity["inputs"]) == len(activity["outputs"]) == 1


@pytest.mark.parametrize("side", ["inputs", "outputs"])
def test_dataset_parameters_are_wired_from_pipeline_parameters(pipeline: dict[str, Any], side: str) -> None:
    pipeline_params = set(pipeline["properties"]["parameters"])
    (reference,) = copy_activity(pipeline)[side]
    assert reference["type"] == "DatasetReference"
    dataset = load("dataset", reference["referenceName"])
    declared = set(dataset["properties"].get("parameters", {}))
    passed = reference.get("parameters", {})
    assert set(passed) == declared, "every dataset parameter gets a value, and no unknown ones"

    wiring = {}
    for name, value in passed.items():
        assert value["type"] == "Expression"
        match = _PIPELINE_PARAM_EXPR.match(value["value"])
        assert match, f"{side}.{name} = {value['value']!r} is not a pipeline parameter"
        assert match["name"] in pipeline_params
        wiring[name] = match["name"]
    assert wiring == EXPECTED_WIRING[side]

    location = dataset["properties"]["typeProperties"]["location"]
    assert dataset["properties"]["type"] == "Binary"
    assert location["type"] == "AzureBlobStorageLocation"
    for field in ("container", "fileName"):
        match = _DATASET_PARAM_EXPR.match(location[field]["value"])
        assert match and match["name"] in declared, f"location.{field} must come from a dataset parameter"


def test_linked_services_exist_and_use_managed_identity(pipeline: dict[str, Any]) -> None:
    activity = copy_activity(pipeline)
    references = [ref["referenceName"] for ref in activity["inputs"] + activity["outputs"]]
    linked = set()
    for dataset_name in references:
        ls_ref = load("dataset", dataset_name)["properties"]["linkedServiceName"]
        assert ls_ref["type"] == "LinkedServiceReference"
        linked.add(ls_ref["referenceName"])
    assert linked == {"SourceBlobStorage", "BackupBlobStorage"}
    for name in linked:
        props = load("linkedService", name)["properties"]
        assert props["type"] == "AzureBlobStorage"
        type_props = props["typeProperties"]
        assert re.fullmatch(r"https://[^/]+\.blob\.core\.windows\.net/", type_props["serviceEndpoint"])
        assert not _SECRET_PROPERTIES & set(type_props), f"{name} must authenticate with the factory identity"
