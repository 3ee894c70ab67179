"""Makes tests/known_answers/backends.json: expected S3 and Azure Blob signatures from
implementations that share no code with storage-broker. Run it through
scripts/make-backend-known-answers.sh, which pins the versions. A fixed seed makes reruns identical.

- kind "s3_url": botocore's `auth.S3SigV4QueryAuth` (the presigned-URL signer that
  `generate_presigned_url` uses) run directly on an `AWSRequest`, with `botocore.auth`'s clock
  fixed, so that it signs exactly the request given: the headers in "headers" plus host, the
  query in "query", nothing else. S3SigV4QueryAuth signs the URL's path as it is (no
  normalisation, no encoding), so the object name is encoded first the way botocore's own client
  serialises `{Key+}`: `botocore.utils.percent_encode(key, safe='/~')`. Cases with no headers and
  no query are also checked equal to a botocore client's `generate_presigned_url`.
- kind "s3_post_policy": a botocore client's `generate_presigned_post`, with the clocks of
  `botocore.signers` and `botocore.auth` fixed. The conditions passed are one exact-match
  condition `{name: value}` per input field, in field order, then the input "conditions".
- kind "azure_sas": azure-storage-blob's `generate_blob_sas` (service SAS with the account key,
  or user-delegation SAS with a `UserDelegationKey` built from fixed fields), and the URL that
  `BlobClient(account_url=endpoint, container_name, blob_name, credential=token).url` gives.
  The signature is also checked against an HMAC of the string to sign the library reports.
  With a "user_delegation_key" in the input, the signing key is its "value"; "key" is then unused.

Besides "url"/"token", "expected" keeps the library's own canonical request and string to sign
(S3 URLs) or string to sign (Azure), and the decoded policy document (POST), for diagnosis.
"""

import base64
import datetime
import hashlib
import hmac
import json
import random
import string
import sys
import urllib.parse
import uuid
from importlib.metadata import version
from pathlib import Path
from unittest import mock

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
import botocore.signers
import botocore.utils
from botocore.config import Config
from azure.storage.blob import BlobClient, BlobSasPermissions, UserDelegationKey, generate_blob_sas
from azure.storage.blob._shared.constants import X_MS_VERSION

HERE = Path(__file__).resolve().parent
SEED = 20261124
BOTOCORE = f"botocore {version('botocore')}"
AZURE = f"azure-storage-blob {version('azure-storage-blob')}"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AWS_DOC_SIGNATURE = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

rng = random.Random(SEED)


# ---------------------------------------------------------------------------------------------
# helpers


def rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def random_moment(start_year=2024, end_year=2027):
    begin = datetime.datetime(start_year, 1, 1)
    span = int((datetime.datetime(end_year, 12, 31) - begin).total_seconds())
    return begin + datetime.timedelta(seconds=rng.randrange(span))


def random_chars(alphabet, n):
    return "".join(rng.choice(alphabet) for _ in range(n))


def random_aws_credentials(token_chance):
    creds = {
        "access_key_id": "AKIA" + random_chars(string.ascii_uppercase + "234567", 16),
        "secret_access_key": random_chars(string.ascii_letters + string.digits + "/+", 40),
    }
    if rng.random() < token_chance:
        creds["session_token"] = random_session_token()
    return creds


def random_session_token():
    raw = bytes(rng.randrange(256) for _ in range(rng.choice([96, 160, 301])))
    return base64.b64encode(raw).decode()


def random_bucket():
    words = ["kat", "media", "uploads", "logs", "backup", "assets", "data", "tenant-7", "x1"]
    name = "-".join(rng.sample(words, rng.randint(1, 3)))
    return f"{name}-{random_chars(string.ascii_lowercase + string.digits, 4)}"


# Pieces of hostile object/blob names.
WORDS = ["photos", "2024", "report", "Q3", "data", "img_01", "archive", "README", "a", "x.y"]
HOSTILE = [
    "é", "été", "日本語", "😀", "✓", "Ω", " ", "  ", "+", "%", "%20", "%2F", "#", "?", "&", "=", ";",
    ":", "@", "!", "$", "'", "(", ")", "*", ",", "~", "-", "_", ".", "/", "//", "a/../b", "./", "..",
]
RARE = ['"', "[", "]", "<", ">", "{", "}", "|", "^", "`"]


