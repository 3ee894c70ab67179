#!/usr/bin/env python3
"""CORS for a browser page on a local S3 or Azure Blob emulator, as a deployment sets it on the
real clouds (README, "Storage backends"), then a preflight to prove it took. Standard library only.

  storage_cors.py s3 ENDPOINT BUCKET ORIGIN ACCESS_KEY_ID SECRET_ACCESS_KEY
      creates BUCKET (if missing) and sets its CORS (PutBucketCors, SigV4 header-signed)
  storage_cors.py azure ENDPOINT ORIGIN
      sets the account's Blob service CORS (Set Blob Service Properties, Shared Key with Azurite's
      well-known key); ENDPOINT is http://HOST:PORT/devstoreaccount1

Exits non-zero, saying why, when storage refuses or the preflight is not allowed.
"""

import base64
import datetime
import hashlib
import hmac
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Azurite's one account and its well-known key (public: in Microsoft's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The broker's own REST calls use this service version (src/signing/azure.rs, REST_VERSION).
AZURE_REST_VERSION = "2026-06-06"


def send(method, url, headers, body=b"", patience=60):
    """One request; again while storage cannot be reached or answers 5xx (an emulator that just
    started may not have all of itself up yet), for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        request = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method)
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as e:
            answer = e.code, dict(e.headers), e.read()
            if e.code < 500 or time.monotonic() > deadline:
                return answer
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def s3_request(endpoint, method, path, query, body, access_key, secret_key, region="us-east-1"):
    """One S3 request signed with SigV4 in the Authorization header (path style)."""
    parsed = urllib.parse.urlsplit(endpoint)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {
        "host": parsed.netloc,
        "x-amz-content-sha256": payload_hash,
        "x-amz-date": amz_date,
    }
    if body:
        # PutBucketCors needs an integrity header (S3: Content-MD5 or a checksum).
        headers["content-md5"] = base64.b64encode(hashlib.md5(body).digest()).decode()
    signed = sorted(headers)
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = "\n".join([
        method,
        urllib.parse.quote(path, safe="/-_.~"),
        canonical_query,
        "".join(f"{name}:{headers[name]}\n" for name in signed),
        ";".join(signed),
        payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    url = endpoint.rstrip("/") + urllib.parse.quote(path, safe="/-_.~") + (f"?{canonical_query}" if query else "")
    if canonical_query.endswith("="):
        url = url[:-1]  # "?cors", as S3 clients send a sub-resource
    return send(method, url, {k: v for k, v in headers.items() if k != "host"}, body)


def azure_shared_key(method, url, headers):
    """The Authorization header of Shared Key (service version 2015-02-21 and later), as
    src/signing/azure.rs (AzureCredentials::shared_key) writes it."""
    lowered = {k.lower(): v for k, v in headers.items()}
    standard = ["content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
    lines = [method.upper()]
    for name in standard:
        value = lowered.get(name, "")
        lines.append("" if name == "content-length" and value == "0" else value)
    text = "\n".join(lines) + "\n"
    for name in sorted(n for n in lowered if n.startswith("x-ms-")):
        text += f"{name}:{lowered[name]}\n"
    parsed = urllib.parse.urlsplit(url)
    text += f"/{AZURITE_ACCOUNT}{parsed.path}"
    query = {}
    for name, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
        query.setdefault(name.lower(), []).append(value)
    for name in sorted(query):
        text += f"\n{name}:{','.join(sorted(query[name]))}"
    mac = hmac.new(base64.b64decode(AZURITE_KEY), text.encode(), hashlib.sha256).digest()
    return f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(mac).decode()}"


def preflight(url, origin, method, headers):
    """A browser's preflight for `method` with `headers` from `origin`: allowed by the rule set
    here (its max age of 600 s tells it from any default the emulator has)."""
    status, answer, body = send("OPTIONS", url, {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ",".join(headers),
    })
    answer = {k.lower(): v for k, v in answer.items()}
    allowed_origin = answer.get("access-control-allow-origin", "")
    allowed_methods = answer.get("access-control-allow-methods", "").upper()
    allowed_headers = answer.get("access-control-allow-headers", "").lower()
    if (status >= 300 or allowed_origin not in (origin, "*") or method not in allowed_methods
            or any(h not in allowed_headers for h in headers) or answer.get("access-control-max-age") != "600"):
        sys.exit(f"storage_cors: a {method} preflight from {origin} to {url} is not allowed by the rule set: {status} {answer} {body[:300]!r}")


def s3(endpoint, bucket, origin, access_key, secret_key):
    status, _, body = s3_request(endpoint, "PUT", f"/{bucket}", {}, b"", access_key, secret_key)
    if status not in (200, 409):
        sys.exit(f"storage_cors: cannot create bucket {bucket}: {status} {body[:300]!r}")
    # What the README asks of an S3 bucket for browser uploads: the app's origin may PUT, POST
    # (forms, multipart create/complete), GET and HEAD with content-type and x-amz-meta-* headers,
    # and read ETag (multipart completes with the parts' ETags).
    rule = (
        "<CORSConfiguration><CORSRule>"
        f"<AllowedOrigin>{origin}</AllowedOrigin>"
        + "".join(f"<AllowedMethod>{m}</AllowedMethod>" for m in ("PUT", "POST", "GET", "HEAD", "DELETE"))
        + "<AllowedHeader>content-type</AllowedHeader><AllowedHeader>x-amz-meta-*</AllowedHeader>"
        "<ExposeHeader>ETag</ExposeHeader><ExposeHeader>Location</ExposeHeader>"
        "<MaxAgeSeconds>600</MaxAgeSeconds>"
        "</CORSRule></CORSConfiguration>"
    ).encode()
    status, _, body = s3_request(endpoint, "PUT", f"/{bucket}", {"cors": ""}, rule, access_key, secret_key)
    if status not in (200, 204):
        sys.exit(f"storage_cors: PutBucketCors on {bucket} refused: {status} {body[:300]!r}")
    preflight(f"{endpoint.rstrip('/')}/{bucket}/cors-check", origin, "PUT", ["content-type"])


def azure(endpoint, origin):
    # What the README asks of an Azure Blob service for browser uploads, with
    # x-ms-blob-content-type, which Put Block List sends to set a block blob's type.
    properties = (
        '<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties><Cors><CorsRule>'
        f"<AllowedOrigins>{origin}</AllowedOrigins>"
        "<AllowedMethods>PUT,GET,HEAD,OPTIONS</AllowedMethods>"
        "<AllowedHeaders>content-type,x-ms-blob-type,x-ms-blob-content-type,x-ms-meta-*,x-ms-version</AllowedHeaders>"
        "<ExposedHeaders>etag,x-ms-request-id</ExposedHeaders>"
        "<MaxAgeInSeconds>600</MaxAgeInSeconds>"
        "</CorsRule></Cors></StorageServiceProperties>"
    ).encode()
    url = f"{endpoint.rstrip('/')}/?restype=service&comp=properties"
    headers = {
        "x-ms-date": datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"),
        "x-ms-version": AZURE_REST_VERSION,
        "content-length": str(len(properties)),
        "content-type": "application/xml",
    }
    headers["authorization"] = azure_shared_key("PUT", url, headers)
    status, _, body = send("PUT", url, headers, properties)
    if status != 202:
        sys.exit(f"storage_cors: Set Blob Service Properties refused: {status} {body[:500]!r}")
    preflight(f"{endpoint.rstrip('/')}/cors-check/blob", origin, "PUT", ["content-type", "x-ms-blob-type"])


if __name__ == "__main__":
    kind, *args = sys.argv[1:] or [""]
    if kind == "s3" and len(args) == 5:
        s3(*args)
    elif kind == "azure" and len(args) == 2:
        azure(*args)
    else:
        sys.exit(__doc__)
