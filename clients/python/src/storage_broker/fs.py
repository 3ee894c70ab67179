"""An fsspec filesystem over the broker: ``storage-broker://BUCKET/PATH``. Reads are range GETs on
signed URLs, writes upload through the client's flows, listings are the broker's (only what the
caller may read). So ``pandas.read_csv``, ``pyarrow`` and ``dask`` work on the broker's buckets:

    pandas.read_csv("storage-broker://u-alice/data.csv",
                    storage_options={"base_url": "http://127.0.0.1:8080", "token": TOKEN})

``base_url`` and ``token`` default to the environment's ``STORAGE_BROKER_URL`` and
``STORAGE_BROKER_TOKEN``. Registered with fsspec under the protocol ``storage-broker`` (an entry
point), so no import is needed.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from fsspec.asyn import AsyncFileSystem, sync
from fsspec.spec import AbstractBufferedFile

from .aio import AsyncClient
from .errors import StorageBrokerError, StorageCodes
from .types import SignResponse


class StorageBrokerFileSystem(AsyncFileSystem):  # type: ignore[misc]
    protocol = ("storage-broker",)
    root_marker = ""

    def __init__(self, base_url: str | None = None, token: str | None = None, get_token: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url or os.environ.get("STORAGE_BROKER_URL", "http://127.0.0.1:8080")
        self._token = token or os.environ.get("STORAGE_BROKER_TOKEN")
        self._get_token = get_token
        self._client: AsyncClient | None = None
        # Signed GETs by path, reused until a minute before they expire: a file read in many
        # ranges asks the broker once.
        self._signed: dict[str, tuple[float, SignResponse]] = {}

    @property
    def client(self) -> AsyncClient:
        if self._client is None:
            self._client = AsyncClient(self.base_url, token=self._token, get_token=self._get_token)
        return self._client

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        path = StorageBrokerFileSystem._strip_protocol(path).strip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    # -- listing

    async def _ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        bucket, key = self._split(path)
        if not bucket:
            entries = [{"name": b["name"], "size": 0, "type": "directory"} for b in await self.client.buckets()]
            return entries if detail else [e["name"] for e in entries]
        prefix = f"{key}/" if key else ""
        files: list[dict[str, Any]] = []
        dirs: dict[str, dict[str, Any]] = {}
        async for page in self.client.list(bucket, prefix):
            for o in page["objects"]:
                rest = o["name"][len(prefix) :]
                if "/" in rest:
                    name = f"{bucket}/{prefix}{rest.split('/', 1)[0]}"
                    dirs.setdefault(name, {"name": name, "size": 0, "type": "directory"})
                else:
                    files.append(_entry(bucket, o))
        if not files and not dirs and key:
            # Perhaps a file: fsspec lists a file as itself.
            info = await self._info(path)
            if info["type"] == "file":
                files.append(info)
            else:
                raise FileNotFoundError(path)
        entries = files + list(dirs.values())
        return entries if detail else [e["name"] for e in entries]

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        bucket, key = self._split(path)
        if not key:
            return {"name": bucket, "size": 0, "type": "directory"}
        async for page in self.client.list(bucket, key):
            for o in page["objects"]:
                if o["name"] == key:
                    return _entry(bucket, o)
                if o["name"].startswith(key + "/"):
                    return {"name": f"{bucket}/{key}", "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    # -- bytes

    async def _signed_get(self, path: str) -> SignResponse:
        cached = self._signed.get(path)
        if cached and cached[0] - 60 > time.time():
            return cached[1]
        bucket, key = self._split(path)
        try:
            signed = await self.client.sign(bucket, key, "GET")
        except StorageBrokerError as e:
            if e.code == "not_found":
                raise FileNotFoundError(path) from e
            raise
        expires = datetime.fromisoformat(signed["expires_at"].replace("Z", "+00:00")).timestamp()
        self._signed[path] = (expires, signed)
        return signed

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        if start is not None and start < 0 or end is not None and end < 0:
            size = (await self._info(path))["size"]
            start = size + start if start is not None and start < 0 else start
            end = size + end if end is not None and end < 0 else end
        if start is not None and end is not None and end <= start:
            return b""
        signed = await self._signed_get(path)
        ranged = None if start in (None, 0) and end is None else (start or 0, end)
        try:
            return (await self.client.fetch_signed(signed, range=ranged)).content
        except StorageBrokerError as e:
            if e.code == StorageCodes.NOT_FOUND:
                raise FileNotFoundError(path) from e
            if e.code == StorageCodes.EXPIRED:
                self._signed.pop(path, None)
                return await self._cat_file(path, start, end)
            raise

    async def _pipe_file(self, path: str, value: bytes, **kwargs: Any) -> None:
        bucket, key = self._split(path)
        await self.client.upload(bucket, key, value, content_type=kwargs.get("content_type", "application/octet-stream"))
        self._signed.pop(path, None)

    async def _rm_file(self, path: str, **kwargs: Any) -> None:
        bucket, key = self._split(path)
        await self.client.delete(bucket, key)
        self._signed.pop(path, None)

    async def _rm(self, path: str | list[str], recursive: bool = False, **kwargs: Any) -> None:
        paths = await self._expand_path(path, recursive=recursive)
        for p in paths:
            if (await self._info(p))["type"] == "file":
                await self._rm_file(p)

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # prefixes exist by their objects

    async def _makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> BrokerFile:
        return BrokerFile(self, path, mode, block_size or 5 * 1024 * 1024, autocommit, cache_options=cache_options, **kwargs)


class BrokerFile(AbstractBufferedFile):  # type: ignore[misc]
    """Reads fetch ranges; writes are kept until close and then uploaded in one go (in chunks by
    the storage's own flow when large)."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        return sync(self.fs.loop, self.fs._cat_file, self.path, start, end)  # type: ignore[no-any-return]

    def _initiate_upload(self) -> None:
        pass

    def _upload_chunk(self, final: bool = False) -> bool:
        if not final:
            return False  # keep buffering: one upload at close
        self.buffer.seek(0)
        sync(self.fs.loop, self.fs._pipe_file, self.path, self.buffer.read(), content_type=self.kwargs.get("content_type", "application/octet-stream"))
        return True


def _entry(bucket: str, o: Any) -> dict[str, Any]:
    return {"name": f"{bucket}/{o['name']}", "size": o.get("size") or 0, "type": "file", "content_type": o.get("content_type"), "updated": o.get("updated")}
