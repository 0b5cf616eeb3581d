"""The answers to the failures that reach Django itself, past every surface's own mapping
(Django's handler400 and handler500, named in config/urls.py):

- a request body over DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig, raised wherever the
  body is read: a form, the CSRF check) is 413, not Django's 400;
- SQLite's "database is locked" (config/database.py), wherever it is raised (a view, the
  session saved after it, a middleware) is 503 with Retry-After, not a 500;
- any other failure of the server is a 500: under /api/ the API's error JSON (`internal`),
  elsewhere Django's 500 page.

Under /api/ the answer is the API's error JSON (api/errors.py), elsewhere a page. Every
other bad request gets Django's own 400.
"""

import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import defaults

from api.errors import body_too_large_response, database_busy_response, error_response
from config.database import RETRY_AFTER, is_locked
from config.middleware import API_PREFIX


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):
        if request.path_info.startswith(API_PREFIX):
            return body_too_large_response()
        context = {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
        return render(request, "413.html", context, status=413)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this while it handles the exception: it is the one being handled.
    api = request.path_info.startswith(API_PREFIX)
    if is_locked(sys.exception()):
        if api:
            return database_busy_response()
        message = "The database is busy with other changes."
        return unavailable_page(request, message, retry_after=RETRY_AFTER)
    if api:  # the API answers in its JSON, its own failures too (logged by Django)
        return error_response(500, "the server failed to answer this request; it is logged")
    return defaults.server_error(request)


def unavailable_page(
    request: HttpRequest, message: str, *, retry_after: int | None = None
) -> HttpResponse:
    """The 503 page; it reads nothing from the database (that may be what is unavailable)."""
    context = {"message": message, "retry_after": retry_after}
    response = render(request, "503.html", context, status=503)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response
