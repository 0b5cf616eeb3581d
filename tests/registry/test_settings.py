"""Settings come from the environment (SPEC 5, STYLE Settings).

Each case loads config/settings.py in a fresh Python process whose environment holds only
what the case sets, so that nothing from the test run's own environment leaks in.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)

# Loads the settings (no app loading) and prints the named values as JSON.
READ_SETTINGS = """
import json, sys
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in sys.argv[1:]}, default=str))
"""


def run(args: list[str], env: dict[str, str], var_dir: Path) -> subprocess.CompletedProcess:
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(var_dir.parent),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "VAR_DIR": str(var_dir),
        **env,
    }
    return subprocess.run(
        [sys.executable, *args],
        env=clean,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def read_settings(env: dict[str, str], var_dir: Path, *names: str) -> dict:
    done = run(["-c", READ_SETTINGS, *names], env, var_dir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refusal(env: dict[str, str], var_dir: Path) -> str:
    """The error that loading the settings stops with."""
    done = run(["-c", READ_SETTINGS, "DEBUG"], env, var_dir)
    assert done.returncode != 0, f"the settings loaded: {done.stdout}"
    assert "ImproperlyConfigured" in done.stderr
    return done.stderr.strip().splitlines()[-1]


@pytest.fixture
def var_dir(tmp_path) -> Path:
    return tmp_path / "var"


SECRET = {"SECRET_KEY": "a-test-key-that-is-not-used-anywhere-else"}


@pytest.mark.parametrize("debug", [None, "false", "0"])
def test_it_requires_a_secret_key_when_debug_is_off(var_dir, debug):
    env = {} if debug is None else {"DEBUG": debug}

    assert "SECRET_KEY must be set when DEBUG is off" in refusal(env, var_dir)
    assert not (var_dir / "secret_key").exists()


def test_it_keeps_a_generated_key_under_var_dir_when_debug_is_on(var_dir):
    first = read_settings({"DEBUG": "true"}, var_dir, "SECRET_KEY", "DEBUG")

    key_file = var_dir / "secret_key"
    assert first["DEBUG"] is True
    assert len(first["SECRET_KEY"]) >= 50
    assert key_file.read_text() == first["SECRET_KEY"]
    assert key_file.stat().st_mode & 0o777 == 0o600
    # Sessions survive a restart: the next process reads the same key.
    assert read_settings({"DEBUG": "TRUE"}, var_dir, "SECRET_KEY") == {
        "SECRET_KEY": first["SECRET_KEY"]
    }


@pytest.mark.parametrize("value", ["yes", "maybe", "on", "no"])
def test_it_refuses_a_boolean_other_than_true_or_false(var_dir, value):
    message = refusal({**SECRET, "DEBUG": value}, var_dir)

    assert f"DEBUG must be true or false, not '{value}'" in message


def test_it_refuses_a_number_that_is_not_whole(var_dir):
    message = refusal({**SECRET, "ARTIFACT_MAX_SIZE": "10GB"}, var_dir)

    assert "ARTIFACT_MAX_SIZE must be a whole number, not '10GB'" in message


def test_it_selects_postgresql_from_database_url(var_dir):
    env = {**SECRET, "DATABASE_URL": "postgres://mv:s3cret@db.example.com:5433/modelvault"}

    database = read_settings(env, var_dir, "DATABASES")["DATABASES"]["default"]

    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["NAME"], database["USER"], database["PASSWORD"]) == (
        "modelvault",
        "mv",
        "s3cret",
    )
    assert (database["HOST"], database["PORT"]) == ("db.example.com", 5433)
    assert database["OPTIONS"] == {
        "server_side_binding": True,
        "prepare_threshold": 5,
        "options": "-c plan_cache_mode=force_generic_plan",
    }


def test_it_prepares_statements_as_told_or_not_at_all(var_dir):
    env = {**SECRET, "DATABASE_URL": "postgres://mv@db.example.com/modelvault"}
    for value, threshold in (("1", 1), ("0", None)):
        told = {**env, "DATABASE_PREPARE_THRESHOLD": value}
        options = read_settings(told, var_dir, "DATABASES")["DATABASES"]["default"]["OPTIONS"]
        assert options == {
            "server_side_binding": True,
            "prepare_threshold": threshold,
            "options": "-c plan_cache_mode=force_generic_plan",
        }
    message = refusal({**env, "DATABASE_PREPARE_THRESHOLD": "-1"}, var_dir)
    assert "DATABASE_PREPARE_THRESHOLD must be 0 or more" in message


def test_it_plans_a_prepared_statement_once_unless_told(var_dir):
    env = {**SECRET, "DATABASE_URL": "postgres://mv@db.example.com/modelvault"}

    def options(told):
        return read_settings({**env, **told}, var_dir, "DATABASES")["DATABASES"]["default"][
            "OPTIONS"
        ]

    assert options({})["options"] == "-c plan_cache_mode=force_generic_plan"
    assert "options" not in options({"DATABASE_PLAN_CACHE_MODE": "auto"})
    custom = options({"DATABASE_PLAN_CACHE_MODE": "force_custom_plan"})
    assert custom["options"] == "-c plan_cache_mode=force_custom_plan"
    # The URL's own session settings are kept beside it.
    url = {"DATABASE_URL": env["DATABASE_URL"] + "?options=-c%20statement_timeout%3D5000"}
    assert options(url)["options"] == (
        "-c statement_timeout=5000 -c plan_cache_mode=force_generic_plan"
    )
    message = refusal({**env, "DATABASE_PLAN_CACHE_MODE": "generic"}, var_dir)
    assert "DATABASE_PLAN_CACHE_MODE must be force_generic_plan, auto or" in message
    assert "not 'generic'" in message


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_postgresql_session_plans_prepared_statements_once():
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("force_generic_plan",)


def test_it_keeps_database_connections_ten_minutes_or_as_told(var_dir):
    for url in ("postgres://mv@db.example.com/modelvault", f"sqlite:///{var_dir}/other.sqlite3"):
        env = {**SECRET, "DATABASE_URL": url}
        database = read_settings(env, var_dir, "DATABASES")["DATABASES"]["default"]
        assert database["CONN_MAX_AGE"] == 600
        for value in ("0", "60"):
            told = {**env, "DATABASE_CONN_MAX_AGE": value}
            database = read_settings(told, var_dir, "DATABASES")["DATABASES"]["default"]
            assert database["CONN_MAX_AGE"] == int(value)
    message = refusal({**env, "DATABASE_CONN_MAX_AGE": "-1"}, var_dir)
    assert "DATABASE_CONN_MAX_AGE must be 0 or more" in message
    message = refusal({**env, "DATABASE_CONN_MAX_AGE": "10m"}, var_dir)
    assert "DATABASE_CONN_MAX_AGE must be a whole number, not '10m'" in message


def test_it_runs_tasks_eagerly_only_without_a_broker(var_dir):
    names = ("CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER")

    assert read_settings(SECRET, var_dir, *names) == {
        "CELERY_BROKER_URL": "memory://localhost/",
        "CELERY_TASK_ALWAYS_EAGER": True,
    }
    broker = {**SECRET, "CELERY_BROKER_URL": "redis://redis.example.com:6379/0"}
    assert read_settings(broker, var_dir, *names)["CELERY_TASK_ALWAYS_EAGER"] is False


# What a Celery worker does as it starts: the task modules are imported, and Django's
# fix-up hooks its system checks onto that. Prints whether the URLs were loaded, and the tasks.
WORKER_START = """
import json, sys
from config.celery import app
app.loader.import_default_modules()
tasks = sorted(name for name in app.tasks if not name.startswith("celery."))
print(json.dumps({"urls": "config.urls" in sys.modules, "tasks": tasks}))
"""


@pytest.mark.parametrize(("given", "urls_loaded"), [(None, False), ("", True)])
def test_a_worker_loads_the_urls_only_when_told_to_run_the_checks(var_dir, given, urls_loaded):
    env = {**SECRET, "CELERY_BROKER_URL": "redis://redis.example.com:6379/0"}
    if given is not None:  # set, even empty: the operator's word, and the checks run
        env["CELERY_SKIP_CHECKS"] = given

    done = run(["-c", WORKER_START], env, var_dir)

    assert done.returncode == 0, done.stderr
    started = json.loads(done.stdout.strip().splitlines()[-1])
    assert started["urls"] is urls_loaded
    assert started["tasks"] == [
        "notifications.tasks.dispatch_event",
        "notifications.tasks.send_delivery",
        "notifications.tasks.sweep_outbox",
        "registry.tasks.collect_blob",
        "registry.tasks.send_invitation",
        "registry.tasks.sweep_unfinished_uploads",
    ]


def test_it_refuses_s3_storage_without_a_bucket(var_dir):
    message = refusal({**SECRET, "ARTIFACT_STORAGE": "s3"}, var_dir)

    assert "ARTIFACT_STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME" in message


def test_it_refuses_an_unknown_artifact_storage(var_dir):
    message = refusal({**SECRET, "ARTIFACT_STORAGE": "bogus"}, var_dir)

    assert "ARTIFACT_STORAGE must be filesystem or s3, not 'bogus'" in message


def test_it_selects_s3_storage_with_a_bucket(var_dir):
    env = {
        **SECRET,
        "ARTIFACT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "models",
        "AWS_S3_ENDPOINT_URL": "http://minio.example.com:9000",
    }

    artifacts = read_settings(env, var_dir, "STORAGES")["STORAGES"]["artifacts"]

    assert artifacts["BACKEND"] == "storages.backends.s3.S3Storage"
    assert artifacts["OPTIONS"]["bucket_name"] == "models"
    assert artifacts["OPTIONS"]["endpoint_url"] == "http://minio.example.com:9000"
    # Content-addressed keys: a second write of a key must replace, never rename.
    assert artifacts["OPTIONS"]["file_overwrite"] is True


def test_it_keeps_everything_of_the_embedded_default_under_var_dir(var_dir):
    values = read_settings(
        SECRET, var_dir, "DATABASES", "ARTIFACT_ROOT", "ARTIFACT_TMP_DIR", "STORAGES"
    )

    database = values["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(var_dir.resolve() / "modelvault.sqlite3")
    assert values["ARTIFACT_ROOT"] == str(var_dir.resolve() / "artifacts")
    assert values["STORAGES"]["artifacts"]["OPTIONS"]["location"] == values["ARTIFACT_ROOT"]
    assert values["ARTIFACT_TMP_DIR"] == str(var_dir.resolve() / "tmp")
    assert var_dir.is_dir()


def test_it_passes_the_deployment_checks_under_production_settings(var_dir):
    env = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "models.example.com",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
    }

    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, var_dir)

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_it_passes_the_deployment_checks_of_the_scaled_out_deployment(var_dir):
    # SPEC 5: PostgreSQL, Redis, S3 and several gunicorn processes behind a TLS proxy.
    env = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "models.example.com",
        "SITE_URL": "https://models.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://models.example.com",
        "BEHIND_TLS_PROXY": "true",
        "DATABASE_URL": "postgres://modelvault:secret@db.example.com:5432/modelvault",
        "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
        "CACHE_URL": "redis://redis.example.com:6379/1",
        "ARTIFACT_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "modelvault-artifacts",
        "EMAIL_HOST": "smtp.example.com",
    }

    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, var_dir)

    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_it_warns_at_deployment_when_the_token_limit_is_counted_per_process(var_dir):
    env = {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "models.example.com"}

    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env, var_dir)

    assert done.returncode == 1
    assert "(api.W001) The cache is kept per process" in done.stderr
    assert "Set CACHE_URL" in done.stderr


def test_it_reads_the_throttles_from_the_environment(var_dir):
    env = {
        **SECRET,
        "LOGIN_FAILURE_LIMIT": "7",
        "LOGIN_COOLOFF_SECONDS": "120",
        "API_TOKEN_FAILURE_LIMIT": "50",
        "API_TOKEN_FAILURE_WINDOW": "60",
        "CACHE_URL": "redis://cache.example.com:6379/2",
    }
    names = ["AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "AXES_LOCKOUT_PARAMETERS"]
    names += ["API_TOKEN_FAILURE_LIMIT", "API_TOKEN_FAILURE_WINDOW", "CACHES"]

    values = read_settings(env, var_dir, *names)

    assert values["AXES_FAILURE_LIMIT"] == 7
    assert values["AXES_COOLOFF_TIME"] == "0:02:00"
    assert values["AXES_LOCKOUT_PARAMETERS"] == ["ip_address", "username"]
    assert (values["API_TOKEN_FAILURE_LIMIT"], values["API_TOKEN_FAILURE_WINDOW"]) == (50, 60)
    cache = values["CACHES"]["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://cache.example.com:6379/2"


def test_it_keeps_its_defaults_for_the_throttles(var_dir):
    names = ["AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "API_TOKEN_FAILURE_LIMIT"]
    names += ["API_TOKEN_FAILURE_WINDOW", "CACHES", "TRUSTED_PROXY_COUNT"]

    values = read_settings(SECRET, var_dir, *names)

    assert values["AXES_FAILURE_LIMIT"] == 10
    assert values["AXES_COOLOFF_TIME"] == "0:15:00"
    assert (values["API_TOKEN_FAILURE_LIMIT"], values["API_TOKEN_FAILURE_WINDOW"]) == (20, 300)
    assert values["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert values["TRUSTED_PROXY_COUNT"] == 0
    behind = read_settings({**SECRET, "BEHIND_TLS_PROXY": "true"}, var_dir, "TRUSTED_PROXY_COUNT")
    assert behind["TRUSTED_PROXY_COUNT"] == 1


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT must be 1 or more, not 0"),
        ({"LOGIN_COOLOFF_SECONDS": "-5"}, "LOGIN_COOLOFF_SECONDS must be 1 or more, not -5"),
        ({"API_TOKEN_FAILURE_WINDOW": "0"}, "API_TOKEN_FAILURE_WINDOW must be 1 or more, not 0"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT must be 0 or more"),
        ({"CACHE_URL": "memcached://x"}, "CACHE_URL must be a redis:// URL"),
    ],
)
def test_it_refuses_throttles_that_would_not_throttle(var_dir, env, message):
    assert message in refusal({**SECRET, **env}, var_dir)


def test_it_refuses_a_log_format_it_cannot_write(var_dir):
    message = refusal({**SECRET, "LOG_FORMAT": "xml"}, var_dir)

    assert "LOG_FORMAT must be json or text, not 'xml'" in message


def test_it_says_what_is_missing_when_manage_py_runs_without_its_settings(var_dir):
    done = run(["manage.py", "makemigrations", "--check", "--dry-run"], {}, var_dir)

    assert done.returncode == 1
    assert "SECRET_KEY must be set when DEBUG is off" in done.stderr
    assert "AppRegistryNotReady" not in done.stderr
