import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    task_postrun,
    task_prerun,
)
from django.conf import settings
from django.db import close_old_connections

from config.requestlog import JsonFormatter, RequestIdFilter, request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# What `celery --skip-checks` sets: a worker does not run Django's system checks when it
# starts, as gunicorn does not. They import the URL configuration (every view, the API's
# schemas) into each worker process, about 40 MiB of the worker's tree that no task but
# the e-mails' links needs; the checks run in manage.py (migrate, check --deploy).
os.environ.setdefault("CELERY_SKIP_CHECKS", "true")

app = Celery("modelvault")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_task_connections(sender, **kwargs) -> None:
    """A worker keeps its database connections across tasks (CELERY_DB_REUSE_MAX) and closes
    them once older than CONN_MAX_AGE or broken, as Django does around a request. An eager
    task runs inside its caller's transaction: its connection is left alone."""
    if not sender.request.is_eager:
        close_old_connections()


# The request id (config/requestlog.py) goes with each task a request enqueues, as a message
# header, and is the task's while it runs: its log lines carry the request's id.
REQUEST_ID_HEADER = "request_id"


@before_task_publish.connect
def carry_request_id(headers=None, **kwargs) -> None:
    current = request_id.get()
    if current is not None and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, current)


@task_prerun.connect
def adopt_request_id(task=None, **kwargs) -> None:
    if task is not None and not task.request.is_eager:
        request_id.set(task.request.get(REQUEST_ID_HEADER))


@after_setup_logger.connect
@after_setup_task_logger.connect
def log_as_the_server_does(logger=None, **kwargs) -> None:
    """The worker's log handlers (set up by Celery for --logfile and --loglevel) get the
    request id, and write JSON lines when the server does."""
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
