"""Persistent users and merchants: generated once per seed (Faker for names and places, numpy for
the rest), so the offline batch and the live stream talk about the same people and shops.

Users carry hidden behaviour that drives their traffic but is never published: spending level,
activity rate, usual hours, a few home device IPs, regular merchants, and an optional trip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

from lakehouse.settings import SimulatorSettings

DAY_MS = 86_400_000
HOUR_MS = 3_600_000

#: category → (median ticket, log-sd of the amount, weight among merchants, sold online)
CATEGORIES: dict[str, tuple[float, float, float, bool]] = {
    "grocery": (42.0, 0.55, 0.20, False),
    "restaurant": (36.0, 0.50, 0.16, False),
    "fuel": (55.0, 0.35, 0.08, False),
    "pharmacy": (24.0, 0.55, 0.06, False),
    "fashion": (85.0, 0.65, 0.10, True),
    "electronics": (260.0, 0.80, 0.07, True),
    "home_garden": (120.0, 0.75, 0.06, True),
    "travel": (420.0, 0.70, 0.05, True),
    "jewelry": (600.0, 0.85, 0.02, True),
    "online_services": (18.0, 0.60, 0.10, True),
    "digital_goods": (12.0, 0.70, 0.06, True),
    "entertainment": (45.0, 0.60, 0.04, False),
}
CATEGORY_NAMES = list(CATEGORIES)
CURRENCY_BY_COUNTRY = {
    "US": "USD",
    "CA": "CAD",
    "GB": "GBP",
    "JP": "JPY",
    "CH": "CHF",
    "SE": "SEK",
    "NO": "NOK",
    "DK": "DKK",
    "PL": "PLN",
    "BR": "BRL",
    "MX": "MXN",
    "IN": "INR",
    "SG": "SGD",
    "ZA": "ZAR",
    "AU": "AUD",
    "NZ": "NZD",
    **dict.fromkeys(("DE", "FR", "IT", "ES", "NL", "BE", "AT", "IE", "PT", "FI", "GR", "SK", "SI", "LU"), "EUR"),
}
EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (numpy arrays or scalars)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def random_public_ipv4(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random IPv4 addresses outside private, loopback, multicast and reserved ranges."""
    first = rng.choice(np.array([o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198, 203)]), n)
    rest = rng.integers(1, 255, size=(n, 3))
    return np.array([f"{a}.{b}.{c}.{d}" for a, (b, c, d) in zip(first.tolist(), rest.tolist(), strict=True)])


@dataclass
class Cities:
    name: np.ndarray  # "City, CC"
    latitude: np.ndarray
    longitude: np.ndarray
    currency: np.ndarray
    weight: np.ndarray  # share of the population living there


@dataclass
class Population:
    """Users and merchants as columns (index = position); ids are stable for a seed."""

    seed: int
    start_ms: int  # the simulator's epoch: midnight UTC at the start of the offline span
    cities: Cities
    # users
    user_id: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    home_city: np.ndarray
    home_lat: np.ndarray
    home_lon: np.ndarray
    signup_ms: np.ndarray
    spending: np.ndarray  # multiplier of category medians
    activity: np.ndarray  # relative payment rate
    usual_hour: np.ndarray
    hour_spread: np.ndarray
    ips: np.ndarray  # (users, 3) home device IPs
    favourites: np.ndarray  # (users, 4) regular merchants near home
    trip_city: np.ndarray  # -1 when no trip
    trip_start_day: np.ndarray
    trip_days: np.ndarray
    move_day: np.ndarray  # -1 when the user does not move; else the day the profile changes
    move_city: np.ndarray
    # merchants
    merchant_id: np.ndarray
    merchant_name: np.ndarray
    category: np.ndarray  # index into CATEGORY_NAMES
    merchant_city: np.ndarray  # online merchants: the city they bill from (their currency)
    merchant_lat: np.ndarray  # NaN for online merchants
    merchant_lon: np.ndarray
    merchant_created_ms: np.ndarray
    city_merchants: list[np.ndarray]  # per city: its physical (non-online) merchants
    online_merchants: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_id)

    def currency_of_merchants(self, merchants: np.ndarray) -> np.ndarray:
        return self.cities.currency[self.merchant_city[merchants]]

    def typical_amount(self, users: np.ndarray, merchants: np.ndarray) -> np.ndarray:
        medians = np.array([CATEGORIES[c][0] for c in CATEGORY_NAMES])
        return medians[self.category[merchants]] * self.spending[users]


