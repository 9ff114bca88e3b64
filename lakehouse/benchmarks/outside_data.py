"""Outside-style payments for ``fraudlake bench detection``: a data set of our own making in the
shape of the public simulated card-fraud data the fraud-detection literature uses, so detection is
judged on data the product's simulator did not make.

It differs from the simulator on purpose: one CSV with its own column names and no user, merchant,
device or currency columns; customers and terminals on a 100 x 100 grid, each customer paying at
the terminals within a radius of their home; amounts from a per-customer normal law; and three
fraud patterns of its own:

1. ``1``: any payment over 220 is fraud;
2. ``2``: each day a few terminals are compromised for the next 28 days: every payment at them is fraud;
3. ``3``: each day a few customers are compromised for the next 14 days: a third of their payments
   are multiplied by 5, and those are fraud.

The published design has 5,000 customers, 10,000 terminals, 2 compromised terminals and 3
compromised customers a day; smaller worlds keep those rates per terminal and per customer.
Deterministic for a seed.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

#: The file's columns → the contract's fields (``fraudlake import --map``).
MAPPING = {
    "transaction_id": "TRANSACTION_ID",
    "timestamp": "TX_DATETIME",
    "user_id": "CUSTOMER_ID",
    "merchant_id": "TERMINAL_ID",
    "amount": "TX_AMOUNT",
    "is_fraud": "TX_FRAUD",
    "fraud_scenario": "TX_FRAUD_SCENARIO",
}
SCENARIOS = {"1": "amount over 220", "2": "compromised terminal", "3": "compromised customer"}
GRID = 100.0
RADIUS = 5.0
AMOUNT_LIMIT = 220.0
TERMINAL_DAYS, CUSTOMER_DAYS = 28, 14
#: Compromised per day in the published world (5,000 customers, 10,000 terminals).
TERMINALS_PER_DAY, CUSTOMERS_PER_DAY = 2 / 10_000, 3 / 5_000


def generate(customers: int, terminals: int, days: int, start: date, seed: int = 7) -> pd.DataFrame:
    """The transactions of ``days`` days from ``start``, in time order (see the module doc)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    home = rng.uniform(0, GRID, (customers, 2))
    mean_amount = rng.uniform(5, 100, customers)
    per_day = rng.uniform(0, 4, customers)
    places = rng.uniform(0, GRID, (terminals, 2))
    near = np.linalg.norm(home[:, None, :] - places[None, :, :], axis=2) < RADIUS
    counts = near.sum(axis=1)
    offsets = np.r_[0, np.cumsum(counts)[:-1]]
    reachable = np.flatnonzero(near.ravel()) % terminals  # row-major: customer by customer

    n = rng.poisson(per_day, (days, customers))
    day, customer = np.nonzero(n)
    repeats = n[day, customer]
    day, customer = np.repeat(day, repeats), np.repeat(customer, repeats)
    seconds = rng.normal(43_200, 20_000, len(day))
    amount = rng.normal(mean_amount[customer], mean_amount[customer] / 2)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean_amount[customer[negative]])
    keep = (seconds >= 0) & (seconds < 86_400) & (counts[customer] > 0)
    day, customer, seconds, amount = day[keep], customer[keep], seconds[keep].astype(np.int64), amount[keep]
    pick = offsets[customer] + (rng.uniform(0, 1, len(day)) * counts[customer]).astype(np.int64)
    terminal = reachable[pick]
    amount = np.round(amount, 2)

    scenario = np.where(amount > AMOUNT_LIMIT, 1, 0)
    hit = _compromised(rng, days, terminals, TERMINALS_PER_DAY * terminals, TERMINAL_DAYS)[day, terminal]
    scenario[hit] = 2
    chosen = _compromised(rng, days, customers, CUSTOMERS_PER_DAY * customers, CUSTOMER_DAYS)[day, customer]
    chosen &= rng.uniform(0, 1, len(day)) < 1 / 3
    amount[chosen] = np.round(amount[chosen] * 5, 2)
    scenario[chosen] = 3

    elapsed = day.astype(np.int64) * 86_400 + seconds
    order = np.argsort(elapsed, kind="stable")
    origin = datetime.combine(start, time())
    when = pd.to_datetime(origin) + pd.to_timedelta(elapsed[order], unit="s")
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(order)),
            "TX_DATETIME": when.strftime("%Y-%m-%d %H:%M:%S"),
            "CUSTOMER_ID": customer[order],
            "TERMINAL_ID": terminal[order],
            "TX_AMOUNT": amount[order],
            "TX_TIME_SECONDS": elapsed[order],
            "TX_TIME_DAYS": day[order],
            "TX_FRAUD": (scenario[order] > 0).astype(int),
            "TX_FRAUD_SCENARIO": scenario[order],
        }
    )


def _compromised(rng: np.random.Generator, days: int, population: int, per_day: float, lasting: int) -> np.ndarray:
    """(days x population): True where a member, chosen on some day, is compromised on that day
    and the ``lasting - 1`` days after it."""
    out = np.zeros((days, population), bool)
    for first in range(days):
        chosen = rng.choice(population, size=min(population, rng.poisson(per_day)), replace=False)
        out[first : first + lasting, chosen] = True
    return out


def first_day(days: int, today: date | None = None) -> date:
    """A start whose last day ends before ``today`` (an import refuses times ahead of it)."""
    return (today or date.today()) - timedelta(days=days + 1)