def random_object_name(allow_backslash=True):
    parts = []
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.4:
            parts.append(rng.choice(WORDS))
        elif roll < 0.92:
            parts.append(rng.choice(HOSTILE))
        else:
            parts.append(rng.choice(RARE + (["\\"] if allow_backslash else [])))
    name = parts[0]
    for part in parts[1:]:
        name += rng.choice(["", "", "/", " "]) + part
    if rng.random() < 0.15:
        name = "/" + name
    if not name.strip("/"):
        name += "file"
    return name


# ---------------------------------------------------------------------------------------------
# S3 presigned URLs


class RecordingQueryAuth(botocore.auth.S3SigV4QueryAuth):
    """botocore's presigned-URL signer, keeping the canonical request and string to sign."""

    def string_to_sign(self, request, canonical_request):
        sts = super().string_to_sign(request, canonical_request)
        self.recorded = (canonical_request, sts)
        return sts


def split_endpoint(endpoint):
    parts = urllib.parse.urlsplit(endpoint)
    assert parts.path in ("", "/") and not parts.query, endpoint
    return parts.scheme, parts.netloc


def object_url(endpoint, style, bucket, obj):
    key = botocore.utils.percent_encode(obj, safe="/~")
    if style == "path":
        return f"{endpoint.rstrip('/')}/{bucket}/{key}"
    scheme, netloc = split_endpoint(endpoint)
    return f"{scheme}://{bucket}.{netloc}/{key}"


def botocore_credentials(creds):
    return botocore.credentials.Credentials(
        creds["access_key_id"], creds["secret_access_key"], creds.get("session_token")
    )


class Clock:
    """Fixes the clocks botocore reads: auth (X-Amz-Date) and signers (POST policy expiration)."""

    def __init__(self, at):
        moment = parse_rfc3339(at)
        self.patches = [
            mock.patch("botocore.auth.get_current_datetime", return_value=moment),
            mock.patch("botocore.signers.get_current_datetime", return_value=moment),
        ]

    def __enter__(self):
        for p in self.patches:
            p.start()

    def __exit__(self, *exc):
        for p in reversed(self.patches):
            p.stop()


def s3_presigned_url(inp):
    url = object_url(inp["endpoint"], inp["style"], inp["bucket"], inp["object"])
    names = [n.lower() for n, _ in inp["headers"]]
    assert len(set(names)) == len(names), "AWSRequest takes one value per header"
    assert len({n for n, _ in inp["query"]}) == len(inp["query"]), "one value per query name"
    assert "x-amz-content-sha256" not in names, "botocore would take it as the payload hash"
    request = botocore.awsrequest.AWSRequest(
        method=inp["method"], url=url, headers=dict(inp["headers"]), params=dict(inp["query"])
    )
    auth = RecordingQueryAuth(botocore_credentials(inp["credentials"]), "s3", inp["region"], expires=inp["expires"])
    with Clock(inp["at"]):
        auth.add_auth(request)
    # botocore must not have added or moved anything.
    assert dict(request.headers) == dict(inp["headers"]), request.headers
    canonical, sts = auth.recorded
    return request.url, canonical, sts


CLIENT_METHOD = {"GET": "get_object", "HEAD": "head_object", "PUT": "put_object", "DELETE": "delete_object"}


def client_for(inp):
    creds = inp["credentials"]
    return botocore.session.get_session().create_client(
        "s3",
        region_name=inp["region"],
        endpoint_url=inp["endpoint"],
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        aws_session_token=creds.get("session_token"),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "virtual" if inp["style"] == "virtual-hosted" else "path"},
        ),
    )


