"""The Kubernetes examples against the API's own schemas, offline (kubernetes-validate).

kubernetes-validate bundles the OpenAPI schemas of each Kubernetes release as JSON schemas; its
strict ones refuse fields the API does not know, so a misspelt key fails here rather than at
`kubectl apply`. The examples need Kubernetes >= 1.29 (the proxy is a native sidecar), so they
are checked against 1.29 and against the newest release the installed package bundles, 1.37.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import ValidationError, validate

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
# The oldest release the examples support (native sidecars) and the newest one bundled.
VERSIONS = ("1.29", "1.37")

Document = dict[str, Any]


def documents() -> list[tuple[str, Document]]:
    """(file#index, document) for every YAML document in deploy/kubernetes, empty ones left out."""
    found: list[tuple[str, Document]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document is not None:
                found.append((f"{path.relative_to(ROOT).as_posix()}#{index}", document))
    return found


DOCUMENTS = documents()


def deployment() -> Document:
    """A copy of the example Deployment, free to change."""
    (found,) = [document for _, document in DOCUMENTS if document["kind"] == "Deployment"]
    return copy.deepcopy(found)


def pod_spec(document: Document) -> Document:
    spec: Document = document["spec"]["template"]["spec"]
    return spec


def proxy_container(document: Document) -> Document:
    containers: list[Document] = pod_spec(document)["initContainers"]
    (container,) = [c for c in containers if c["name"] == "signing-proxy"]
    return container


def strictly_valid(document: Document, version: str) -> None:
    """Validates ``document`` with the strict schemas of ``version`` (raises if it is not)."""
    # validate() falls back to the newest bundled schemas not newer than the version asked for
    # and says which it used: a package without this release must fail, not pass on older ones.
    assert validate(document, version, strict=True) == version


def test_there_are_documents_to_validate() -> None:
    """The directory holds documents, so the parametrized checks below cannot pass on none."""
    assert len(DOCUMENTS) >= 3


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[where for where, _ in DOCUMENTS])
def test_every_document_validates_strictly(where: str, document: Document, version: str) -> None:
    """Each document matches its kind's schema for the release, with no field it does not know."""
    try:
        strictly_valid(document, version)
    except ValidationError as error:
        path = ".".join(str(item) for item in error.path)
        pytest.fail(f"{where} against {version}: {path}: {error.message}", pytrace=False)


def misspell_image_pull_policy(document: Document) -> str:
    proxy_container(document)["imagePullPolicyy"] = "IfNotPresent"
    return "imagePullPolicyy"


def misspell_probe_path(document: Document) -> str:
    get = proxy_container(document)["readinessProbe"]["httpGet"]
    get["paht"] = get.pop("path")
    return "paht"


def misspell_service_account(document: Document) -> str:
    spec = pod_spec(document)
    spec["serviceAccount_name"] = spec.pop("serviceAccountName")
    return "serviceAccount_name"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "misspell", [misspell_image_pull_policy, misspell_probe_path, misspell_service_account]
)
def test_a_misspelt_field_is_refused(misspell: Callable[[Document], str], version: str) -> None:
    """A copy of the Deployment with one misspelt key fails strictly, naming the key."""
    document = deployment()
    key = misspell(document)
    with pytest.raises(ValidationError) as caught:
        strictly_valid(document, version)
    assert repr(key) in caught.value.message
    # Only the strict schemas see it: the default ones let fields they do not know through.
    assert validate(document, version, strict=False) == version


@pytest.mark.parametrize("version", VERSIONS)
def test_the_correct_spelling_passes(version: str) -> None:
    """The control's control: the same change spelt right validates, so the key is the fault."""
    document = deployment()
    proxy_container(document)["imagePullPolicy"] = "IfNotPresent"
    strictly_valid(document, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_wrongly_typed_value_is_refused(version: str) -> None:
    """Types are checked too: replicas as a string is refused."""
    document = deployment()
    document["spec"]["replicas"] = str(document["spec"]["replicas"])
    with pytest.raises(ValidationError) as caught:
        strictly_valid(document, version)
    assert list(caught.value.path) == ["spec", "replicas"]
