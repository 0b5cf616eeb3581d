"""The sign-in's round trip to the provider: mozilla-django-oidc's views, and what a sign-in
that failed on the way may raise.

sso/views.py loads this module on the first sign-in: mozilla-django-oidc, PyJWT and requests
weigh some 15 MB in a process, and every process that loads the URLs (each web worker, the
worker that builds e-mail links) would carry them whether anybody signs in or not.
"""

import jwt
import requests
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from sso.discovery import DiscoveryError

start = OIDCAuthenticationRequestView.as_view()
callback = OIDCAuthenticationCallbackView.as_view()
# The provider away or answering nonsense (requests, discovery), a token that does not
# verify (jwt, SuspiciousOperation: a state or nonce that does not match is one too).
FAILURES = (requests.RequestException, DiscoveryError, jwt.PyJWTError, SuspiciousOperation)