def cross_check_with_client(inp, url):
    """For a bare request, a botocore client's generate_presigned_url must give the same URL."""
    if inp["headers"] or inp["query"] or inp["method"] not in CLIENT_METHOD:
        return False
    with Clock(inp["at"]):
        theirs = client_for(inp).generate_presigned_url(
            CLIENT_METHOD[inp["method"]], Params={"Bucket": inp["bucket"], "Key": inp["object"]},
            ExpiresIn=inp["expires"],
        )
    assert theirs == url, f"client and S3SigV4QueryAuth disagree:\n{theirs}\n{url}"
    return True


def s3_url_case(name, inp):
    inp = {
        "credentials": inp["credentials"], "region": inp["region"], "endpoint": inp["endpoint"],
        "style": inp["style"], "bucket": inp["bucket"], "object": inp["object"], "method": inp["method"],
        "expires": inp["expires"], "at": inp["at"], "headers": [list(h) for h in inp.get("headers", [])],
        "query": [list(q) for q in inp.get("query", [])],
    }
    url, canonical, sts = s3_presigned_url(inp)
    checked = cross_check_with_client(inp, url)
    made_by = (
        f"{BOTOCORE} auth.S3SigV4QueryAuth(credentials, 's3', region, expires).add_auth on "
        "AWSRequest(method, url, headers, params=query) with botocore.auth.get_current_datetime fixed; "
        "object name encoded with botocore.utils.percent_encode(key, safe='/~')"
    )
    if checked:
        made_by += "; equal to a botocore client's generate_presigned_url"
    return {
        "name": name,
        "made_by": made_by,
        "kind": "s3_url",
        "input": inp,
        "expected": {"url": url, "canonical_request": canonical, "string_to_sign": sts},
    }


S3_ENDPOINTS = [
    # endpoint, region, styles it makes sense with
    ("https://s3.us-east-1.amazonaws.com", "us-east-1", ["path", "virtual-hosted"]),
    ("https://s3.eu-west-1.amazonaws.com", "eu-west-1", ["path", "virtual-hosted"]),
    ("https://s3.ap-southeast-2.amazonaws.com", "ap-southeast-2", ["path", "virtual-hosted"]),
    ("http://127.0.0.1:8333", "us-east-1", ["path"]),
    ("http://localhost:9000", "us-east-1", ["path"]),
    ("https://nyc3.digitaloceanspaces.com", "nyc3", ["path", "virtual-hosted"]),
    (f"https://{random.Random(SEED + 1).getrandbits(128):032x}.r2.cloudflarestorage.com", "auto",
     ["path", "virtual-hosted"]),
]

DISPOSITIONS = [
    'attachment; filename="report.pdf"',
    "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
    'inline; filename="été 2024 ✓.txt"',
    "attachment; filename=\"a+b&c=d;e.bin\"",
]
CONTENT_TYPES = ["application/pdf", "image/png", "text/plain; charset=utf-8", "application/octet-stream"]


def random_headers(method):
    headers = []
    if method == "PUT":
        if rng.random() < 0.6:
            headers.append((rng.choice(["content-type", "Content-Type"]), rng.choice(CONTENT_TYPES)))
        if rng.random() < 0.3:
            md5 = base64.b64encode(hashlib.md5(random_chars(string.ascii_letters, 12).encode()).digest()).decode()
            headers.append((rng.choice(["content-md5", "Content-MD5"]), md5))
        if rng.random() < 0.3:
            headers.append(("content-length", str(rng.randrange(0, 5 * 1024**3))))
        if rng.random() < 0.4:
            headers.append((f"x-amz-meta-{rng.choice(['owner', 'tag', 'Title'])}",
                            rng.choice(["alice", "  two  spaced   words ", "v1,v2", "a=b"])))
        if rng.random() < 0.2:
            headers.append(("x-amz-acl", "private"))
        if rng.random() < 0.2:
            headers.append(("Cache-Control", "max-age=3600, public"))
    elif method == "GET" and rng.random() < 0.15:
        headers.append(("range", "bytes=0-1023"))
    return headers


