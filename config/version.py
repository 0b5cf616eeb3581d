"""The server's version: the installed distribution's (pyproject.toml), shown in the UI's
footer, /healthz and /readyz."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("modelvault-server")
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "unknown"
