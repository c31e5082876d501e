"""The Django app's job: takes a model's id, as django-rq apps pass them."""
from tests.django_app.models import Greeting


def greet(pk: int) -> str:
    greeting = Greeting.objects.get(pk=pk)
    greeting.greeted = True
    greeting.save()
    return greeting.name