def random_query(method):
    query = []
    if method == "GET":
        if rng.random() < 0.35:
            query.append(("response-content-disposition", rng.choice(DISPOSITIONS)))
        if rng.random() < 0.25:
            query.append(("response-content-type", rng.choice(CONTENT_TYPES)))
        if rng.random() < 0.1:
            query.append(("response-cache-control", "no-cache"))
    elif method == "PUT" and rng.random() < 0.15:
        query = [("partNumber", str(rng.randint(1, 10000))), ("uploadId", random_upload_id())]
    elif method == "DELETE" and rng.random() < 0.15:
        query = [("uploadId", random_upload_id())]
    return query


def random_upload_id():
    return random_chars(string.ascii_letters + string.digits + "._-", rng.choice([32, 64])) + rng.choice(["", "~", "+/="])


def random_s3_url_input():
    endpoint, region, styles = rng.choice(S3_ENDPOINTS)
    method = rng.choices(["GET", "HEAD", "PUT", "DELETE"], weights=[5, 1, 4, 1])[0]
    return {
        "credentials": random_aws_credentials(0.3),
        "region": region,
        "endpoint": endpoint,
        "style": rng.choice(styles),
        "bucket": random_bucket(),
        "object": random_object_name(),
        "method": method,
        "expires": rng.choice([1, 60, 300, 900, 3600, 86400, 604800, rng.randint(2, 604799)]),
        "at": rfc3339(random_moment()),
        "headers": random_headers(method),
        "query": random_query(method),
    }


def fixed_s3_url_cases():
    doc = s3_url_case("aws_documentation_example", {
        "credentials": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
        "region": "us-east-1", "endpoint": "https://s3.amazonaws.com", "style": "virtual-hosted",
        "bucket": "examplebucket", "object": "test.txt", "method": "GET", "expires": 86400,
        "at": "2013-05-24T00:00:00Z",
    })
    assert doc["expected"]["url"] == (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        f"&X-Amz-Signature={AWS_DOC_SIGNATURE}"
    ), doc["expected"]["url"]
    doc["made_by"] += f"; signature equal to the AWS documentation's {AWS_DOC_SIGNATURE}"

    base = {
        "credentials": {"access_key_id": "AKIDEXAMPLE000000001", "secret_access_key": "kat/Secret+Key0000000000000000000000000000"},
        "region": "eu-west-1", "endpoint": "https://s3.eu-west-1.amazonaws.com", "style": "path",
        "bucket": "kat-bucket", "at": "2026-11-24T10:20:30Z",
    }
    token = "IQoJb3JpZ2luX2VjEXAMPLE/session+token=" + random_session_token()
    upload_id = "VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA--~x.y_z"
    big = "uploads/big file é.iso"
    return [
        doc,
        s3_url_case("session_token", {
            **base, "credentials": {**base["credentials"], "session_token": token},
            "object": "private/été.txt", "method": "GET", "expires": 900,
        }),
        s3_url_case("session_token_virtual_hosted_put_with_headers", {
            **base, "credentials": {**base["credentials"], "session_token": token}, "style": "virtual-hosted",
            "object": "in/box.json", "method": "PUT", "expires": 300,
            "headers": [("Content-Type", "application/json"), ("x-amz-meta-owner", "alice")],
        }),
        s3_url_case("response_overrides", {
            **base, "object": "reports/q3.pdf", "method": "GET", "expires": 3600,
            "query": [("response-content-disposition", 'attachment; filename="résumé 2024 & co.pdf"'),
                      ("response-content-type", "application/pdf")],
        }),
        s3_url_case("put_with_signed_headers", {
            **base, "object": "up/load.bin", "method": "PUT", "expires": 900,
            "headers": [("Content-Type", "application/octet-stream"), ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                        ("Content-Length", "0"), ("x-amz-meta-title", "  Two   words  "),
                        ("X-Amz-Meta-Other", "a,b")],
        }),
        s3_url_case("multipart_create", {
            **base, "object": big, "method": "POST", "expires": 900,
            "headers": [("content-type", "application/x-iso9660-image")], "query": [("uploads", "")],
        }),
        s3_url_case("multipart_upload_part", {
            **base, "object": big, "method": "PUT", "expires": 3600,
            "query": [("partNumber", "7"), ("uploadId", upload_id)],
        }),
        s3_url_case("multipart_upload_part_with_content_md5", {
            **base, "object": big, "method": "PUT", "expires": 3600,
            "headers": [("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="), ("content-length", "5242880")],
            "query": [("partNumber", "10000"), ("uploadId", upload_id)],
        }),
        s3_url_case("multipart_complete", {
            **base, "object": big, "method": "POST", "expires": 900, "query": [("uploadId", upload_id)],
        }),
        s3_url_case("multipart_abort", {
            **base, "object": big, "method": "DELETE", "expires": 900, "query": [("uploadId", upload_id)],
        }),
        s3_url_case("all_reserved_characters", {
            **base, "object": "a?b#c&d=e+f;g,h:i@j$k!l'm(n)o*p[q]r%s~t u\"v<w>x{y}z|\\^`", "method": "GET",
            "expires": 60,
        }),
        s3_url_case("leading_slash_dots_and_double_slashes", {
            **base, "object": "//a/./b/../c//d", "method": "HEAD", "expires": 60,
        }),
        s3_url_case("dot_dot_virtual_hosted", {
            **base, "style": "virtual-hosted", "object": "a/../b", "method": "GET", "expires": 60,
        }),
        s3_url_case("unicode_and_emoji", {
            **base, "object": "photos/été 2024/日本語 ✓ 😀.jpg", "method": "GET", "expires": 604800,
        }),
        s3_url_case("minimum_expiry_local_endpoint", {
            **base, "endpoint": "http://127.0.0.1:8333", "region": "us-east-1", "object": "k", "method": "GET",
            "expires": 1,
        }),
        s3_url_case("r2_auto_region", {
            **base, "endpoint": S3_ENDPOINTS[-1][0], "region": "auto", "object": "k/é", "method": "GET",
            "expires": 600,
        }),
        s3_url_case("digitalocean_virtual_hosted", {
            **base, "endpoint": "https://nyc3.digitaloceanspaces.com", "region": "nyc3", "style": "virtual-hosted",
            "object": "spaces/obj.txt", "method": "DELETE", "expires": 120,
        }),
    ]


