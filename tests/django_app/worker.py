"""`migrator worker --setup tests.django_app.worker:setup`: what `rqworker` (manage.py) does before any job."""


def setup() -> None:
    import django

    django.setup()
