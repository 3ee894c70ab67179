"""python google-cloud-storage's `Blob.generate_signed_url(version="v4")` rate on this machine,
for the same download link benches/signing.rs signs. Prints JSON: the median URLs/s of 5 rounds."""

import datetime
import json
import statistics
import sys
import time

from google.cloud import storage
from google.oauth2 import service_account

ROUNDS, PER_ROUND = 5, 2000

creds = service_account.Credentials.from_service_account_file(sys.argv[1])
client = storage.Client(project="storage-broker-bench", credentials=creds)
bucket = client.bucket("acme-user-data")
rates = []
for _ in range(ROUNDS):
    start = time.perf_counter()
    for i in range(PER_ROUND):
        bucket.blob(f"users/alice/photos/2026/11/IMG_{i:06}.jpg").generate_signed_url(
            version="v4",
            expiration=datetime.timedelta(seconds=900),
            method="GET",
            response_disposition="attachment",
        )
    rates.append(PER_ROUND / (time.perf_counter() - start))
print(json.dumps({"median_urls_per_s": statistics.median(rates), "rounds": rates}))
