"""Values an app passes to RQ that the new backend's tagged JSON cannot carry (RQ pickles them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Money:
    cents: int
    currency: str = "EUR"
