"""schemathesis check for the reliability suite: every error answer is RFC 9457 problem+json
with the broker's stable `code` (loaded through SCHEMATHESIS_HOOKS=schemathesis_hooks)."""

import json

import schemathesis


@schemathesis.check
def problem_json_errors(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type") or response.headers.get("Content-Type")
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else None
    if content_type != "application/problem+json":
        raise AssertionError(f"error {response.status_code} is {content_type!r}, not application/problem+json")
    body = json.loads(response.content)
    for field in ("type", "title", "status", "detail", "code"):
        if field not in body:
            raise AssertionError(f"problem without {field!r}: {body}")
    if body["status"] != response.status_code:
        raise AssertionError(f"problem status {body['status']} on a {response.status_code} answer")
    return None
