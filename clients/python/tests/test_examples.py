"""examples/batch-download/download.py as a user runs it, against the running broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import storage_broker

from conftest import BROKER, token, unique

SCRIPT = Path(__file__).parents[3] / "examples" / "batch-download" / "download.py"


def test_batch_download_example_fetches_then_resumes(tmp_path: Path) -> None:
    jwt = token("py-batch")
    client = storage_broker.Client(BROKER, token=jwt)
    bucket = client.me()["personal_bucket"]
    prefix = unique("batch") + "/"
    files = {f"img-{i:03d}.bin": os.urandom(512 + i) for i in range(40)}
    for name, data in files.items():
        client.upload(bucket, prefix + name, data)
    (tmp_path / "token.jwt").write_text(jwt)
    args = [sys.executable, str(SCRIPT), "--broker", BROKER, "--token-file", str(tmp_path / "token.jwt"), "--bucket", bucket, "--prefix", prefix, "--dest", str(tmp_path / "out"), "--quiet"]
    first = subprocess.run(args, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == f"40 downloaded ({sum(map(len, files.values()))} bytes), 0 already complete"
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    again = subprocess.run(args, capture_output=True, text=True, check=True)
    assert again.stdout.strip() == "0 downloaded (0 bytes), 40 already complete"
    refused = subprocess.run([*args[:4], "--bucket", "u-nobody-at-all", "--dest", str(tmp_path / "x"), "--quiet"], capture_output=True, text=True, env={**os.environ, "TOKEN": jwt})
    assert refused.returncode == 1 and refused.stderr.startswith("download.py: not_found: "), refused.stderr