def build_population(sim: SimulatorSettings, start_ms: int) -> Population:
    """Users, merchants and cities for ``sim.seed``: identical for the same seed and settings."""
    rng = np.random.default_rng([sim.seed, 1])
    faker = Faker()
    faker.seed_instance(sim.seed)

    cities = _cities(sim, rng, faker)
    n_cities = len(cities.name)

    # ---- merchants: every city gets some shops; online shops sit in the big cities
    n_m = sim.merchants
    weights = np.array([CATEGORIES[c][2] for c in CATEGORY_NAMES])
    category = rng.choice(len(CATEGORY_NAMES), n_m, p=weights / weights.sum())
    merchant_city = np.concatenate([np.arange(n_cities), rng.choice(n_cities, n_m - n_cities, p=cities.weight)])[:n_m]
    rng.shuffle(merchant_city)
    jitter = rng.normal(0, 0.05, size=(n_m, 2))
    merchant_lat = cities.latitude[merchant_city] + jitter[:, 0]
    merchant_lon = cities.longitude[merchant_city] + jitter[:, 1]
    merchant_created_ms = start_ms - rng.integers(30, 3650, n_m) * DAY_MS
    merchant_name = np.array([faker.company() for _ in range(n_m)])
    online_capable = np.array([CATEGORIES[CATEGORY_NAMES[c]][3] for c in category])
    online = online_capable & (rng.random(n_m) < 0.5)
    # An online shop has no place where the customer stands: no coordinates, so that distance and
    # travel-speed features skip it instead of measuring to its registered office.
    merchant_lat = np.where(online, np.nan, merchant_lat)
    merchant_lon = np.where(online, np.nan, merchant_lon)
    physical = ~online
    city_merchants = [np.flatnonzero((merchant_city == c) & physical) for c in range(n_cities)]
    for c, shops in enumerate(city_merchants):  # a city with no physical shop uses any of its merchants
        if len(shops) == 0:
            city_merchants[c] = np.flatnonzero(merchant_city == c)
    online_merchants = np.flatnonzero(online)
    if len(online_merchants) == 0:
        online_merchants = np.flatnonzero(online_capable)[:1] if online_capable.any() else np.arange(1)

    # ---- users
    n_u = sim.users
    home_city = rng.choice(n_cities, n_u, p=cities.weight)
    home_lat = cities.latitude[home_city] + rng.normal(0, 0.04, n_u)
    home_lon = cities.longitude[home_city] + rng.normal(0, 0.04, n_u)
    age = np.clip(rng.gamma(9.0, 4.6, n_u).astype(int) + 18, 18, 95)
    gender = rng.choice(np.array(["F", "M", "X"]), n_u, p=[0.49, 0.49, 0.02])
    span_ms = sim.days * DAY_MS
    new_user = rng.random(n_u) < sim.new_user_share
    signup_ms = np.where(
        new_user,
        start_ms + (rng.random(n_u) * span_ms).astype(np.int64),
        start_ms - rng.integers(1, 8 * 365, n_u).astype(np.int64) * DAY_MS,
    )
    spending = np.exp(rng.normal(0, 0.6, n_u))
    activity = np.exp(rng.normal(0, 0.7, n_u))
    usual_hour = np.where(rng.random(n_u) < 0.7, rng.normal(13.5, 2.5, n_u), rng.normal(19.5, 1.5, n_u)) % 24
    hour_spread = rng.uniform(1.5, 4.0, n_u)
    ips = random_public_ipv4(rng, n_u * 3).reshape(n_u, 3)
    favourites = (
        np.stack([c[rng.integers(0, len(c), 4)] for c in (city_merchants[h] for h in home_city.tolist())])
        if n_u
        else np.zeros((0, 4), dtype=int)
    )
    travels = rng.random(n_u) < sim.travel_probability
    trip_city = np.where(travels, rng.choice(n_cities, n_u, p=cities.weight), -1)
    trip_city = np.where(trip_city == home_city, (home_city + 1) % n_cities, trip_city)
    trip_city = np.where(travels, trip_city, -1)
    trip_start_day = rng.integers(0, sim.days, n_u)
    trip_days = rng.integers(2, 8, n_u)
    moves = rng.random(n_u) < sim.profile_change_probability
    move_day = np.where(moves, rng.integers(1, max(sim.days, 2), n_u), -1)
    move_city = np.where(moves, rng.choice(n_cities, n_u, p=cities.weight), -1)

    width_u, width_m = len(str(n_u)), len(str(n_m))
    return Population(
        seed=sim.seed,
        start_ms=start_ms,
        cities=cities,
        user_id=np.array([f"U{i:0{max(width_u, 6)}d}" for i in range(n_u)]),
        age=age,
        gender=gender,
        home_city=home_city,
        home_lat=home_lat,
        home_lon=home_lon,
        signup_ms=signup_ms,
        spending=spending,
        activity=activity,
        usual_hour=usual_hour,
        hour_spread=hour_spread,
        ips=ips,
        favourites=favourites,
        trip_city=trip_city,
        trip_start_day=trip_start_day,
        trip_days=trip_days,
        move_day=move_day,
        move_city=move_city,
        merchant_id=np.array([f"M{i:0{max(width_m, 5)}d}" for i in range(n_m)]),
        merchant_name=merchant_name,
        category=category,
        merchant_city=merchant_city,
        merchant_lat=merchant_lat,
        merchant_lon=merchant_lon,
        merchant_created_ms=merchant_created_ms,
        city_merchants=city_merchants,
        online_merchants=online_merchants,
    )


def _cities(sim: SimulatorSettings, rng: np.random.Generator, faker: Faker) -> Cities:
    seen: dict[str, tuple[float, float, str]] = {}
    attempts = 0
    while len(seen) < sim.cities and attempts < sim.cities * 50:
        lat, lon, place, country, _tz = faker.location_on_land()
        seen.setdefault(f"{place}, {country}", (float(lat), float(lon), CURRENCY_BY_COUNTRY.get(country, "USD")))
        attempts += 1
    names = np.array(list(seen))
    lat = np.array([v[0] for v in seen.values()])
    lon = np.array([v[1] for v in seen.values()])
    currency = np.array([v[2] for v in seen.values()])
    ranks = np.arange(1, len(names) + 1)
    weight = 1.0 / ranks**0.9  # a few big cities, a long tail
    return Cities(names, lat, lon, currency, weight / weight.sum())
