"""Jobs for tests/integration/test_pickled_payloads.py: an app that passes objects (a model instance) to jobs, as
django-rq apps do. send_invoice is the job the tests opt in to pickled payloads; archive_invoice never is."""
from __future__ import annotations

from dataclasses import dataclass, field

SEND = "tests.pickle_jobs.send_invoice"
ARCHIVE = "tests.pickle_jobs.archive_invoice"


@dataclass
class Invoice:
    """An object tagged JSON cannot carry: only pickle moves it."""

    number: int
    customer: str
    lines: list[int] = field(default_factory=list)

    def total(self) -> int:
        return sum(self.lines)


def send_invoice(invoice: Invoice, note: str = "") -> dict[str, object]:
    """What the job saw: the object itself (its class, its attributes, its method), stored as a JSON result."""
    return {"type": f"{type(invoice).__module__}.{type(invoice).__qualname__}", "number": invoice.number,
            "customer": invoice.customer, "total": invoice.total(), "note": note}


def archive_invoice(invoice: Invoice) -> int:
    return invoice.number
