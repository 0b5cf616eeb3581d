import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

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
