"""Settings of the minimal Django project: a SQLite database of its own, django-rq with migrator's queue class."""
import os

SECRET_KEY = "tests-only"
INSTALLED_APPS = ["django_rq", "tests.django_app"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DJANGO_DB"]}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
RQ_QUEUES = {"default": {"URL": os.environ["REDIS_URL"], "ASYNC": os.environ.get("RQ_ASYNC", "1") == "1"}}
RQ = {"QUEUE_CLASS": "migrator.integrations.django_rq.Queue", "COMMIT_MODE": os.environ.get("RQ_COMMIT", "auto")}
