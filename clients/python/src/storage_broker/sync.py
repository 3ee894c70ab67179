"""The synchronous client: the asynchronous one run on an event loop of its own, in a daemon
thread, so that it works the same in a script, a thread pool, or a notebook whose own loop is
already running (the way fsspec runs its asynchronous filesystems)."""

from __future__ import annotations

import builtins

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from . import aio
from .types import BatchResult, BucketView, ManifestLine, Me, ObjectList, SignResponse, UploadPolicyResponse

T = TypeVar("T")
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _io_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="storage-broker-io", daemon=True).start()
        return _loop


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, _io_loop()).result()


def _iterate(generator: AsyncIterator[T]) -> Iterator[T]:
    async def step() -> tuple[bool, T | None]:
        try:
            return True, await generator.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = _run(step())
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(generator, "aclose", None)
        if close is not None:
            _run(close())


class Client:
    """``Client(base_url, token=…)`` or ``get_token=``: the calls of :class:`AsyncClient`, blocking.
    Streams (``list``, ``batch``, ``manifest``) are iterators that fetch as they are read."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        get_token: Callable[[], str | Awaitable[str]] | None = None,
        retries: int = 4,
        timeout: float = 120.0,
    ) -> None:
        async def make() -> aio.AsyncClient:
            return aio.AsyncClient(base_url, token=token, get_token=get_token, retries=retries, timeout=timeout)

        self._async = _run(make())

    def close(self) -> None:
        _run(self._async.aclose())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def me(self) -> Me:
        return _run(self._async.me())

    def buckets(self) -> list[BucketView]:
        return _run(self._async.buckets())

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectList]:
        return _iterate(self._async.list(bucket, prefix))

    def sign(self, bucket: str, object: str, method: str = "GET", **fields: Any) -> SignResponse:
        return _run(self._async.sign(bucket, object, method, **fields))

    def batch(self, items: builtins.list[dict[str, Any]], *, expires_in: int | None = None) -> Iterator[BatchResult]:
        return _iterate(self._async.batch(items, expires_in=expires_in))

    def manifest(self, bucket: str, prefix: str = "", *, expires_in: int | None = None) -> Iterator[ManifestLine]:
        return _iterate(self._async.manifest(bucket, prefix, expires_in=expires_in))

    def upload_policy(self, bucket: str, object: str, **fields: Any) -> UploadPolicyResponse:
        return _run(self._async.upload_policy(bucket, object, **fields))

    def upload(self, bucket: str, object: str, data: aio.Data, **options: Any) -> dict[str, Any]:
        return _run(self._async.upload(bucket, object, data, **options))

    def download(self, bucket: str, object: str, *, range: tuple[int, int | None] | None = None) -> bytes:
        return _run(self._async.download(bucket, object, range=range))

    def fetch_signed(self, signed: SignResponse | ManifestLine | BatchResult, *, range: tuple[int, int | None] | None = None) -> bytes:
        return _run(self._async.fetch_signed(signed, range=range)).content

    def delete(self, bucket: str, object: str) -> None:
        _run(self._async.delete(bucket, object))

    def download_prefix(self, bucket: str, prefix: str, dest: str, *, concurrency: int = 8, progress: bool = True) -> dict[str, int]:
        return _run(self._async.download_prefix(bucket, prefix, dest, concurrency=concurrency, progress=progress))
