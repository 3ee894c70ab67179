"""The asynchronous client: the broker's API as typed calls, and uploads and downloads straight to
storage through the URLs it signs (the bytes never pass through the broker)."""

from __future__ import annotations

import builtins

import asyncio
import base64
import json
import os
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any, Literal, cast

import httpx

from .errors import StorageBrokerError, StorageCodes, broker_error, network_error, storage_error
from .types import (
    BatchResult,
    BucketView,
    ManifestLine,
    Me,
    MultipartResponse,
    MultipartUrl,
    ObjectList,
    SignResponse,
    UploadPolicyResponse,
)

MIB = 1024 * 1024
DEFAULT_CHUNK = 8 * MIB
Flow = Literal["auto", "single", "chunked", "form"]
Data = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
Progress = Callable[[int, int], None]


def _retryable(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _backoff(attempt: int, retry_after: str | None = None) -> float:
    """Exponential backoff with full jitter (0.25 s, 0.5 s, … capped at 8 s), or Retry-After."""
    if retry_after:
        try:
            return min(float(retry_after), 30.0)
        except ValueError:
            pass
    return float(random.random() * min(8.0, 0.25 * 2**attempt))


class _Source:
    """The bytes of an upload, read a slice at a time (a file is never read whole)."""

    def __init__(self, data: Data) -> None:
        self._file: IO[bytes] | None = None
        self._owned = False
        self._memory: memoryview | None = None
        if isinstance(data, str):
            self._memory = memoryview(data.encode())
        elif isinstance(data, (bytes, bytearray, memoryview)):
            self._memory = memoryview(data).cast("B")
        elif isinstance(data, os.PathLike):
            self._file = open(os.fspath(data), "rb")  # noqa: SIM115 (closed by close())
            self._owned = True
        else:
            self._file = data
        if self._memory is not None:
            self.size = len(self._memory)
        else:
            assert self._file is not None
            start = self._file.tell()
            self.size = self._file.seek(0, os.SEEK_END) - start
            self._base = start
        self._lock = asyncio.Lock()

    async def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if self._memory is not None:
            return bytes(self._memory[offset:end])
        assert self._file is not None
        file = self._file
        async with self._lock:

            def read() -> bytes:
                file.seek(self._base + offset)
                return file.read(end - offset)

            return await asyncio.to_thread(read)

    def close(self) -> None:
        if self._owned and self._file is not None:
            self._file.close()


class AsyncClient:
    """``AsyncClient(base_url, token=…)`` or ``get_token=`` (a function, sync or async, asked before
    every broker call). Retries network errors, 408, 429 and 5xx with backoff (``retries``)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        get_token: Callable[[], str | Awaitable[str]] | None = None,
        retries: int = 4,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = token
        self._get_token = get_token
        self._retries = retries
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self._protocols: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- plumbing

    async def _bearer(self) -> str:
        value: str | None = self._token
        if self._get_token is not None:
            got = self._get_token()
            value = await got if isinstance(got, Awaitable) else got
        if not value:
            raise StorageBrokerError("no token: give token= or get_token=", code="unauthorized", status=0, source="broker")
        return value

    async def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        what: str = "storage",
        retries: int | None = None,
    ) -> httpx.Response:
        """One request, retried with backoff on network errors and retryable statuses."""
        attempts = self._retries if retries is None else retries
        for attempt in range(attempts + 1):
            try:
                response = await self._http.request(method, url, headers=headers, content=content)
            except httpx.TransportError as e:
                if attempt >= attempts:
                    raise network_error(what, e) from e
                await asyncio.sleep(_backoff(attempt))
                continue
            if _retryable(response.status_code) and attempt < attempts:
                await asyncio.sleep(_backoff(attempt, response.headers.get("retry-after")))
                continue
            return response
        raise AssertionError("unreachable")

    async def _api(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {await self._bearer()}", "Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        response = await self._send(method, self._base + path, headers=headers, content=content, what="the broker")
        if not response.is_success:
            raise broker_error(response.status_code, response.text)
        return response.json()

    async def _ndjson(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {await self._bearer()}", "Accept": "application/x-ndjson"}
        body = {k: v for k, v in body.items() if v is not None}
        try:
            async with self._http.stream("POST", self._base + path, headers=headers, json=body) as response:
                if not response.is_success:
                    raise broker_error(response.status_code, (await response.aread()).decode(errors="replace"))
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except httpx.TransportError as e:
            raise network_error("the broker", e) from e

    # -- the API

    async def me(self) -> Me:
        return cast(Me, await self._api("GET", "/v1/me"))

    async def buckets(self) -> list[BucketView]:
        return cast(list[BucketView], (await self._api("GET", "/v1/buckets"))["buckets"])

    async def list(self, bucket: str, prefix: str = "") -> AsyncIterator[ObjectList]:
        """Pages of the objects under ``prefix`` the caller may read, following the page tokens."""
        token: str | None = None
        while True:
            query = httpx.QueryParams({"prefix": prefix, **({"page_token": token} if token else {})})
            page = cast(ObjectList, await self._api("GET", f"/v1/buckets/{_segment(bucket)}/objects?{query}"))
            yield page
            token = page.get("next_page_token")
            if not token:
                return

    async def sign(self, bucket: str, object: str, method: str = "GET", **fields: Any) -> SignResponse:
        """A signed URL; ``fields`` are the rest of the sign request (``expires_in``, ``content_type``,
        ``size``, ``metadata``, ``response_content_type``, …)."""
        signed = cast(SignResponse, await self._api("POST", "/v1/sign", {"bucket": bucket, "object": object, "method": method, **fields}))
        self._protocols[bucket] = signed["protocol"]
        return signed

    async def batch(self, items: builtins.list[dict[str, Any]], *, expires_in: int | None = None) -> AsyncIterator[BatchResult]:
        """Up to 10,000 signatures, streamed back in order as they are made."""
        async for line in self._ndjson("/v1/sign/batch", {"items": items, "expires_in": expires_in}):
            if "index" not in line:
                raise _stream_error(line)
            yield cast(BatchResult, line)

    async def manifest(self, bucket: str, prefix: str = "", *, expires_in: int | None = None) -> AsyncIterator[ManifestLine]:
        """A signed GET for every object under ``prefix`` the caller may read, streamed."""
        async for line in self._ndjson("/v1/sign/prefix", {"bucket": bucket, "prefix": prefix, "expires_in": expires_in}):
            if "error" in line:
                raise _stream_error(line)
            yield cast(ManifestLine, line)

    async def upload_policy(self, bucket: str, object: str, **fields: Any) -> UploadPolicyResponse:
        return cast(UploadPolicyResponse, await self._api("POST", "/v1/upload-policy", {"bucket": bucket, "object": object, **fields}))

    # -- objects

    async def fetch_signed(self, signed: SignResponse | ManifestLine | BatchResult, *, range: tuple[int, int | None] | None = None) -> httpx.Response:
        """GETs a URL the broker signed (a sign answer, a batch result, a manifest line); storage's
        errors typed. ``range``: bytes ``[start, end)`` (end None: to the end)."""
        headers = dict(cast(dict[str, str], signed.get("headers") or {}))
        if range is not None:
            start, end = range
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        response = await self._send("GET", signed["url"], headers=headers)
        if not response.is_success:
            raise storage_error(response.status_code, response.text, signed.get("expires_at"))
        return response

    async def download(self, bucket: str, object: str, *, range: tuple[int, int | None] | None = None) -> bytes:
        return (await self.fetch_signed(await self.sign(bucket, object, "GET"), range=range)).content

    async def delete(self, bucket: str, object: str) -> None:
        signed = await self.sign(bucket, object, "DELETE")
        response = await self._send("DELETE", signed["url"], headers=signed["headers"])
        # A DELETE retried after storage had already done it finds nothing: that is success too.
        if not response.is_success and response.status_code != 404:
            raise storage_error(response.status_code, response.text, signed["expires_at"])

    async def upload(
        self,
        bucket: str,
        object: str,
        data: Data,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        flow: Flow = "auto",
        chunk_size: int = DEFAULT_CHUNK,
        concurrency: int = 4,
        expires_in: int | None = None,
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Uploads ``data`` (bytes, str, a ``pathlib.Path`` or a binary file) the way its storage
        takes it: one signed PUT up to ``chunk_size`` (``flow="auto"``), above it a GCS resumable
        session, an S3 multipart upload or Azure blocks; ``flow`` forces one (``"form"``: an HTML
        form POST through an upload policy). Answers ``{bucket, object, size, protocol, flow}``."""
        source = _Source(data)
        try:
            up = _Upload(self, bucket, object, source, content_type, metadata, chunk_size, concurrency, expires_in, on_progress)
            used = await up.run(flow)
            return {"bucket": bucket, "object": object, "size": source.size, "protocol": self._protocols.get(bucket), "flow": used}
        finally:
            source.close()

    async def download_to(self, signed: SignResponse | ManifestLine | BatchResult, path: str | os.PathLike[str], *, on_bytes: Callable[[int], None] | None = None) -> int:
        """Streams a signed GET into ``path`` through ``path.part``, renamed when complete: a file
        at ``path`` is never half-written. Answers the bytes written."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        for attempt in range(self._retries + 1):
            written = 0
            try:
                async with self._http.stream("GET", signed["url"], headers=cast(dict[str, str], signed.get("headers") or {})) as response:
                    if _retryable(response.status_code) and attempt < self._retries:
                        await asyncio.sleep(_backoff(attempt))
                        continue
                    if not response.is_success:
                        raise storage_error(response.status_code, (await response.aread()).decode(errors="replace"), signed.get("expires_at"))
                    with open(partial, "wb") as out:
                        async for chunk in response.aiter_bytes(1024 * 1024):
                            out.write(chunk)
                            written += len(chunk)
                            if on_bytes:
                                on_bytes(len(chunk))
                os.replace(partial, target)
                return written
            except httpx.TransportError as e:
                if on_bytes and written:
                    on_bytes(-written)
                if attempt >= self._retries:
                    raise network_error("storage", e) from e
                await asyncio.sleep(_backoff(attempt))
        raise AssertionError("unreachable")

    async def download_prefix(
        self,
        bucket: str,
        prefix: str,
        dest: str | os.PathLike[str],
        *,
        concurrency: int = 8,
        progress: bool = True,
    ) -> dict[str, int]:
        """Every object under ``prefix`` the caller may read, into ``dest`` (names below the prefix
        become paths below ``dest``). A file already there with the object's size is skipped, so a
        run that stopped resumes where it was; files are renamed into place only when complete.
        ``progress``: a tqdm bar (with the ``tqdm`` extra). Answers ``{downloaded, skipped, bytes}``."""
        root = Path(dest).resolve()
        lines = [line async for line in self.manifest(bucket, prefix)]
        total = sum(line.get("size") or 0 for line in lines)
        bar = _bar(total, progress)
        done = {"downloaded": 0, "skipped": 0, "bytes": 0}
        gate = asyncio.Semaphore(concurrency)

        async def one(line: ManifestLine) -> None:
            target = _inside(root, line["object"][len(prefix) :] if line["object"].startswith(prefix) else line["object"])
            size = line.get("size")
            if size is not None and target.is_file() and target.stat().st_size == size:
                done["skipped"] += 1
                bar.update(size)
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            async with gate:
                written = await self.download_to(line, target, on_bytes=bar.update)
            done["downloaded"] += 1
            done["bytes"] += written

        try:
            await asyncio.gather(*(one(line) for line in lines))
        finally:
            bar.close()
        return done


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _stream_error(line: dict[str, Any]) -> StorageBrokerError:
    error = line.get("error") or {}
    return StorageBrokerError(str(error.get("message", "the stream stopped")), code=str(error.get("code", "internal")), status=200, source="broker")


def _inside(root: Path, name: str) -> Path:
    """``root/name`` for an object name, refused when the name would leave ``root`` (an absolute
    name, ``..``, a drive or NUL): object names are whatever someone uploaded."""
    parts = name.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p or re.match(r"^[A-Za-z]:", p) for p in parts):
        raise StorageBrokerError(f"object name {name!r} cannot be a path below the destination", code="unsafe_object_name", status=0, source="broker")
    target = root.joinpath(*parts)
    if root not in target.resolve().parents:
        raise StorageBrokerError(f"object name {name!r} leads outside the destination", code="unsafe_object_name", status=0, source="broker")
    return target


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, wanted: bool) -> Any:
    if not wanted:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024)


def _sendable(headers: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in ("content-length", "host")}


class _Upload:
    """One upload's flows. The same flows as clients/js (src/upload.ts)."""

    def __init__(
        self,
        client: AsyncClient,
        bucket: str,
        object: str,
        source: _Source,
        content_type: str,
        metadata: dict[str, str] | None,
        chunk_size: int,
        concurrency: int,
        expires_in: int | None,
        on_progress: Progress | None,
    ) -> None:
        self.c, self.bucket, self.object, self.source = client, bucket, object, source
        self.type, self.metadata, self.chunk, self.concurrency, self.expires_in = content_type, metadata, chunk_size, max(1, concurrency), expires_in
        self.on_progress = on_progress
        self.done = 0

    def progress(self, done: int) -> None:
        self.done = done
        if self.on_progress:
            self.on_progress(min(done, self.source.size), self.source.size)

    async def ok(self, response: httpx.Response, expires_at: str | None) -> httpx.Response:
        if not response.is_success:
            raise storage_error(response.status_code, response.text, expires_at)
        return response

    async def run(self, flow: Flow) -> str:
        size = self.source.size
        known = self.c._protocols.get(self.bucket)
        if flow == "form":
            await self.form()
            return "form"
        # An S3 multipart upload holds at least one byte: an empty object is one PUT there.
        chunked = (flow == "chunked" and not (size == 0 and known == "s3-sigv4")) or (flow == "auto" and size > self.chunk)
        if chunked and known == "gcs-v4":
            await self.resumable()
            return "resumable"
        if chunked and known == "s3-sigv4":
            await self.multipart()
            return "multipart"
        signed = await self.c.sign(self.bucket, self.object, "PUT", content_type=self.type, size=size, metadata=self.metadata, expires_in=self.expires_in)
        protocol = signed["protocol"]
        if not chunked or (protocol == "s3-sigv4" and size == 0):
            await self.single(signed)
            return "single"
        if protocol == "gcs-v4":
            await self.resumable()
            return "resumable"
        if protocol == "s3-sigv4":
            await self.multipart()
            return "multipart"
        if protocol == "azure-sas":
            await self.blocks(signed)
            return "blocks"
        raise StorageBrokerError(f"no chunked upload for protocol {protocol}", code="unsupported_by_client", status=0, source="broker")

    async def single(self, signed: SignResponse) -> None:
        body = await self.source.read(0, self.source.size)
        await self.ok(await self.c._send("PUT", signed["url"], headers=_sendable(signed["headers"]), content=body), signed["expires_at"])
        self.progress(self.source.size)

    async def form(self) -> None:
        policy = await self.c.upload_policy(self.bucket, self.object, content_type=self.type, max_size=self.source.size, expires_in=self.expires_in)
        body = await self.source.read(0, self.source.size)
        # The file comes last in a policy form (httpx writes `data` fields before `files`).
        for attempt in range(self.c._retries + 1):
            try:
                response = await self.c._http.post(policy["url"], data=policy["fields"], files={"file": (self.object.rsplit("/", 1)[-1], body, self.type)})
            except httpx.TransportError as e:
                if attempt >= self.c._retries:
                    raise network_error("storage", e) from e
                await asyncio.sleep(_backoff(attempt))
                continue
            if _retryable(response.status_code) and attempt < self.c._retries:
                await asyncio.sleep(_backoff(attempt))
                continue
            await self.ok(response, policy["expires_at"])
            break
        self.progress(self.source.size)

    async def resumable(self) -> None:
        """GCS: a resumable session, chunks PUT in order; after a dropped connection or a 5xx the
        session is asked what it has committed and the upload goes on from there."""
        size = self.source.size
        signed = await self.c.sign(self.bucket, self.object, "RESUMABLE", content_type=self.type, max_size=size, metadata=self.metadata, expires_in=self.expires_in)
        started = await self.ok(await self.c._send("POST", signed["url"], headers=_sendable(signed["headers"])), signed["expires_at"])
        session = started.headers.get("location")
        if not session:
            raise StorageBrokerError("storage started no upload session", code=StorageCodes.OTHER, status=started.status_code, source="storage")
        chunk = max(256 * 1024, self.chunk // (256 * 1024) * 256 * 1024)
        offset, failures = 0, 0
        while True:
            end = min(offset + chunk, size)
            content_range = "bytes */0" if size == 0 else f"bytes {offset}-{end - 1}/{size}"
            response: httpx.Response | None
            try:
                response = await self.c._http.put(session, headers={"Content-Range": content_range}, content=await self.source.read(offset, end - offset))
            except httpx.TransportError:
                response = None  # the connection dropped: ask the session below
            if response is not None and response.status_code in (200, 201):
                self.progress(size)
                return
            if response is not None and response.status_code == 308:
                committed = _committed(response)
                failures = 0 if committed > offset else failures + 1
                offset = committed
                self.progress(offset)
                if failures > self.c._retries:
                    raise storage_error(308, "<Error><Message>the session stores no more of the upload</Message></Error>")
                continue
            if response is not None and not _retryable(response.status_code):
                await self.ok(response, signed["expires_at"])
            failures += 1
            if failures > self.c._retries:
                if response is None:
                    raise StorageBrokerError("storage cannot be reached", code="network_error", status=0, source="network")
                raise storage_error(response.status_code, response.text)
            await asyncio.sleep(_backoff(failures - 1))
            try:
                status = await self.c._http.put(session, headers={"Content-Range": f"bytes */{size}"}, content=b"")
            except httpx.TransportError:
                continue
            if status.status_code in (200, 201):
                self.progress(size)
                return
            if status.status_code == 308:
                offset = _committed(status)
                self.progress(offset)
            elif not _retryable(status.status_code):
                raise storage_error(status.status_code, status.text)

    async def multipart(self) -> None:
        """S3: create, PUT the parts (several at once, each retried), complete with the ETags. Any
        failure, or cancellation, aborts the upload once no part is in flight any more, so that
        no part is left stored."""
        size = self.source.size

        async def step(action: str, **fields: Any) -> MultipartResponse:
            body = {"bucket": self.bucket, "object": self.object, "action": action, "expires_in": self.expires_in, **fields}
            return cast(MultipartResponse, await self.c._api("POST", "/v1/sign/multipart", body))

        async def send(request: MultipartUrl, content: bytes | None = None) -> httpx.Response:
            return await self.c._send(request["method"], request["url"], headers=_sendable(request["headers"]), content=content)

        created = await step("create", content_type=self.type, size=size, metadata=self.metadata)
        answer = await self.ok(await send(created["requests"][0]), created["expires_at"])
        found = re.search(r"<UploadId>([^<]+)</UploadId>", answer.text)
        if not found:
            raise StorageBrokerError("storage started no multipart upload", code=StorageCodes.OTHER, status=answer.status_code, source="storage")
        upload_id = found.group(1)
        try:
            part_size = created.get("part_size") or max(5 * MIB, self.chunk, -(-size // 10_000))
            total = -(-size // part_size)
            etags: list[str] = [""] * total
            group = max(8, 2 * self.concurrency)
            groups: dict[int, asyncio.Task[MultipartResponse]] = {}
            numbers = iter(range(1, total + 1))
            sent = [0] * total

            async def worker() -> None:
                for n in numbers:
                    start = (n - 1) // group * group + 1
                    if start not in groups:
                        groups[start] = asyncio.ensure_future(step("parts", upload_id=upload_id, size=size, part_size=part_size, first_part=start, part_count=min(group, total - start + 1)))
                    signed = await groups[start]
                    part = next(r for r in signed["requests"] if r.get("part_number") == n)
                    body = await self.source.read((n - 1) * part_size, part_size)
                    response = await self.ok(await send(part, body), signed["expires_at"])
                    etag = response.headers.get("etag")
                    if not etag:
                        raise StorageBrokerError("storage did not show a part's ETag", code=StorageCodes.OTHER, status=response.status_code, source="storage")
                    etags[n - 1] = etag
                    sent[n - 1] = len(body)
                    self.progress(sum(sent))

            workers = [asyncio.ensure_future(worker()) for _ in range(min(total, self.concurrency))]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                # Every part has stopped before the abort: one still in flight would be stored again.
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            complete = await step("complete", upload_id=upload_id)
            parts = "".join(f"<Part><PartNumber>{i + 1}</PartNumber><ETag>{_xml(e)}</ETag></Part>" for i, e in enumerate(etags))
            done = await self.ok(await send(complete["requests"][0], f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()), complete["expires_at"])
            # S3 may answer 200 and still fail the completion, with an <Error> body.
            if "<Error>" in done.text:
                raise storage_error(500, done.text)
            self.progress(size)
        except BaseException:
            # Stored parts cost money until the upload is aborted; shielded from cancellation.
            async def abort() -> None:
                request = (await step("abort", upload_id=upload_id))["requests"][0]
                await send(request)

            try:
                await asyncio.shield(abort())
            except Exception:  # noqa: BLE001 (the upload's own error matters more)
                pass
            raise

    async def blocks(self, signed: SignResponse) -> None:
        """Azure: Put Block per chunk on the PUT URL (its SAS has create and write), then Put Block List."""
        size = self.source.size
        total = -(-size // self.chunk)
        ids = [base64.b64encode(f"block-{i:06d}".encode()).decode() for i in range(total)]
        from urllib.parse import quote

        def at(query: str) -> str:
            return f"{signed['url']}&{query}"

        numbers = iter(range(total))
        sent = [0] * total

        async def worker() -> None:
            for i in numbers:
                body = await self.source.read(i * self.chunk, self.chunk)
                target = at(f"comp=block&blockid={quote(ids[i], safe='')}")
                await self.ok(await self.c._send("PUT", target, content=body), signed["expires_at"])
                sent[i] = len(body)
                self.progress(sum(sent))

        await asyncio.gather(*(worker() for _ in range(min(total, self.concurrency))))
        headers = {"x-ms-blob-content-type": self.type}
        headers.update({k: v for k, v in signed["headers"].items() if k.lower().startswith("x-ms-meta-")})
        blocks = "".join(f"<Latest>{i}</Latest>" for i in ids)
        body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{blocks}</BlockList>'.encode()
        await self.ok(await self.c._send("PUT", at("comp=blocklist"), headers=headers, content=body), signed["expires_at"])
        self.progress(size)


def _committed(response: httpx.Response) -> int:
    """The offset after the last byte a 308 says is stored (``Range: bytes=0-N``); none: 0."""
    found = re.match(r"bytes=0-(\d+)", response.headers.get("range", ""))
    return int(found.group(1)) + 1 if found else 0


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
