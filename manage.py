#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings)
    except ImproperlyConfigured as exc:
        # Django would note this and go on, then fail later with an unrelated error
        # (AppRegistryNotReady); the real reason is this one.
        sys.exit(f"manage.py: the settings are incomplete: {exc}")
    execute_from_command_line(sys.argv)
