#!/usr/bin/env python3
"""A batch job on storage-broker's Python client: every object under a prefix that the job's
identity may read, downloaded in parallel straight from storage (signed URLs from one streamed
manifest), with a progress bar. Run it again after an interruption and it skips the files that
are complete; a file is renamed into place only once all its bytes are there.

    TOKEN=$(cat token.jwt) python3 download.py --broker https://broker.example.com \\
        --bucket p-vision --prefix images/2026/ --dest ./images --concurrency 16
"""

from __future__ import annotations

import argparse
import os
import sys

import storage_broker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default=os.environ.get("BROKER_URL", "http://127.0.0.1:8080"), help="the broker's URL (BROKER_URL)")
    parser.add_argument("--token-file", help="a file holding the bearer token (else TOKEN)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="only objects under this prefix (their names below it become paths below --dest)")
    parser.add_argument("--dest", required=True, help="the directory to write into")
    parser.add_argument("--concurrency", type=int, default=8, help="downloads at once (default 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args()

    token = open(args.token_file).read().strip() if args.token_file else os.environ.get("TOKEN", "")
    if not token:
        print("download.py: no token: give --token-file or set TOKEN", file=sys.stderr)
        return 2
    try:
        with storage_broker.Client(args.broker, token=token) as broker:
            done = broker.download_prefix(args.bucket, args.prefix, args.dest, concurrency=args.concurrency, progress=not args.quiet)
    except storage_broker.StorageBrokerError as e:
        print(f"download.py: {e.code}: {e}", file=sys.stderr)
        return 1
    print(f"{done['downloaded']} downloaded ({done['bytes']} bytes), {done['skipped']} already complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
