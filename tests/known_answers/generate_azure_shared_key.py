"""Makes tests/known_answers/azure_shared_key.json: the `Authorization: SharedKey ACCOUNT:SIG`
header of Azure Blob REST requests as azure-storage-blob's own `SharedKeyCredentialPolicy`
computes it, for `AzureCredentials::shared_key` (a unit test in src/signing/azure.rs).

Run with azure-storage-blob 12.31.1 and azure-core 1.41.0 (the versions the SAS known answers
pin), e.g.:
    python3 -m venv target/tools/azure-py
    target/tools/azure-py/bin/pip install azure-storage-blob==12.31.1 azure-core==1.41.0
    target/tools/azure-py/bin/python tests/known_answers/generate_azure_shared_key.py
Reruns give the same file: the clock, request ids and random choices are fixed.

Two kinds of case, both signed by the library's policy, whose string to sign is recorded too:
- "client": a real client operation (create container, List Blobs, Delete Blob, Put Blob, Get
  Blob Properties, Set Blob Metadata, service properties) run through the library's own pipeline,
  with a transport that keeps the request instead of sending it. The input is that request: its
  method, URL and every header but Authorization and User-Agent (which is not signed and names
  the machine).
- "policy": a hand-made request given to the policy alone, for what clients seldom send: the
  standard headers, `x-ms-*` names whose order depends on the service's collation (`-` and `_`),
  empty and camel-case query parameters, encoded query values.
The policy never signs a `Range` header (it reads a "byte_range" header instead; the library
sends ranges as `x-ms-range`), where the documented scheme signs it: no case has one.
"""

import datetime
import json
import random
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from unittest import mock

from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest, HttpTransport
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ContentSettings
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

HERE = Path(__file__).resolve().parent
SEED = 20261125
LIBRARY = f"azure-storage-blob {version('azure-storage-blob')} (azure-core {version('azure-core')})"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE = f"http://127.0.0.1:10000/{AZURITE_ACCOUNT}"
# 2026-11-24T10:20:30Z, the clock of every request.
NOW = datetime.datetime(2026, 11, 24, 10, 20, 30, tzinfo=datetime.timezone.utc).timestamp()

rng = random.Random(SEED)
recorded = []


def random_key():
    import base64

    return base64.b64encode(bytes(rng.randrange(256) for _ in range(64))).decode()


CLOUD_ACCOUNT = "katsharedkey"
CLOUD_KEY = random_key()
CLOUD = f"https://{CLOUD_ACCOUNT}.blob.core.windows.net"


class Kept(Exception):
    """Raised by the transport once it has the request: nothing is sent."""


class KeepingTransport(HttpTransport):
    def __init__(self):
        self.requests = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def open(self):
        pass

    def close(self):
        pass

    def send(self, request, **kwargs):
        self.requests.append(request)
        raise Kept()


original_add = SharedKeyCredentialPolicy._add_authorization_header


def recording_add(self, request, string_to_sign):
    recorded.append(string_to_sign)
    original_add(self, request, string_to_sign)


def fixed_uuid1():
    return uuid.UUID(int=rng.getrandbits(128), version=1)


def case(name, kind, made_by, account, key, request, string_to_sign):
    headers = [[k, v] for k, v in request.headers.items() if k.lower() not in ("authorization", "user-agent")]
    return {
        "name": name,
        "kind": kind,
        "made_by": made_by,
        "input": {"account": account, "key": key, "method": request.method, "url": request.url, "headers": headers},
        "expected": {"authorization": request.headers["Authorization"], "string_to_sign": string_to_sign},
    }


def client_case(name, account, key, operation):
    """Runs `operation(transport, credential)`; the one request it makes is the case."""
    transport = KeepingTransport()
    credential = {"account_name": account, "account_key": key}
    recorded.clear()
    try:
        operation(transport, credential)
        raise AssertionError(f"{name}: the operation made no request")
    except Kept:
        pass
    (request,) = transport.requests
    (sts,) = recorded
    made_by = f"{LIBRARY}: a client's own pipeline (SharedKeyCredentialPolicy), request kept by the transport"
    return case(name, "client", made_by, account, key, request, sts)


def policy_case(name, account, key, method, url, headers):
    request = HttpRequest(method, url, headers=dict(headers))
    recorded.clear()
    SharedKeyCredentialPolicy(account, key).on_request(PipelineRequest(request, PipelineContext(None)))
    (sts,) = recorded
    made_by = f"{LIBRARY}: SharedKeyCredentialPolicy(account, key).on_request on a hand-made HttpRequest"
    return case(name, "policy", made_by, account, key, request, sts)


def opts(transport):
    return {"transport": transport, "retry_total": 0}


