"""Deterministic offer generators: the same seed gives the same marketplace."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from marketplane.catalog.model import OfferDraft

BOOKS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "isbn": {"type": "string", "x-gtin": True},
        "author": {"type": "string", "maxLength": 200},
        "year": {"type": "integer", "minimum": 1450, "maximum": 2100},
        "language": {"type": "string", "maxLength": 8},
    },
    "required": ["isbn", "author", "year"],
}
STAYS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 100},
        "check_in": {"type": "string", "format": "date"},
        "nights": {"type": "integer", "minimum": 1, "maximum": 60},
        "guests": {"type": "integer", "minimum": 1, "maximum": 16},
    },
    "required": ["city", "check_in", "nights", "guests"],
}

ADJECTIVES = [
    "silent",
    "quiet",
    "hidden",
    "golden",
    "broken",
    "distant",
    "crimson",
    "endless",
    "secret",
    "northern",
    "wild",
    "forgotten",
    "bright",
    "little",
    "last",
    "lost",
    "winter",
    "summer",
    "midnight",
    "ancient",
    "modern",
    "gentle",
    "stormy",
    "velvet",
    "iron",
    "paper",
    "glass",
    "salt",
]
NOUNS = [
    "river",
    "garden",
    "harbor",
    "kingdom",
    "letter",
    "mountain",
    "island",
    "library",
    "orchard",
    "lantern",
    "forest",
    "city",
    "voyage",
    "mirror",
    "engine",
    "compass",
    "bridge",
    "archive",
    "meadow",
    "tide",
    "atlas",
    "canyon",
    "market",
    "clockmaker",
    "cartographer",
    "lighthouse",
    "station",
    "violin",
]
FIRST = [
    "Ada",
    "Jonas",
    "Mira",
    "Leo",
    "Nora",
    "Felix",
    "Ines",
    "Hugo",
    "Clara",
    "Otto",
    "Lena",
    "Marc",
    "Sofia",
    "Ivan",
    "Elena",
    "Yuki",
]
LAST = [
    "Hartmann",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Castillo",
    "Nakamura",
    "Brennan",
    "Novak",
    "Rossi",
    "Kowalski",
    "Dubois",
    "Fischer",
    "Silva",
    "Haddad",
    "Jensen",
    "Petrov",
]
CITIES = [
    "Lisbon",
    "Porto",
    "Madrid",
    "Seville",
    "Paris",
    "Lyon",
    "Berlin",
    "Munich",
    "Vienna",
    "Prague",
    "Rome",
    "Florence",
    "Athens",
    "Dublin",
    "Amsterdam",
    "Copenhagen",
    "Oslo",
    "Krakow",
    "Budapest",
    "Edinburgh",
]
STAY_KINDS = ["apartment", "loft", "studio", "cabin", "townhouse", "suite", "villa", "room"]


def _isbn13(rng: random.Random) -> str:
    body = "978" + "".join(str(rng.randrange(10)) for _ in range(9))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def book_pool(seed: int, size: int) -> list[dict[str, Any]]:
    """Distinct books; several suppliers sell the same ones, so products have buy boxes."""
    rng = random.Random(seed)
    pool = []
    for _ in range(size):
        pool.append(
            {
                "title": f"The {rng.choice(ADJECTIVES).title()} {rng.choice(NOUNS).title()}",
                "isbn": _isbn13(rng),
                "author": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "year": rng.randrange(1950, 2026),
                "language": rng.choice(("en", "en", "en", "de", "fr", "es")),
            }
        )
    return pool


def books(
    seed: int, count: int, *, pool: list[dict[str, Any]], prefix: str
) -> Iterator[OfferDraft]:
    rng = random.Random(seed)
    for n in range(count):
        book = pool[rng.randrange(len(pool))]
        yield OfferDraft(
            sku=f"{prefix}-{n:07d}",
            category="books",
            title=book["title"],
            description=f"{rng.choice(('Hardcover', 'Paperback', 'Used, good'))} edition by "
            f"{book['author']}.",
            attributes={
                "isbn": book["isbn"],
                "author": book["author"],
                "year": book["year"],
                "language": book["language"],
            },
            price_currency="EUR",
            price_amount=rng.randrange(399, 4999),
            quantity=rng.randrange(0, 40),
        )


def stays(seed: int, count: int, *, prefix: str) -> Iterator[OfferDraft]:
    rng = random.Random(seed)
    start = date(2027, 1, 1)
    for n in range(count):
        city = rng.choice(CITIES)
        kind = rng.choice(STAY_KINDS)
        nights = rng.randrange(1, 15)
        guests = rng.randrange(1, 7)
        check_in = start + timedelta(days=rng.randrange(0, 365))
        yield OfferDraft(
            sku=f"{prefix}-{n:07d}",
            category="stays",
            title=f"{rng.choice(ADJECTIVES).title()} {kind} in {city}",
            description=f"{nights} nights for {guests} near the {rng.choice(NOUNS)}.",
            attributes={
                "city": city,
                "check_in": check_in.isoformat(),
                "nights": nights,
                "guests": guests,
            },
            price_currency="EUR",
            price_amount=rng.randrange(40, 400) * 100 * nights,
            quantity=rng.randrange(1, 5),
        )
