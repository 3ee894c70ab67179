"""Makes tests/known_answers/cases.json: expected V4 signatures from implementations that share no
code with storage-broker. Run it through scripts/make-known-answers.sh, which pins the versions.

- RSA URLs: python google-cloud-storage's own `_signing.generate_signed_url_v4`, with
  `_request_timestamp` fixed, on the resource path that `Blob.generate_signed_url` builds.
- Query names that are prefixes of one another: python-storage sorts `name=value` strings, which
  the spec does not (see ../shared/conformance/gcs-v4/README.md). For that case its `_url_encode`
  is replaced by a sort on (encoded name, encoded value), and that ordering is checked against
  botocore's SigV4 canonical query string, which sorts so.
- HMAC URLs: python-storage cannot sign with HMAC keys, so `reference_hmac_url` below follows
  the GCS docs (canonical request, then the GOOG4 key derivation). Its canonical request is
  checked against python-storage's on the RSA cases, and its key derivation, run with AWS's
  constants, against botocore's SigV4 signature.
- RSA POST policy: python-storage's `Client.generate_signed_post_policy_v4` with its clock fixed.
"""

import base64
import datetime
import hashlib
import hmac
import json
import re
import sys
import urllib.parse
from importlib.metadata import version
from pathlib import Path

import botocore.auth
import botocore.awsrequest
import botocore.credentials
from google.cloud import storage
from google.cloud.storage import _signing
from google.cloud.storage import client as client_module
from google.oauth2 import service_account

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
SA = json.loads((FIXTURES / "test-service-account.json").read_text())
HMAC_KEY = json.loads((FIXTURES / "test-hmac-key.json").read_text())
CREDS = service_account.Credentials.from_service_account_info(SA)
PYSTORAGE = f"python google-cloud-storage {version('google-cloud-storage')}"
BOTOCORE = f"botocore {version('botocore')}"
AT = "2026-11-24T10:20:30Z"
STAMP = "20261124T102030Z"


def blob_path(bucket, obj):
    """The resource path Blob.generate_signed_url signs (path style)."""
    if obj is None:
        return f"/{bucket}"
    return f"/{bucket}/" + urllib.parse.quote(obj.encode("utf-8"), safe=b"/~")


def python_storage_url(bucket, obj, method, expires, headers, query):
    # python-storage takes a dict: a repeated header is given joined with ",", the form the
    # spec signs it in.
    if headers:
        joined = {}
        for name, value in headers:
            joined[name.lower()] = f"{joined[name.lower()]},{normalise(value)}" if name.lower() in joined else value
        headers = joined
    return _signing.generate_signed_url_v4(
        CREDS,
        resource=blob_path(bucket, obj),
        expiration=expires,
        api_access_endpoint="https://storage.googleapis.com",
        method=method,
        headers=headers,
        query_parameters=dict(query) if query else None,
        _request_timestamp=STAMP,
    )


def normalise(value):
    """Trimmed, runs of spaces and tabs collapsed to one space."""
    return " ".join(w for w in re.split(r"[ \t]", value) if w)