def client_cases():
    az = (AZURITE_ACCOUNT, AZURITE_KEY)
    cloud = (CLOUD_ACCOUNT, CLOUD_KEY)
    return [
        client_case("create_container_path_style", *az, lambda t, c: ContainerClient(
            AZURITE, "kat-container", credential=c, **opts(t)).create_container()),
        client_case("list_blobs_prefix_path_style", *az, lambda t, c: next(ContainerClient(
            AZURITE, "kat-container", credential=c, **opts(t)).list_blobs(
                name_starts_with="photos/é t+é/a&b=c %", results_per_page=1000).by_page())),
        client_case("list_blobs_marker_cloud", *cloud, lambda t, c: next(ContainerClient(
            CLOUD, "media-x1", credential=c, **opts(t)).list_blobs(
                name_starts_with="a/", results_per_page=1).by_page(continuation_token="2!96!MDAwMDA5IWEvYi5qcGc-"))),
        client_case("delete_blob_with_snapshots_cloud", *cloud, lambda t, c: BlobClient(
            CLOUD, "media-x1", "photos/été 2024/日本語 ✓ 😀.jpg", credential=c, **opts(t)).delete_blob(
                delete_snapshots="include")),
        client_case("delete_blob_reserved_characters_path_style", *az, lambda t, c: BlobClient(
            AZURITE, "kat-container", "a?b#c&d=e+f;g,h:i@j$k!l'm(n)o*p u%v", credential=c, **opts(t)).delete_blob()),
        client_case("put_blob_with_content_type", *az, lambda t, c: BlobClient(
            AZURITE, "kat-container", "in/box.json", credential=c, **opts(t)).upload_blob(
                b'{"a": 1}', overwrite=True, content_settings=ContentSettings(content_type="application/json"))),
        client_case("get_blob_properties_cloud", *cloud, lambda t, c: BlobClient(
            CLOUD, "media-x1", "/leading/slash", credential=c, **opts(t)).get_blob_properties()),
        client_case("set_metadata_collation", *cloud, lambda t, c: BlobClient(
            CLOUD, "media-x1", "m", credential=c, **opts(t)).set_blob_metadata(
                {"ab": "2", "a_b": "3", "a-b": "1", "Zeta": "upper", "a1": "digit"})),
        client_case("service_properties_cloud", *cloud, lambda t, c: BlobServiceClient(
            CLOUD, credential=c, **opts(t)).get_service_properties()),
    ]


def policy_cases():
    date = "Tue, 24 Nov 2026 10:20:30 GMT"
    base = [("x-ms-date", date), ("x-ms-version", "2026-06-06")]
    return [
        policy_case("standard_headers", CLOUD_ACCOUNT, CLOUD_KEY, "PUT",
                    f"{CLOUD}/media-x1/doc.txt?timeout=30",
                    base + [("Content-Encoding", "gzip"), ("Content-Language", "fr"), ("Content-Length", "12"),
                            ("Content-MD5", "Q2hlY2sgSW50ZWdyaXR5IQ=="), ("Content-Type", "text/plain; charset=utf-8"),
                            ("If-Match", '"0x8D0"'), ("If-None-Match", "*"),
                            ("If-Modified-Since", "Mon, 23 Nov 2026 10:00:00 GMT"),
                            ("If-Unmodified-Since", "Wed, 25 Nov 2026 10:00:00 GMT"),
                            ("x-ms-blob-type", "BlockBlob")]),
        policy_case("date_header_and_zero_content_length", AZURITE_ACCOUNT, AZURITE_KEY, "PUT",
                    f"{AZURITE}/kat-container?restype=container",
                    [("Date", date), ("x-ms-version", "2026-06-06"), ("Content-Length", "0")]),
        policy_case("header_collation", CLOUD_ACCOUNT, CLOUD_KEY, "GET",
                    f"{CLOUD}/media-x1/k",
                    base + [("x-ms-meta-a_b", "3"), ("x-ms-meta-ab", "2"), ("x-ms-meta-a-b", "1"),
                            ("x-ms-meta-a.b", "4"), ("x-ms-meta-a", "0"), ("x-ms-meta-b", "5"),
                            ("x-ms-client-request-id", "00000000-0000-4000-8000-000000000000")]),
        # Lower-case names only: the policy sorts names before lower-casing them, the service after.
        policy_case("query_values_decoded", CLOUD_ACCOUNT, CLOUD_KEY, "GET",
                    f"{CLOUD}/media-x1?restype=container&comp=list&prefix=a%2Fb%20c%2Bd%26e%3D%C3%A9&maxresults=1000"
                    "&marker=2%2196%21MDAw&include=&startFrom=a%2Fb",
                    base),
        policy_case("block_and_block_list", AZURITE_ACCOUNT, AZURITE_KEY, "PUT",
                    f"{AZURITE}/kat-container/big.bin?comp=block&blockid=YmxvY2stMDAwMDE%3D",
                    base + [("Content-Length", "4194304")]),
    ]


def main():
    with mock.patch.object(SharedKeyCredentialPolicy, "_add_authorization_header", recording_add), \
            mock.patch("azure.storage.blob._shared.policies.time", return_value=NOW), \
            mock.patch("azure.storage.blob._shared.policies.uuid.uuid1", side_effect=fixed_uuid1):
        cases = client_cases() + policy_cases()
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    for c in cases:
        assert c["expected"]["authorization"].startswith(f"SharedKey {c['input']['account']}:"), c["name"]
    out = HERE / "azure_shared_key.json"
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
