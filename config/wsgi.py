"""The WSGI entry point: `gunicorn -c gunicorn.conf.py config.wsgi` (docs/operations.md)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
