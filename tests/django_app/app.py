"""The app side, run as a script by the tests: create the table and a row, then enqueue through django-rq."""
import json
import sys

import django

django.setup()

import django_rq  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from tests.django_app import jobs  # noqa: E402
from tests.django_app.models import Greeting  # noqa: E402

with connection.schema_editor() as editor:
    editor.create_model(Greeting)
kept = Greeting.objects.create(name="ada")
job = django_rq.enqueue(jobs.greet, kept.pk)
rolled_back = Greeting.objects.create(name="bob")
try:
    with transaction.atomic():
        django_rq.enqueue(jobs.greet, rolled_back.pk)  # with COMMIT_MODE on_db_commit: only if this commits
        raise RuntimeError("the request failed")
except RuntimeError:
    pass
json.dump({"job": job.id if job is not None else None, "backend": str(getattr(job, "backend", "rq")),
           "greeted": Greeting.objects.get(pk=kept.pk).greeted}, sys.stdout)