# ---------------------------------------------------------------------------------------------
# S3 POST policies


def s3_post_case(name, inp):
    key = inp["key"] if "key" in inp else inp["key_prefix"] + "${filename}"
    fields = [list(f) for f in inp.get("fields", [])]
    conditions = [list(c) for c in inp.get("conditions", [])]
    passed_conditions = [{n: v} for n, v in fields] + [list(c) for c in conditions]
    with Clock(inp["at"]):
        post = client_for(inp).generate_presigned_post(
            inp["bucket"], key, Fields=dict(fields), Conditions=passed_conditions, ExpiresIn=inp["expires"]
        )
    policy_json = base64.b64decode(post["fields"]["policy"]).decode("utf-8")
    # The policy is json.dumps of {"expiration", "conditions"}; check our reading of it.
    assert json.dumps(json.loads(policy_json)) == policy_json
    out_input = {
        "credentials": inp["credentials"], "region": inp["region"], "endpoint": inp["endpoint"],
        "style": inp["style"], "bucket": inp["bucket"],
    }
    if "key" in inp:
        out_input["key"] = inp["key"]
    else:
        out_input["key_prefix"] = inp["key_prefix"]
    out_input.update({"expires": inp["expires"], "at": inp["at"], "fields": fields, "conditions": conditions})
    return {
        "name": name,
        "made_by": (
            f"{BOTOCORE} client generate_presigned_post (signature_version s3v4, addressing_style "
            f"{'virtual' if inp['style'] == 'virtual-hosted' else 'path'}) with botocore.signers and "
            "botocore.auth get_current_datetime fixed; Conditions passed = one {name: value} per field, "
            "then the input conditions"
        ),
        "kind": "s3_post_policy",
        "input": out_input,
        "expected": {"url": post["url"], "fields": [[k, v] for k, v in post["fields"].items()],
                     "policy_json": policy_json},
    }


