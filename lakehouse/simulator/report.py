"""How each simulated fraud scenario stands out: history features, per-scenario medians, a Markdown report.

The simulator promises (see :mod:`lakehouse.simulator.traffic`) that fraud is visible only in a
transaction's history, never in one giveaway field. This module checks that promise on a batch:

* :func:`history_features` computes, for every transaction, features built only from *strictly
  earlier* transactions (by event time) of the same user or merchant: velocity, departure from the
  user's own amounts and devices, distance and travel speed, the merchant's recent volume.
* :func:`scenario_statistics` summarises them per scenario (medians) next to legitimate traffic.
* :func:`render_markdown` / :func:`write_report` turn the summary into a short document whose
  sentences are derived from the numbers, including where a single field overlaps legitimate traffic.

Labels (``fraud_scenario``) are carried through for grouping only; no feature reads them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lakehouse.simulator.entities import HOUR_MS, haversine_km
from lakehouse.simulator.simulation import Simulation
from lakehouse.simulator.traffic import SCENARIOS, TxBatch

LEGITIMATE = "legitimate"
MINUTE_MS = 60_000
#: History features, in report order.
HISTORY_FEATURES = (
    "user_tx_1h",
    "user_tx_24h",
    "user_distinct_merchants_1h",
    "amount_to_user_median",
    "new_device_ip",
    "home_distance_km",
    "speed_kmh_since_prev",
    "merchant_tx_24h",
)
#: Below this value a median is noise, not a signal: two medians under it never "differ", and a
#: ratio against a median of 0 is taken against this floor instead.
FEATURE_FLOOR = {
    "user_tx_1h": 1.0,
    "user_tx_24h": 1.0,
    "user_distinct_merchants_1h": 1.0,
    "amount_to_user_median": 0.5,
    "new_device_ip": 0.5,
    "home_distance_km": 50.0,
    "speed_kmh_since_prev": 50.0,
    "merchant_tx_24h": 1.0,
}
#: Medians this many times apart (either way) count as separating a scenario from legitimate traffic.
SEPARATION_FACTOR = 2.0
#: Decimals per statistics column (counts of transactions stay integers).
ROUNDING = {
    "user_tx_1h": 1,
    "user_tx_24h": 1,
    "user_distinct_merchants_1h": 1,
    "amount_to_user_median": 2,
    "new_device_ip": 2,
    "home_distance_km": 0,
    "speed_kmh_since_prev": 0,
    "merchant_tx_24h": 1,
    "amount_p50": 2,
    "amount_p99": 2,
    "night_share": 3,
}
NIGHT_END_HOUR = 6
MONEY_COLUMNS = {"amount_p50", "amount_p99"}


# --------------------------------------------------------------------------- features


def history_features(sim: Simulation, batch: TxBatch) -> pd.DataFrame:
    """One row per transaction of ``batch`` (in batch order) with history features.

    Needs: the batch's ``transaction_id``, ``ts_ms``, ``user``, ``merchant``, ``amount``,
    ``device_ip`` and ``scenario`` columns, and ``sim.population`` for user homes and merchant
    locations (the population's original homes, even for users who move during the span).

    Returns columns ``transaction_id``, ``fraud_scenario`` ("legitimate" when unlabelled),
    ``amount``, ``hour`` (UTC hour of day) and :data:`HISTORY_FEATURES`:

    * ``user_tx_1h`` / ``user_tx_24h``: the user's transactions in ``[t - window, t)``.
    * ``user_distinct_merchants_1h``: distinct merchants among those of the last hour.
    * ``amount_to_user_median``: amount / median of the user's earlier amounts (NaN without history).
    * ``new_device_ip``: 1.0 when the device IP never appeared in the user's earlier transactions,
      0.0 when it did, NaN for the user's first transaction.
    * ``home_distance_km``: user's home to the merchant.
    * ``speed_kmh_since_prev``: merchant-to-merchant distance from the user's previous transaction
      over the elapsed hours (at least one minute), NaN for the first transaction.
    * ``merchant_tx_24h``: the merchant's transactions in ``[t - 24h, t)``.

    "Earlier" means a strictly smaller timestamp: transactions stamped in the same millisecond do
    not see each other, so neither the current row nor anything at or after its time leaks in.
    The batch need not be sorted (days spill over midnight when they are concatenated).
    """
    pop = sim.population
    ts = np.asarray(batch.ts_ms, dtype=np.int64)
    user = np.asarray(batch.user, dtype=np.int64)
    merchant = np.asarray(batch.merchant, dtype=np.int64)
    amount = np.asarray(batch.amount, dtype=float)
    n = len(ts)

    # Everything below works on rows sorted by (user, time) and is scattered back at the end.
    order = np.lexsort((ts, user))
    s_ts, s_user, s_merchant, s_amount = ts[order], user[order], merchant[order], amount[order]
    s_ip = np.asarray(batch.device_ip, dtype=object)[order]
    user_key = _group_time_key(s_user, s_ts)
    user_start = np.searchsorted(s_user, s_user, "left")
    # First row of the same user at the same instant: rows before it are exactly the strict history.
    history_end = np.searchsorted(user_key, user_key, "left")
    has_history = history_end > user_start

    hour_start = np.searchsorted(user_key, user_key - HOUR_MS, "left")
    day_start = np.searchsorted(user_key, user_key - 24 * HOUR_MS, "left")
    user_tx_1h = history_end - hour_start
    user_tx_24h = history_end - day_start
    distinct_1h = _distinct_in_windows(_previous_same(s_user, s_merchant), hour_start, history_end)

    prev = np.where(has_history, history_end - 1, 0)
    # A cumulative median per user, read at the row just before the history ends.
    running_median = pd.Series(s_amount).groupby(s_user).expanding().median().droplevel(0).sort_index().to_numpy()
    amount_to_median = np.where(has_history, s_amount / running_median[prev], np.nan)

    # A device is new when its first appearance for the user is not strictly earlier than now.
    first_seen = pd.Series(s_ts).groupby([s_user, s_ip]).transform("min").to_numpy()
    new_ip = np.where(has_history, (first_seen >= s_ts).astype(float), np.nan)

    m_lat, m_lon = pop.merchant_lat[s_merchant], pop.merchant_lon[s_merchant]
    home_km = haversine_km(pop.home_lat[s_user], pop.home_lon[s_user], m_lat, m_lon)
    hop_km = haversine_km(m_lat[prev], m_lon[prev], m_lat, m_lon)
    elapsed_h = np.maximum(s_ts - s_ts[prev], MINUTE_MS) / HOUR_MS
    speed = np.where(has_history, hop_km / elapsed_h, np.nan)

    features = pd.DataFrame(
        {
            "user_tx_1h": user_tx_1h,
            "user_tx_24h": user_tx_24h,
            "user_distinct_merchants_1h": distinct_1h,
            "amount_to_user_median": amount_to_median,
            "new_device_ip": new_ip,
            "home_distance_km": home_km,
            "speed_kmh_since_prev": speed,
        }
    )
    unsorted = np.empty(n, dtype=np.int64)
    unsorted[order] = np.arange(n)
    features = features.iloc[unsorted].reset_index(drop=True)
    features["merchant_tx_24h"] = _counts_before(merchant, ts, 24 * HOUR_MS)

    scenario = pd.Series(batch.scenario, dtype=object)
    head = pd.DataFrame(
        {
            "transaction_id": np.asarray(batch.transaction_id, dtype=object),
            "fraud_scenario": scenario.where(scenario.notna(), LEGITIMATE).astype(str),
            "amount": amount,
            "hour": (ts // HOUR_MS) % 24,
        }
    )
    return pd.concat([head, features], axis=1)


def _group_time_key(group: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """One sortable int64 per (group, time), so one searchsorted finds windows of every group at once.

    Groups are spaced wider than the batch's time span plus 48 h, so ``key - window`` for a window
    of up to 48 h never reaches into the previous group's keys.
    """
    if len(ts) == 0:
        return ts.astype(np.int64)
    origin = ts.min() - 48 * HOUR_MS
    stride = int(ts.max() - origin) + 1
    return group.astype(np.int64) * stride + (ts - origin)


def _counts_before(group: np.ndarray, ts: np.ndarray, window_ms: int) -> np.ndarray:
    """Per row, the same group's rows with a timestamp in ``[t - window_ms, t)`` (rows in any order)."""
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = _group_time_key(np.asarray(group, dtype=np.int64), np.asarray(ts, dtype=np.int64))
    sorted_keys = np.sort(keys)
    return np.searchsorted(sorted_keys, keys, "left") - np.searchsorted(sorted_keys, keys - window_ms, "left")


def _previous_same(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """For rows sorted by (group, time): the index of the previous row with the same (group, value), or -1."""
    n = len(group)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    by_pair = np.lexsort((np.arange(n), value, group))  # pairs together, time order kept inside
    same_pair = np.zeros(n, dtype=bool)
    same_pair[1:] = (group[by_pair][1:] == group[by_pair][:-1]) & (value[by_pair][1:] == value[by_pair][:-1])
    previous = np.full(n, -1, dtype=np.int64)
    previous[by_pair[1:][same_pair[1:]]] = by_pair[:-1][same_pair[1:]]
    return previous


def _distinct_in_windows(previous_same: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Distinct values among rows ``[start, end)`` of each window, given each row's previous equal row.

    A row is the first of its value inside a window exactly when its previous equal row lies before
    the window start, so counting those rows counts distinct values. Windows are short (an hour of
    one user's payments), so looping over the offset inside the window stays cheap and vectorised.
    """
    distinct = np.zeros(len(start), dtype=np.int64)
    size = end - start
    for offset in range(int(size.max()) if len(size) else 0):
        rows = np.flatnonzero(size > offset)
        member = start[rows] + offset
        distinct[rows] += previous_same[member] < start[rows]
    return distinct


# --------------------------------------------------------------------------- statistics


def scenario_statistics(features: pd.DataFrame) -> pd.DataFrame:
    """Per scenario (and "legitimate", first): how its transactions look on average.

    Needs the columns of :func:`history_features` (``fraud_scenario``, ``amount``, ``hour`` and
    :data:`HISTORY_FEATURES`). Returns one row per group, indexed by the group's name, with
    ``count``, the median of every history feature (NaN values, i.e. no history, skipped),
    ``amount_p50``, ``amount_p99`` and ``night_share`` (share with UTC hour < 6), rounded per
    :data:`ROUNDING`. Scenarios absent from ``features`` are left out.
    """
    grouped = features.groupby("fraud_scenario", sort=False)
    stats = grouped[list(HISTORY_FEATURES)].median()
    stats.insert(0, "count", grouped.size())
    stats["amount_p50"] = grouped["amount"].median()
    stats["amount_p99"] = grouped["amount"].quantile(0.99)
    stats["night_share"] = grouped["hour"].apply(lambda hour: float((hour < NIGHT_END_HOUR).mean()))
    known = [LEGITIMATE, *SCENARIOS]
    order = [g for g in known if g in stats.index] + sorted(g for g in stats.index if g not in known)
    stats = stats.loc[order].round(ROUNDING)
    stats.index.name = "scenario"
    return stats


# --------------------------------------------------------------------------- report

SCENARIO_STORY = {
    "card_testing": "bursts of tiny online payments, seconds apart, to check a stolen card works",
    "account_takeover": "a few big-ticket payments from a far-away city and a fraudster's device",
    "compromised_merchant": "one merchant's server charging many different cards for days",
    "stolen_card_spree": "a run of payments at home-city shops within minutes to hours, from a new device",
    "amount_anomaly": "one payment many times the user's usual ticket, from the user's own device",
    "impossible_travel": "a payment far away minutes after a genuine one at home",
}


def render_markdown(stats: pd.DataFrame, meta: dict) -> str:
    """The report as Markdown: title, a meta line, the statistics table, a paragraph per scenario.

    ``stats`` is :func:`scenario_statistics`'s output (must contain the "legitimate" row);
    ``meta`` may hold ``seed``, ``traffic_seed``, ``transactions``, ``fraud``, ``start`` and
    ``days`` (missing keys are left out of the meta line).
    """
    lines = ["# Fraud scenarios vs legitimate traffic", "", _meta_line(meta), "", *_markdown_table(stats), ""]
    lines += [
        "Feature medians come only from each user's (or merchant's) strictly earlier transactions. "
        f"A feature *separates* a scenario when its median is at least {SEPARATION_FACTOR:g}x apart "
        "from the legitimate median (values below a per-feature noise floor count as the floor).",
        "",
    ]
    legit = stats.loc[LEGITIMATE]
    for name, row in stats.iterrows():
        if name == LEGITIMATE:
            continue
        lines += [f"## {name}", "", _scenario_paragraph(str(name), row, legit), ""]
    return "\n".join(lines)


def write_report(path: Path, sim: Simulation, batch: TxBatch) -> pd.DataFrame:
    """Compute features and statistics for ``batch``, write the Markdown report to ``path``.

    Returns the statistics table (see :func:`scenario_statistics`).
    """
    stats = scenario_statistics(history_features(sim, batch))
    meta = {
        "seed": sim.sim.seed,
        "traffic_seed": sim.traffic_seed,
        "transactions": len(batch),
        "fraud": int(batch.is_fraud.sum()),
        "start": sim.start.isoformat(),
        "days": sim.sim.days,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(stats, meta))
    return stats


def write_simulation_report(path: Path, sim: Simulation) -> pd.DataFrame:
    """:func:`write_report` on the simulation's whole offline batch (simulated again, day by day)."""
    return write_report(path, sim, TxBatch.concat([batch for _, batch in sim.offline_batch()]))


def _meta_line(meta: dict) -> str:
    parts = []
    if "seed" in meta:
        seed = f"seed {meta['seed']}"
        if meta.get("traffic_seed", meta["seed"]) != meta["seed"]:
            seed += f" (traffic seed {meta['traffic_seed']})"
        parts.append(seed)
    if "transactions" in meta:
        parts.append(f"{meta['transactions']:,} transactions")
    if "fraud" in meta:
        share = f" ({meta['fraud'] / meta['transactions']:.2%})" if meta.get("transactions") else ""
        parts.append(f"{meta['fraud']:,} fraudulent{share}")
    if "start" in meta:
        days = f", {meta['days']} days" if "days" in meta else ""
        parts.append(f"span from {meta['start']}{days}")
    return "; ".join(parts) + "."


def _markdown_table(stats: pd.DataFrame) -> list[str]:
    header = [stats.index.name or "", *map(str, stats.columns)]
    rows = [[str(name), *(_fmt(row[c], c) for c in stats.columns)] for name, row in stats.iterrows()]
    aligned = ["---", *["---:"] * len(stats.columns)]
    return ["| " + " | ".join(cells) + " |" for cells in (header, aligned, *rows)]


def _fmt(value, column: str) -> str:
    """A statistic as text: "-" for NaN, money with two decimals, other numbers without trailing zeros."""
    if value is None or pd.isna(value):
        return "-"
    decimals = ROUNDING.get(column, 0)
    text = f"{float(value):,.{decimals}f}"
    if column in MONEY_COLUMNS or "." not in text:
        return text
    return text.rstrip("0").rstrip(".")


def _separating(row: pd.Series, legit: pd.Series) -> list[tuple[str, float]]:
    """History features whose median is far from legitimate's, most different first (feature, factor)."""
    found = []
    for feature in HISTORY_FEATURES:
        value, base = row[feature], legit[feature]
        if pd.isna(value) or pd.isna(base):
            continue
        floor = FEATURE_FLOOR[feature]
        factor = max(value, floor) / max(base, floor)
        if factor >= SEPARATION_FACTOR or factor <= 1 / SEPARATION_FACTOR:
            found.append((feature, factor))
    return sorted(found, key=lambda item: -abs(math.log(item[1])))


def _scenario_paragraph(name: str, row: pd.Series, legit: pd.Series) -> str:
    story = SCENARIO_STORY.get(name)
    sentences = [f"{int(row['count']):,} transactions" + (f": {story}." if story else ".")]
    separating = _separating(row, legit)
    if separating:
        shown = ", ".join(
            f"{feature} {_fmt(row[feature], feature)} vs {_fmt(legit[feature], feature)}"
            f" ({'higher' if factor > 1 else 'lower'})"
            for feature, factor in separating
        )
        sentences.append(f"Separated from legitimate traffic by history (median {shown}).")
    else:
        sentences.append(
            "**No history feature's median separates it from legitimate traffic**: the simulator "
            "should make this scenario more distinctive."
        )
    p50 = _fmt(row["amount_p50"], "amount_p50")
    legit_p50, legit_p99 = _fmt(legit["amount_p50"], "amount_p50"), _fmt(legit["amount_p99"], "amount_p99")
    if row["amount_p50"] <= legit["amount_p99"]:
        sentences.append(
            f"Amount alone overlaps: its median amount {p50} lies within legitimate amounts "
            f"(legitimate median {legit_p50}, p99 {legit_p99})."
        )
    else:
        sentences.append(
            f"Its median amount {p50} is above the legitimate p99 {legit_p99}: a raw amount threshold "
            "would catch much of it, but only by also flagging 1% of legitimate payments."
        )
    night, legit_night = _fmt(row["night_share"], "night_share"), _fmt(legit["night_share"], "night_share")
    sentences.append(f"Night share (UTC hour < {NIGHT_END_HOUR}) {night} vs {legit_night} for legitimate.")
    return " ".join(sentences)
