"""Request-scoped state of the domain layer."""

from registry.permissions import access_noted_per_request


def access_per_request(get_response):
    """What a user may do on a model is read once per request (registry.permissions)."""

    def middleware(request):
        with access_noted_per_request():
            return get_response(request)

    return middleware
