"""Sends the token exchange that google-auth's downscoped.Credentials sends for one Credential
Access Boundary rule, to a local STS (the test's fake), so that the broker's request can be
compared with it byte for byte.

usage: google_auth_downscope.py STS_URL SUBJECT_TOKEN RESOURCE PERMISSION [EXPRESSION]
"""
import datetime
import sys

import google.auth.transport.requests
from google.auth import downscoped
from google.oauth2 import credentials, sts

sts_url, subject_token, resource, permission = sys.argv[1:5]
expression = sys.argv[5] if len(sys.argv) > 5 else None

expiry = datetime.datetime.utcnow() + datetime.timedelta(minutes=15)
# A source whose refresh hands back the token as it is: the broker's own token in the test.
source = credentials.Credentials(
    token=subject_token, refresh_handler=lambda request, scopes: (subject_token, expiry)
)
rule = downscoped.AccessBoundaryRule(
    available_resource=resource,
    available_permissions=[permission],
    availability_condition=(
        downscoped.AvailabilityCondition(expression=expression) if expression else None
    ),
)
downscoped_credentials = downscoped.Credentials(
    source_credentials=source,
    credential_access_boundary=downscoped.CredentialAccessBoundary(rules=[rule]),
)
# google-auth has no endpoint setting: its STS client is replaced with one for the fake.
downscoped_credentials._sts_client = sts.Client(sts_url)
downscoped_credentials.refresh(google.auth.transport.requests.Request())
print(downscoped_credentials.token)
