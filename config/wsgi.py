"""The WSGI entry point: `gunicorn -c python:config.gunicorn_conf config.wsgi`
(docs/operations.md, "The web server")."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
