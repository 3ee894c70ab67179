"""Tries S3 operations with boto3 as a user configures it for vended credentials: the profile
named by AWS_PROFILE in AWS_CONFIG_FILE, whose credential_process is `storage-broker
credentials`. Prints one JSON object: each operation's outcome, "ok" (with what it read) or
"denied: CODE". Asserting is the caller's job.

usage: s3_credentials_check.py ENDPOINT BUCKET PREFIX_INSIDE PREFIX_OUTSIDE
"""
import json
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket, inside, outside = sys.argv[1:5]
s3 = boto3.Session().client(
    "s3",
    endpoint_url=endpoint,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
outcomes = {}


def attempt(name, operation):
    try:
        outcomes[name] = "ok: " + str(operation())
    except ClientError as error:
        outcomes[name] = "denied: " + error.response.get("Error", {}).get("Code", "?")


def listed(prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


attempt("list inside", lambda: listed(inside))
attempt("get inside", lambda: s3.get_object(Bucket=bucket, Key=inside + "a.txt")["Body"].read().decode())
attempt("put inside", lambda: s3.put_object(Bucket=bucket, Key=inside + "boto3.txt", Body=b"boto3")["ETag"] != "")
attempt("get outside", lambda: s3.get_object(Bucket=bucket, Key=outside + "b.txt")["Body"].read().decode())
attempt("list outside", lambda: listed(outside))
attempt("list bucket", lambda: listed(""))
attempt("put outside", lambda: s3.put_object(Bucket=bucket, Key=outside + "boto3.txt", Body=b"x")["ETag"] != "")
print(json.dumps(outcomes))