def post_cases():
    cases = []
    specs = [
        ("exact_key_path_style", "https://s3.us-east-1.amazonaws.com", "us-east-1", "path",
         {"key": "uploads/photo.png"}, [("content-type", "image/png")], [["content-length-range", 1, 10485760]], False),
        ("exact_key_virtual_hosted", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", "virtual-hosted",
         {"key": "a b/c&d=e+f.txt"}, [], [], False),
        ("key_prefix_with_starts_with_content_type", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", "path",
         {"key_prefix": "user/42/"}, [("Content-Type", "image/jpeg")],
         [["starts-with", "$Content-Type", "image/"], ["content-length-range", 0, 5242880]], False),
        ("session_token_path_style", "https://s3.ap-southeast-2.amazonaws.com", "ap-southeast-2", "path",
         {"key": "tok/file.bin"}, [("success_action_status", "201")], [["content-length-range", 1, 1]], True),
        ("session_token_virtual_hosted_prefix", "https://s3.us-east-1.amazonaws.com", "us-east-1", "virtual-hosted",
         {"key_prefix": ""}, [("content-type", "text/plain"), ("x-amz-meta-owner", "bob")], [], True),
        ("unicode_metadata_is_ascii_escaped", "https://s3.us-east-1.amazonaws.com", "us-east-1", "path",
         {"key": "photos/été 日本語 😀.jpg"}, [("x-amz-meta-title", "Été ✓ 😀"), ("content-type", "image/jpeg")],
         [["content-length-range", 1, 20971520]], False),
        ("local_endpoint", "http://127.0.0.1:8333", "us-east-1", "path",
         {"key": "k"}, [("success_action_status", "204")], [], False),
        ("r2_auto_region", S3_ENDPOINTS[-1][0], "auto", "path",
         {"key_prefix": "incoming/é/"}, [], [["content-length-range", 100, 200]], True),
        ("digitalocean_virtual_hosted", "https://nyc3.digitaloceanspaces.com", "nyc3", "virtual-hosted",
         {"key": "/leading/slash"}, [("Content-Type", "application/json"), ("x-amz-meta-a", "1")],
         [["starts-with", "$x-amz-meta-b", ""]], False),
        ("quotes_and_backslashes_in_values", "https://s3.eu-west-1.amazonaws.com", "eu-west-1", "path",
         {"key": 'say "hi"\\there/<tag>&'}, [("x-amz-meta-q", 'a "quoted" \\ value </script>')],
         [["content-length-range", 0, 604800]], True),
        ("max_expiry", "https://s3.us-east-1.amazonaws.com", "us-east-1", "virtual-hosted",
         {"key": "long/lived"}, [], [], False),
    ]
    for name, endpoint, region, style, key, fields, conditions, token in specs:
        creds = random_aws_credentials(0.0)
        if token:
            creds["session_token"] = random_session_token()
        expires = 604800 if name == "max_expiry" else rng.choice([60, 300, 900, 3600, 86400])
        cases.append(s3_post_case(name, {
            "credentials": creds, "region": region, "endpoint": endpoint, "style": style, "bucket": random_bucket(),
            **key, "expires": expires, "at": rfc3339(random_moment()), "fields": fields, "conditions": conditions,
        }))
    return cases


# ---------------------------------------------------------------------------------------------
# Azure SAS


def random_account_key():
    return base64.b64encode(bytes(rng.randrange(256) for _ in range(64))).decode()


def random_uuid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def random_container():
    return f"{rng.choice(['media', 'kat', 'uploads', 'c0', 'tenant-9'])}-{random_chars(string.ascii_lowercase + string.digits, 5)}"


PERMISSIONS = ["r", "w", "d", "c", "rw", "cw", "rcw", "racw", "racwd", "rwd", "rd", "racwdt"]


