"""gunicorn's configuration in the checkout: `gunicorn -c gunicorn.conf.py config.wsgi` (what
`make serve` runs). The settings and hooks live in config/gunicorn_conf.py, which ships in
the wheel (`gunicorn -c python:config.gunicorn_conf config.wsgi` where it is installed)."""

from config.gunicorn_conf import *  # noqa: F403
