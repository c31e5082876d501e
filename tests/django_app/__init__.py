"""A minimal Django project whose jobs go through django-rq, routed by migrator (tests/integration/test_frameworks.py)."""
