"""The demo's ledger: what was enqueued, what ran where, and what was lost or ran twice."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS demo_ledger (key text NOT NULL, side text NOT NULL, pid integer NOT NULL,
                                        at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS demo_enqueued (key text PRIMARY KEY, backend text NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Tally:
    enqueued: int
    ran: int
    ran_on: dict[str, int]
    lost: int
    duplicated: int
    lost_keys: list[str]
    duplicated_keys: list[str]


def create(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)


def note_enqueued(conn: psycopg.Connection, keys: list[tuple[str, str]]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO demo_enqueued (key, backend) VALUES (%s, %s)", keys)


def tally(url: str) -> Tally:
    with psycopg.connect(url, autocommit=True) as conn:
        enqueued = conn.execute("SELECT count(*) FROM demo_enqueued").fetchone()[0]  # type: ignore[index]
        ran = conn.execute("SELECT count(DISTINCT key) FROM demo_ledger").fetchone()[0]  # type: ignore[index]
        sides: dict[str, int] = dict(conn.execute("SELECT side, count(*) FROM demo_ledger GROUP BY side").fetchall())
        lost = [k for (k,) in conn.execute(
            "SELECT e.key FROM demo_enqueued e WHERE NOT EXISTS (SELECT 1 FROM demo_ledger l WHERE l.key = e.key)"
            " ORDER BY 1 LIMIT 20")]
        n_lost = conn.execute("SELECT count(*) FROM demo_enqueued e WHERE NOT EXISTS "
                              "(SELECT 1 FROM demo_ledger l WHERE l.key = e.key)").fetchone()[0]  # type: ignore[index]
        dups = [k for (k,) in conn.execute(
            "SELECT key FROM demo_ledger GROUP BY key HAVING count(*) > 1 ORDER BY 1")]
    return Tally(enqueued, ran, sides, n_lost, len(dups), lost, dups[:20])
