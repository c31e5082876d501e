"""One model, as a job typically takes its id."""
from django.db import models


class Greeting(models.Model):
    name = models.CharField(max_length=50)
    greeted = models.BooleanField(default=False)
