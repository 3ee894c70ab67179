"""The TypedDicts are the broker's schemas: same keys as the running broker's /openapi.json, and
the package's version is the API's."""

from __future__ import annotations

import json
import os
import typing

import httpx
import pytest

import storage_broker
from storage_broker import types

from conftest import BROKER


@pytest.fixture(scope="module")
def schemas() -> dict[str, typing.Any]:
    return dict(httpx.get(f"{BROKER}/openapi.json").json()["components"]["schemas"])


NAMES = ["Me", "ProjectRole", "BucketView", "ObjectView", "ObjectList", "SignResponse", "ItemError", "ManifestLine", "UploadPolicyResponse", "MultipartUrl", "MultipartResponse"]


@pytest.mark.parametrize("name", NAMES)
def test_typed_dict_has_the_schema_keys(schemas: dict[str, typing.Any], name: str) -> None:
    declared = typing.get_type_hints(getattr(types, name))
    schema = schemas[name]
    assert set(declared) == set(schema["properties"])
    required = getattr(types, name).__required_keys__
    assert set(schema.get("required", [])) == set(required), f"{name}: required keys differ"


def test_batch_result_covers_a_url_and_an_error(schemas: dict[str, typing.Any]) -> None:
    keys = set(typing.get_type_hints(types.BatchResult))
    assert set(schemas["SignResponse"]["properties"]) | {"index", "error"} == keys


def test_version_follows_the_api() -> None:
    api = httpx.get(f"{BROKER}/openapi.json").json()["info"]["version"]
    assert storage_broker.__version__ == api
    js = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "js", "package.json")))
    assert js["version"] == api
