"""Every failure is a :class:`StorageBrokerError` with a stable ``code``: the broker's problem+json
code, or, for what storage answers, one code per meaning whatever the storage (GCS, S3 and Azure
each spell "expired" or "too large" their own way). The same codes as ``clients/js``."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any, Literal

ErrorSource = Literal["broker", "storage", "network"]


class StorageCodes:
    """Codes for what storage answers, alike on GCS, S3 and Azure."""

    EXPIRED = "url_expired"
    TOO_LARGE = "size_exceeds_limit"
    WRONG_TYPE = "content_type_not_allowed"
    FORBIDDEN = "storage_forbidden"
    NOT_FOUND = "object_not_found"
    UPLOAD_GONE = "upload_not_found"
    UNAVAILABLE = "storage_unavailable"
    OTHER = "storage_error"


class StorageBrokerError(Exception):
    """A refusal or failure, typed by ``code``; ``source`` says who answered."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        source: ErrorSource,
        problem: dict[str, Any] | None = None,
        storage_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.source = source
        self.problem = problem
        self.storage_code = storage_code

    def __repr__(self) -> str:
        return f"StorageBrokerError(code={self.code!r}, status={self.status}, source={self.source!r}, message={str(self)!r})"


def broker_error(status: int, body: str) -> StorageBrokerError:
    """The error for a broker answer that is not 2xx, from its problem+json body."""
    problem: dict[str, Any] | None = None
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
            problem = parsed
    except ValueError:
        pass
    if problem is not None:
        code = str(problem["code"])
    else:
        code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "unavailable" if status >= 500 else "http_error")
    message = (problem or {}).get("detail") or (problem or {}).get("title") or f"the broker answered {status}"
    return StorageBrokerError(str(message), code=code, status=status, source="broker", problem=problem)


def _tag(xml: str, name: str) -> str:
    found = re.search(rf"<{name}>([^<]*)</{name}>", xml)
    return found.group(1) if found else ""


def _expired(expires_at: str | None) -> bool:
    if not expires_at:
        return False
    try:
        return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp() <= time.time()
    except ValueError:
        return False


def storage_error(status: int, body: str, expires_at: str | None = None) -> StorageBrokerError:
    """The error for a storage answer that is not 2xx, from its XML body. A 403 after the URL's own
    expiry counts as expired too (Azurite says only AuthorizationFailure)."""
    storage_code = _tag(body, "Code")
    text = " ".join(t for t in (_tag(body, "Message"), _tag(body, "Details"), _tag(body, "AuthenticationErrorDetail")) if t)
    if storage_code in ("ExpiredToken", "RequestTimeTooSkewed") or re.search(r"expired|signed expiry time", text, re.I) or (status == 403 and _expired(expires_at)):
        code = StorageCodes.EXPIRED
    elif storage_code in ("EntityTooLarge", "RequestBodyTooLarge", "MaxMessageLengthExceeded") or re.search(r"content-length-range|too large", text, re.I):
        code = StorageCodes.TOO_LARGE
    elif re.search(r"content-type", text, re.I) and re.search(r"policy|condition", text, re.I):
        code = StorageCodes.WRONG_TYPE
    elif storage_code in ("NoSuchUpload", "InvalidBlockList") or (status in (404, 410) and re.search("upload", text, re.I)):
        code = StorageCodes.UPLOAD_GONE
    elif storage_code in ("NoSuchKey", "BlobNotFound") or status == 404:
        code = StorageCodes.NOT_FOUND
    elif storage_code in ("AccessDenied", "SignatureDoesNotMatch", "AuthenticationFailed", "AuthorizationFailure", "InvalidAccessKeyId") or status in (401, 403):
        code = StorageCodes.FORBIDDEN
    elif status >= 500 or status == 429:
        code = StorageCodes.UNAVAILABLE
    else:
        code = StorageCodes.OTHER
    message = f"storage answered {status}" + (f" {storage_code}" if storage_code else "") + (f": {text}" if text else "")
    return StorageBrokerError(message, code=code, status=status, source="storage", storage_code=storage_code or None)


def network_error(what: str, cause: BaseException) -> StorageBrokerError:
    return StorageBrokerError(f"{what} cannot be reached: {cause}", code="network_error", status=0, source="network")