def azure_case(name, inp):
    permission = str(BlobSasPermissions.from_string(inp["permission"]))
    assert permission == inp["permission"], f"permission {inp['permission']} is not in the library's order"
    udk_fields = inp.get("user_delegation_key")
    udk = None
    if udk_fields:
        udk = UserDelegationKey()
        for field, value in udk_fields.items():
            assert hasattr(udk, field), field
            setattr(udk, field, value)
        assert set(vars(udk)) == set(udk_fields), f"UserDelegationKey has fields {sorted(vars(udk))}"
    recorded = []
    kwargs = {
        "account_name": inp["account"],
        "container_name": inp["container"],
        "blob_name": inp["blob"],
        "permission": inp["permission"],
        "expiry": parse_rfc3339(inp["expiry"]).replace(tzinfo=datetime.timezone.utc),
        "start": parse_rfc3339(inp["start"]).replace(tzinfo=datetime.timezone.utc) if inp.get("start") else None,
        "protocol": inp["protocol"],
        "sts_hook": recorded.append,
    }
    if udk is None:
        kwargs["account_key"] = inp["key"]
    else:
        kwargs["user_delegation_key"] = udk
    if inp.get("content_disposition") is not None:
        kwargs["content_disposition"] = inp["content_disposition"]
    if inp.get("content_type") is not None:
        kwargs["content_type"] = inp["content_type"]
    if inp.get("user_delegation_oid") is not None:
        kwargs["user_delegation_oid"] = inp["user_delegation_oid"]
    token = generate_blob_sas(**kwargs)
    (sts,) = recorded
    signing_key = udk.value if udk is not None else inp["key"]
    sig = base64.b64encode(hmac.new(base64.b64decode(signing_key), sts.encode("utf-8"), hashlib.sha256).digest()).decode()
    assert f"sig={urllib.parse.quote(sig)}" in token, "signature is not the HMAC of the reported string to sign"
    url = BlobClient(account_url=inp["endpoint"], container_name=inp["container"], blob_name=inp["blob"], credential=token).url
    assert url.endswith("?" + token), url
    kind = "user-delegation SAS (user_delegation_key)" if udk is not None else "service SAS (account_key)"
    return {
        "name": name,
        "made_by": (
            f"{AZURE} generate_blob_sas, {kind}, writing sv={X_MS_VERSION} (X_MS_VERSION); url from "
            "BlobClient(account_url=endpoint, container_name, blob_name, credential=token).url"
        ),
        "kind": "azure_sas",
        "input": inp,
        "expected": {"token": token, "url": url, "string_to_sign": sts},
    }


def random_udk(sas_start, sas_expiry, delegated_tid=False):
    """A key whose validity covers the SAS's, as the service requires (the signature does not care)."""
    start = sas_start - datetime.timedelta(seconds=rng.randint(0, 86400))
    expiry = max(sas_expiry, start + datetime.timedelta(days=rng.randint(1, 7)))
    key = {
        "signed_oid": random_uuid(),
        "signed_tid": random_uuid(),
        "signed_delegated_user_tid": random_uuid() if delegated_tid else None,
        "signed_start": rfc3339(start),
        "signed_expiry": rfc3339(expiry),
        "signed_service": "b",
        "signed_version": rng.choice(["2025-11-05", X_MS_VERSION]),
        "value": base64.b64encode(bytes(rng.randrange(256) for _ in range(32))).decode(),
    }
    return key


