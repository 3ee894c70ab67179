"""The broker's answers, as typed dictionaries. Their keys are the properties of the schemas of the
same names in the broker's ``/openapi.json``; the test suite checks them against the running
broker, so the API and this client cannot drift apart."""


from typing import Any, TypedDict

from typing import NotRequired


class ProjectRole(TypedDict):
    slug: str
    role: str


class Me(TypedDict):
    subject: str
    username: NotRequired[str | None]
    email: NotRequired[str | None]
    groups: list[str]
    roles: list[str]
    personal_bucket: str
    projects: list[ProjectRole]


# "class" is a Python keyword: the functional form.
BucketView = TypedDict(
    "BucketView",
    {
        "name": str,
        "class": str,
        "classification": str,
        "owner": NotRequired[str | None],
        "project": NotRequired[str | None],
        "actions": list[str],
        "read_only": bool,
        "prefix_grants": list[dict[str, Any]],
    },
)


class ObjectView(TypedDict):
    name: str
    size: NotRequired[int | None]
    content_type: NotRequired[str | None]
    updated: NotRequired[str | None]


class ObjectList(TypedDict):
    objects: list[ObjectView]
    next_page_token: NotRequired[str | None]


class SignResponse(TypedDict):
    url: str
    method: str
    headers: dict[str, str]
    expires_at: str
    protocol: str
    advisory_limits: NotRequired[list[str]]


class ItemError(TypedDict):
    code: str
    message: str


class BatchResult(TypedDict, total=False):
    """A URL (the SignResponse keys) or an ``error``, with the item's ``index``."""

    index: int
    url: str
    method: str
    headers: dict[str, str]
    expires_at: str
    protocol: str
    advisory_limits: list[str]
    error: ItemError


class ManifestLine(TypedDict):
    object: str
    size: NotRequired[int | None]
    url: str
    expires_at: str
    protocol: NotRequired[str]


class UploadPolicyResponse(TypedDict):
    url: str
    fields: dict[str, str]
    expires_at: str
    protocol: str


class MultipartUrl(TypedDict):
    url: str
    method: str
    headers: dict[str, str]
    part_number: NotRequired[int | None]


class MultipartResponse(TypedDict):
    protocol: str
    requests: list[MultipartUrl]
    expires_at: str
    part_size: NotRequired[int | None]
