"""The broker under test: scripts/test-clients starts `storage-broker dev` on an emulator and sets
BROKER_URL and BACKEND (gcs, s3 or azure); tokens come from the dev issuer."""

from __future__ import annotations

import hashlib
import os
import secrets
import time

import httpx
import pytest

import storage_broker

BROKER = os.environ.get("BROKER_URL", "")
BACKEND = os.environ.get("BACKEND", "gcs")
PROTOCOL = {"gcs": "gcs-v4", "s3": "s3-sigv4", "azure": "azure-sas"}[BACKEND]
CHUNKED = {"gcs": "resumable", "s3": "multipart", "azure": "blocks"}[BACKEND]

if not BROKER:
    pytest.exit("BROKER_URL is not set: run the suite through scripts/test-clients", returncode=2)


def token(sub: str) -> str:
    answer = httpx.get(f"{BROKER}/dev/token", params={"sub": sub})
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def unique(name: str) -> str:
    return f"{name}-{int(time.time() * 1000):x}-{secrets.token_hex(3)}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def client() -> storage_broker.Client:
    return storage_broker.Client(BROKER, token=token("pyuser"))


@pytest.fixture(scope="session")
def bucket(client: storage_broker.Client) -> str:
    return client.me()["personal_bucket"]
