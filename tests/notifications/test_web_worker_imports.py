"""A web worker does not send webhooks: it must not pay for the HTTP client that sends them
(httpx and, through its command line, rich and pygments: 4 MB resident per worker)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
import django
django.setup()
from django.core.wsgi import get_wsgi_application
get_wsgi_application()
import notifications.sending, notifications.services, notifications.tasks
print(sorted(name for name in ("httpx", "rich", "pygments") if name in sys.modules))
"""


def test_the_wsgi_application_loads_without_the_webhook_client():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.setdefault("SECRET_KEY", "test-only-not-a-secret")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
