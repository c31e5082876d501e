"""Integrations with the frameworks RQ apps run in (django-rq); each imports its framework, and only it."""