def random_azure_input():
    local = rng.random() < 0.35
    if local:
        account, key = AZURITE_ACCOUNT, AZURITE_KEY
        endpoint = rng.choice(["http://127.0.0.1:10000/devstoreaccount1", "http://localhost:10000/devstoreaccount1"])
        protocol = "https,http"
    else:
        account = "kat" + random_chars(string.ascii_lowercase + string.digits, rng.randint(3, 18))
        key = rng.choice([random_account_key(), AZURITE_KEY])
        endpoint = f"https://{account}.blob.core.windows.net"
        protocol = rng.choice(["https", "https,http"])
    start = random_moment()
    inp = {
        "account": account,
        "key": key,
        "endpoint": endpoint,
        "container": random_container(),
        "blob": random_object_name(allow_backslash=False).rstrip("./") or "blob",
        "permission": rng.choice(PERMISSIONS),
    }
    if rng.random() < 0.5:
        inp["start"] = rfc3339(start)
    expiry = start + datetime.timedelta(seconds=rng.choice([60, 3600, 86400, rng.randint(61, 604800)]))
    inp["expiry"] = rfc3339(expiry)
    inp["protocol"] = protocol
    if rng.random() < 0.3:
        inp["content_disposition"] = rng.choice(DISPOSITIONS)
    if rng.random() < 0.3:
        inp["content_type"] = rng.choice(CONTENT_TYPES)
    if rng.random() < 0.4:
        inp["user_delegation_key"] = random_udk(start, expiry, delegated_tid=rng.random() < 0.3)
    return inp


def fixed_azure_cases():
    base = {
        "account": AZURITE_ACCOUNT, "key": AZURITE_KEY, "endpoint": "http://127.0.0.1:10000/devstoreaccount1",
        "container": "kat-container", "permission": "r", "expiry": "2026-11-24T10:35:30Z", "protocol": "https,http",
    }
    cloud = {**base, "account": "katacct", "endpoint": "https://katacct.blob.core.windows.net", "protocol": "https"}
    udk = {
        "signed_oid": "6d8c6f2e-1c7a-4d1b-9c55-0f3a2b7e9d11",
        "signed_tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "signed_delegated_user_tid": None,
        "signed_start": "2026-11-24T10:00:00Z",
        "signed_expiry": "2026-11-25T10:00:00Z",
        "signed_service": "b",
        "signed_version": X_MS_VERSION,
        "value": "aGVsbG8ga2F0IHVzZXIgZGVsZWdhdGlvbiBrZXkgMzI=",
    }
    return [
        azure_case("azurite_read_no_start", {**base, "blob": "photos/été 2024/日本語 ✓ 😀.jpg"}),
        azure_case("azurite_with_start_and_overrides", {
            **base, "blob": "reports/q3.pdf", "permission": "rw", "start": "2026-11-24T10:20:30Z",
            "content_disposition": 'attachment; filename="résumé & co.pdf"', "content_type": "application/pdf",
        }),
        azure_case("cloud_https_only_create_write", {**cloud, "blob": "in/box.json", "permission": "cw"}),
        azure_case("all_reserved_characters", {**cloud, "blob": "a?b#c&d=e+f;g,h:i@j$k!l'm(n)o*p[q]r%s~t u\"v<w>x{y}z|^`", "permission": "d"}),
        azure_case("leading_slash", {**cloud, "blob": "/leading/slash"}),
        azure_case("dot_dot_segment", {**base, "blob": "a/../b"}),
        azure_case("user_delegation", {**cloud, "blob": "shared/é.txt", "user_delegation_key": udk}),
        azure_case("user_delegation_with_start_and_overrides", {
            **cloud, "blob": "x y/+z", "permission": "racwd", "start": "2026-11-24T10:05:00Z",
            "content_disposition": "inline", "content_type": "text/plain; charset=utf-8", "user_delegation_key": udk,
        }),
        azure_case("user_delegation_with_delegated_user_tid_and_oid", {
            **cloud, "blob": "delegated/file", "user_delegation_key": {
                **udk, "signed_delegated_user_tid": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"},
            "user_delegation_oid": "11111111-2222-4333-8444-555555555555",
        }),
    ]


# ---------------------------------------------------------------------------------------------


def main():
    cases = fixed_s3_url_cases()
    cases += [s3_url_case(f"random_{i:02}", random_s3_url_input()) for i in range(40)]
    cases += post_cases()
    cases += fixed_azure_cases()
    cases += [azure_case(f"random_{i:02}", random_azure_input()) for i in range(30)]
    names = [(c["kind"], c["name"]) for c in cases]
    assert len(set(names)) == len(names), "duplicate case names"
    out = HERE / "backends.json"
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
    counts = {}
    for c in cases:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    print(f"wrote {len(cases)} cases to {out}: {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()
