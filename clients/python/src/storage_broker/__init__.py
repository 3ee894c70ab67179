"""Client for storage-broker: signed URLs, uploads and downloads straight to GCS, S3 or Azure
(single PUT, GCS resumable, S3 multipart, Azure blocks), prefix manifests and downloads, and an
fsspec filesystem (``storage-broker://bucket/path``) for pandas, pyarrow and dask.

    import storage_broker
    broker = storage_broker.Client("http://127.0.0.1:8080", token=TOKEN)
    bucket = broker.me()["personal_bucket"]
    broker.upload(bucket, "hello.txt", b"hello", content_type="text/plain")
"""

from .aio import AsyncClient
from .errors import StorageBrokerError, StorageCodes
from .sync import Client

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "StorageBrokerError", "StorageCodes", "__version__"]
