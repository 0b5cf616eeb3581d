"""manage.py's verbs, for the checkout (`python manage.py migrate`) and for an installed
wheel (`modelvault-admin migrate`, the console script pyproject.toml declares)."""

import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 (loads the settings)
    except ImproperlyConfigured as exc:
        # Django would note this and go on, then fail later with an unrelated error
        # (AppRegistryNotReady); the real reason is this one.
        sys.exit(f"{Path(sys.argv[0]).name}: the settings are incomplete: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
