"""The sync and async clients against the running broker: every upload flow at the sizes where
flows break, byte for byte; batches, manifests, download_prefix; typed errors."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

import storage_broker
from storage_broker import StorageBrokerError, StorageCodes
from storage_broker.aio import _inside

from conftest import BACKEND, BROKER, CHUNKED, PROTOCOL, sha, token, unique

MIB = 1024 * 1024
SIZES = [0, 1, 5 * MIB + 1, 50 * MIB]
FLOWS = ["single", "chunked"] + ([] if BACKEND == "azure" else ["form"])


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("size", SIZES)
def test_upload_comes_back_byte_for_byte(client: storage_broker.Client, bucket: str, flow: str, size: int, tmp_path: Path) -> None:
    data = os.urandom(size)
    # Bytes for the small ones, a file (read a slice at a time) for the large ones.
    source: bytes | Path = data
    if size > MIB:
        source = tmp_path / "upload.bin"
        source.write_bytes(data)
    seen: list[tuple[int, int]] = []
    object = f"py/{flow}/{unique(f'size-{size}')}"
    result = client.upload(bucket, object, source, flow=flow, chunk_size=5 * MIB, metadata={"origin": "clients-python"}, on_progress=lambda d, t: seen.append((d, t)))
    expected = flow if flow != "chunked" else ("single" if BACKEND == "s3" and size == 0 else CHUNKED)
    assert result == {"bucket": bucket, "object": object, "size": size, "protocol": PROTOCOL, "flow": expected}
    back = client.download(bucket, object)
    assert len(back) == size and sha(back) == sha(data)
    assert seen and seen[-1] == (size, size)


def test_range_reads_and_content_type(client: storage_broker.Client, bucket: str) -> None:
    object = unique("typed") + ".txt"
    client.upload(bucket, object, "hello, typed world\n", content_type="text/plain")
    assert client.download(bucket, object, range=(7, 12)) == b"typed"
    assert client.download(bucket, object, range=(7, None)) == b"typed world\n"
    signed = client.sign(bucket, object, "GET")
    assert signed["protocol"] == PROTOCOL
    assert client.fetch_signed(signed) == b"hello, typed world\n"


def test_batch_and_manifest_stream(client: storage_broker.Client, bucket: str) -> None:
    prefix = unique("manifest") + "/"
    names = ["a.csv", "b/c.csv", "d.csv"]
    for name in names:
        client.upload(bucket, prefix + name, f"content of {name}")
    lines = list(client.manifest(bucket, prefix))
    assert sorted(line["object"] for line in lines) == [prefix + n for n in names]
    for line in lines:
        assert client.fetch_signed(line) == f"content of {line['object'][len(prefix):]}".encode()
    results = list(client.batch([{"bucket": bucket, "object": prefix + "a.csv", "method": "GET"}, {"bucket": "u-nobody-at-all", "object": "x", "method": "GET"}]))
    assert [r["index"] for r in results] == [0, 1]
    assert client.fetch_signed(results[0]) == b"content of a.csv"
    assert results[1]["error"]["code"] == "not_found"


def test_download_prefix_resumes_by_skipping_complete_files(client: storage_broker.Client, bucket: str, tmp_path: Path) -> None:
    prefix = unique("dataset") + "/"
    files = {f"part-{i}.bin": os.urandom(1000 + i) for i in range(12)}
    files["nested/deep/x.bin"] = os.urandom(2 * MIB)
    for name, data in files.items():
        client.upload(bucket, prefix + name, data)
    dest = tmp_path / "out"
    first = client.download_prefix(bucket, prefix, str(dest), concurrency=4, progress=True)
    assert first == {"downloaded": 13, "skipped": 0, "bytes": sum(len(d) for d in files.values())}
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    # A run that stopped: one file missing, one cut short, a stale partial left behind.
    (dest / "part-3.bin").unlink()
    (dest / "part-5.bin").write_bytes(files["part-5.bin"][:10])
    (dest / "part-7.bin.part").write_bytes(b"junk")
    again = client.download_prefix(bucket, prefix, str(dest), progress=False)
    assert again["downloaded"] == 2 and again["skipped"] == 11
    for name, data in files.items():
        assert (dest / name).read_bytes() == data


def test_object_names_cannot_leave_the_destination(tmp_path: Path) -> None:
    for name in ["../escape", "/etc/passwd", "a/../../b", "a/./b", "C:evil", "a\\..\\b"]:
        with pytest.raises(StorageBrokerError) as refused:
            _inside(tmp_path, name)
        assert refused.value.code == "unsafe_object_name"
    assert _inside(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"


def test_typed_errors(bucket: str, client: storage_broker.Client) -> None:
    with pytest.raises(StorageBrokerError) as bad:
        storage_broker.Client(BROKER, token="not-a-token").me()
    assert (bad.value.code, bad.value.status, bad.value.source) == ("unauthorized", 401, "broker")
    # Alice shares a prefix with bob, read-only: his write is 403, a bucket he cannot see 404.
    alice = storage_broker.Client(BROKER, token=token("py-alice"))
    alice_bucket = alice.me()["personal_bucket"]
    shared = unique("shared") + "/"
    alice.upload(alice_bucket, shared + "readme.txt", "read me")
    grant = httpx.post(f"{BROKER}/v1/buckets/{alice_bucket}/grants", headers={"Authorization": f"Bearer {token('py-alice')}"}, json={"prefix": shared, "principal": "user:py-bob", "role": "viewer"})
    assert grant.status_code == 201, grant.text
    bob = storage_broker.Client(BROKER, token=token("py-bob"))
    assert bob.download(alice_bucket, shared + "readme.txt") == b"read me"
    with pytest.raises(StorageBrokerError) as forbidden:
        bob.upload(alice_bucket, shared + "mine.txt", b"no")
    assert (forbidden.value.code, forbidden.value.status) == ("forbidden", 403)
    with pytest.raises(StorageBrokerError) as hidden:
        bob.sign("u-nobody-at-all", "x")
    assert (hidden.value.code, hidden.value.status) == ("not_found", 404)
    with pytest.raises(StorageBrokerError) as missing:
        bob.download(alice_bucket, shared + "missing.txt")
    assert (missing.value.code, missing.value.source) == (StorageCodes.NOT_FOUND, "storage")
    if BACKEND != "gcs":  # fake-gcs-server checks no signature or expiry
        signed = client.sign(bucket, unique("late"), "GET", expires_in=1)
        time.sleep(2.5)
        with pytest.raises(StorageBrokerError) as late:
            client.fetch_signed(signed)
        assert (late.value.code, late.value.source) == (StorageCodes.EXPIRED, "storage")


def test_storage_errors_map_alike_for_every_storage() -> None:
    from storage_broker.errors import storage_error

    assert storage_error(400, "<Error><Code>ExpiredToken</Code><Details>The provided token has expired.</Details></Error>").code == StorageCodes.EXPIRED
    assert storage_error(403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>").code == StorageCodes.EXPIRED
    assert storage_error(403, "<Error><Code>AuthenticationFailed</Code><AuthenticationErrorDetail>Signed expiry time [x] has to be after current time [y]</AuthenticationErrorDetail></Error>").code == StorageCodes.EXPIRED
    assert storage_error(400, "<Error><Code>EntityTooLarge</Code></Error>").code == StorageCodes.TOO_LARGE
    assert storage_error(413, "<Error><Code>RequestBodyTooLarge</Code></Error>").code == StorageCodes.TOO_LARGE
    assert storage_error(403, '<Error><Code>AccessDenied</Code><Message>Policy Condition failed: ["eq", "$Content-Type", "image/png"]</Message></Error>').code == StorageCodes.WRONG_TYPE
    assert storage_error(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>").code == StorageCodes.FORBIDDEN
    assert storage_error(404, "<Error><Code>NoSuchUpload</Code></Error>").code == StorageCodes.UPLOAD_GONE
    assert storage_error(503, "<Error><Code>SlowDown</Code></Error>").code == StorageCodes.UNAVAILABLE


async def test_async_client_uploads_concurrently_and_lists_pages() -> None:
    async with storage_broker.AsyncClient(BROKER, get_token=lambda: token("py-async")) as client:
        bucket = (await client.me())["personal_bucket"]
        prefix = unique("async") + "/"
        blobs = {f"{i:02d}.txt": f"object {i}".encode() for i in range(20)}
        await asyncio.gather(*(client.upload(bucket, prefix + name, data) for name, data in blobs.items()))
        listed = [o["name"] async for page in client.list(bucket, prefix) for o in page["objects"]]
        assert sorted(listed) == [prefix + n for n in sorted(blobs)]
        assert await client.download(bucket, prefix + "07.txt") == b"object 7"
        await client.delete(bucket, prefix + "07.txt")
        with pytest.raises(StorageBrokerError) as gone:
            await client.download(bucket, prefix + "07.txt")
        assert gone.value.code == StorageCodes.NOT_FOUND


@pytest.mark.skipif(BACKEND != "gcs", reason="GCS resumable sessions only")
async def test_resumable_upload_resumes_after_a_dropped_connection() -> None:
    """The second chunk reaches storage but its answer is lost with the connection: the client
    asks the session what it committed and goes on, sending no byte twice."""
    sent: list[tuple[str, int]] = []
    dropped = []

    class Dropping(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            body = await request.aread()
            ranged = request.headers.get("content-range")
            if request.method == "PUT" and "upload_id=" in str(request.url) and body:
                sent.append((ranged or "", len(body)))
            response = await super().handle_async_request(request)
            if request.method == "PUT" and body and len(sent) == 2 and not dropped:
                dropped.append(ranged)
                await response.aclose()
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            return response

    client = storage_broker.AsyncClient(BROKER, token=token("py-resume"), transport=Dropping())
    bucket = (await client.me())["personal_bucket"]
    data = os.urandom(12 * MIB + 5)
    object = unique("resumed")
    result = await client.upload(bucket, object, data, flow="chunked", chunk_size=4 * MIB)
    assert result["flow"] == "resumable" and dropped
    assert sha(await client.download(bucket, object)) == sha(data)
    assert sum(n for _, n in sent) == len(data), f"a chunk went twice: {sent}"


@pytest.mark.skipif(BACKEND != "s3", reason="S3 multipart uploads only")
async def test_cancelled_multipart_upload_leaves_no_parts() -> None:
    import json
    import subprocess

    client = storage_broker.AsyncClient(BROKER, token=token("py-cancel"))
    bucket = (await client.me())["personal_bucket"]
    object = unique("cancelled")
    started = asyncio.Event()
    task = asyncio.ensure_future(client.upload(bucket, object, os.urandom(40 * MIB), flow="chunked", chunk_size=5 * MIB, concurrency=2, on_progress=lambda d, t: started.set()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    key = httpx.URL((await client.sign(bucket, object))["url"]).path.split("/", 2)[2]
    script = (
        "import boto3, json, sys; s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', "
        "aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]); "
        "print(json.dumps([u['UploadId'] for u in s3.list_multipart_uploads(Bucket='storage-broker-data', Prefix=sys.argv[4]).get('Uploads', [])]))"
    )
    out = subprocess.run([os.environ["PYTOOLS"], "-c", script, os.environ["S3_ENDPOINT"], os.environ["S3_KEY_ID"], os.environ["S3_SECRET"], key], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [], f"multipart uploads left for {key}"