def spec_sorted_query(params):
    pairs = sorted((_signing._quote_param(k), _signing._quote_param(v)) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def botocore_query(params):
    auth = botocore.auth.SigV4Auth(botocore.credentials.Credentials("a", "b"), "s3", "us-east-1")
    return auth._canonical_query_string_params(params)


def canonical_request(method, path, query, headers, host, algorithm, credential_id, expires):
    """The GCS docs' canonical request, written independently of python-storage."""
    merged = {"host": [host]}
    for name, value in headers:
        merged.setdefault(name.lower(), []).append(normalise(value))
    canon_headers = sorted((k, ",".join(v)) for k, v in merged.items())
    signed = ";".join(k for k, _ in canon_headers)
    params = dict(query)
    params.update(
        {
            "X-Goog-Algorithm": algorithm,
            "X-Goog-Credential": f"{credential_id}/{STAMP[:8]}/auto/storage/goog4_request",
            "X-Goog-Date": STAMP,
            "X-Goog-Expires": str(expires),
            "X-Goog-SignedHeaders": signed,
        }
    )
    canon_query = spec_sorted_query(params)
    assert canon_query == botocore_query(params), "query ordering disagrees with botocore"
    payload = dict(canon_headers).get("x-goog-content-sha256", "UNSIGNED-PAYLOAD")
    lines = "".join(f"{k}:{v}\n" for k, v in canon_headers)
    return f"{method}\n{path}\n{canon_query}\n{lines}\n{signed}\n{payload}", canon_query


def string_to_sign(algorithm, canonical):
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{algorithm}\n{STAMP}\n{STAMP[:8]}/auto/storage/goog4_request\n{digest}"


def derive(secret, prefix, date, region, service, terminator):
    key = (prefix + secret).encode()
    for part in (date, region, service, terminator):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_derivation_against_botocore():
    secret, sts = HMAC_KEY["secret"], "AWS4-HMAC-SHA256\n20261124T102030Z\nscope\nabc"
    auth = botocore.auth.SigV4Auth(botocore.credentials.Credentials("id", secret), "s3", "us-east-1")
    request = botocore.awsrequest.AWSRequest(method="GET", url="https://example.com/")
    request.context["timestamp"] = STAMP
    ours = hmac.new(derive(secret, "AWS4", STAMP[:8], "us-east-1", "s3", "aws4_request"), sts.encode(), hashlib.sha256)
    assert ours.hexdigest() == auth.signature(sts, request), "HMAC key derivation disagrees with botocore"


def reference_hmac_url(bucket, obj, method, expires, headers, query):
    access_id, secret = HMAC_KEY["metadata"]["accessId"], HMAC_KEY["secret"]
    path = blob_path(bucket, obj)
    canonical, canon_query = canonical_request(
        method, path, query, headers, "storage.googleapis.com", "GOOG4-HMAC-SHA256", access_id, expires
    )
    sts = string_to_sign("GOOG4-HMAC-SHA256", canonical)
    key = derive(secret, "GOOG4", STAMP[:8], "auto", "storage", "goog4_request")
    signature = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    url = f"https://storage.googleapis.com{path}?{canon_query}&X-Goog-Signature={signature}"
    return url, canonical, sts


def url_case(name, made_by, key, bucket, obj, method, expires, headers=(), query=(), url=None):
    headers, query = list(headers), list(query)
    # Cross-check: our reference canonical request matches python-storage's string-to-sign.
    canonical, _ = canonical_request(
        method, blob_path(bucket, obj), query, headers, "storage.googleapis.com", "GOOG4-RSA-SHA256",
        SA["client_email"], expires,
    )
    if key == "rsa":
        expected_url = url
        if expected_url is None:
            expected_url = python_storage_url(bucket, obj, method, expires, headers or None, query)
            assert f"X-Goog-SignedHeaders={urllib.parse.quote(canonical.split(chr(10))[-2], safe='~')}" in expected_url
            sig = bytes.fromhex(expected_url.rsplit("X-Goog-Signature=", 1)[1])
            assert CREDS.sign_bytes(string_to_sign("GOOG4-RSA-SHA256", canonical).encode()) == sig, name
        expected = {"url": expected_url}
    else:
        expected_url, canonical, sts = reference_hmac_url(bucket, obj, method, expires, headers, query)
        expected = {"url": expected_url, "canonical_request": canonical, "string_to_sign": sts}
    return {
        "name": name,
        "made_by": made_by,
        "key": key,
        "kind": "url",
        "input": {
            "bucket": bucket, "object": obj, "method": method, "expires": expires, "at": AT,
            "headers": headers, "query": query,
        },
        "expected": expected,
    }


def prefix_query_case():
    query = [("a", "1"), ("a-b", "2"), ("ab", "3"), ("a.b", "4")]
    original = _signing._url_encode
    _signing._url_encode = spec_sorted_query
    try:
        url = python_storage_url("kat-bucket", "prefix/names", "GET", 600, None, query)
    finally:
        _signing._url_encode = original
    differs = python_storage_url("kat-bucket", "prefix/names", "GET", 600, None, query) != url
    assert differs, "python-storage's own sort should differ on this case"
    return url_case(
        "query_names_prefixes_of_one_another",
        f"{PYSTORAGE} generate_signed_url_v4 with its name=value sort replaced by a sort on "
        f"(encoded name, encoded value), checked equal to {BOTOCORE}'s SigV4 canonical query string",
        "rsa", "kat-bucket", "prefix/names", "GET", 600, query=query, url=url,
    )


def post_policy_case():
    fixed = datetime.datetime(2026, 11, 24, 10, 20, 30, tzinfo=datetime.timezone.utc)
    client_module._NOW = lambda tz=None: fixed
    _signing._NOW = lambda tz=None: fixed
    client = storage.Client(project="storage-broker-test", credentials=CREDS)
    fields = {"content-type": "image/png", "x-goog-meta-title": "Été ✓", "x-ignore-note": "not signed"}
    conditions = [["starts-with", "$content-type", "image/"], ["content-length-range", 1, 5242880]]
    policy = client.generate_signed_post_policy_v4(
        "kat-bucket", "uploads/photo é.png", expiration=900, conditions=[list(c) for c in conditions], fields=fields
    )
    return {
        "name": "post_policy_with_conditions_and_unicode_metadata",
        "made_by": f"{PYSTORAGE} Client.generate_signed_post_policy_v4 with its clock fixed at {AT}",
        "key": "rsa",
        "kind": "post_policy",
        "input": {
            "bucket": "kat-bucket", "object": "uploads/photo é.png", "expires": 900, "at": AT,
            "fields": sorted(fields.items()), "starts_with": [["content-type", "image/"]],
            "content_length_range": [1, 5242880],
        },
        "expected": {"url": policy["url"], "fields": sorted(policy["fields"].items())},
    }


def main():
    check_derivation_against_botocore()
    made_rsa = f"{PYSTORAGE} _signing.generate_signed_url_v4 with _request_timestamp={STAMP}"
    made_hmac = (
        "the GCS docs' HMAC algorithm in tests/known_answers/generate.py (canonical request checked "
        f"against {PYSTORAGE}, key derivation against {BOTOCORE}'s SigV4 with AWS's constants)"
    )
    cases = [
        url_case("unicode_object_name", made_rsa, "rsa", "kat-bucket", "photos/été 2024/日本語 ✓ 😀.jpg", "GET", 900),
        url_case(
            "reserved_characters_in_object_name", made_rsa, "rsa", "kat-bucket",
            "a?b#c&d=e+f;g,h:i@j$k!l'm(n)o*p[q]r%s~t u\"v<w>x{y}z|\\^`", "GET", 60,
        ),
        url_case("leading_slash", made_rsa, "rsa", "kat-bucket", "/leading/slash", "GET", 60),
        url_case("double_leading_slash_and_dots", made_rsa, "rsa", "kat-bucket", "//a/./b/../c", "HEAD", 60),
        url_case(
            "put_with_content_type_and_length_range", made_rsa, "rsa", "kat-bucket", "up/load.bin", "PUT", 900,
            headers=[("Content-Type", "application/octet-stream"), ("x-goog-content-length-range", "0,1048576")],
        ),
        url_case(
            "resumable_start", made_rsa, "rsa", "kat-bucket", "big/file.iso", "POST", 3600,
            headers=[("x-goog-resumable", "start")],
        ),
        url_case(
            "repeated_headers_joined", made_rsa, "rsa", "kat-bucket", "obj", "GET", 60,
            headers=[("x-goog-meta-tag", "one"), ("X-Goog-Meta-Tag", "  two   words "), ("x-goog-meta-a", "z")],
        ),
        url_case(
            "bucket_listing", made_rsa, "rsa", "kat-bucket", None, "GET", 300,
            query=[("prefix", "users/alice/"), ("delimiter", "/")],
        ),
        url_case(
            "response_overrides", made_rsa, "rsa", "kat-bucket", "report.pdf", "GET", 300,
            query=[("response-content-disposition", 'attachment; filename="r é.pdf"'), ("response-content-type", "application/pdf")],
        ),
        prefix_query_case(),
        url_case("hmac_get", made_hmac, "hmac", "kat-bucket", "photos/été.jpg", "GET", 900),
        url_case(
            "hmac_put_with_headers_and_query", made_hmac, "hmac", "kat-bucket", "a b/c&d", "PUT", 604800,
            headers=[("Content-Type", "image/png"), ("x-goog-meta-x", "1"), ("X-Goog-Meta-X", "2")],
            query=[("a", "1"), ("a-b", "2")],
        ),
        url_case("hmac_bucket_listing", made_hmac, "hmac", "kat-bucket", None, "GET", 1, query=[("prefix", "p/")]),
        post_policy_case(),
    ]
    out = HERE / "cases.json"
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(cases)} cases to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
