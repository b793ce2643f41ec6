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


def _words(text: str) -> list[str]:
    return text.split()


# Vocabularies sized so a large catalog looks like one: thousands of distinct titles and
# authors, so that a search term matches a small share of offers, as in a real catalog.
ADJECTIVES = _words(
    "silent quiet hidden golden broken distant crimson endless secret northern wild forgotten "
    "bright little last lost winter summer midnight ancient modern gentle stormy velvet iron "
    "paper glass salt amber ashen autumn azure bitter blind bold brave burning calm cobalt cold "
    "copper coral crooked cruel dark deep dusty early eastern electric emerald empty fading "
    "faint false fierce final fragile frozen gilded glass grey hollow honest hungry idle indigo "
    "inner invisible ivory jade lonely long lucky lunar marble mellow merry misty narrow "
    "nameless noble olive open pale patient proud purple quick rare restless rough royal rusty "
    "sacred scarlet shadowed sharp shining silver simple sleeping slow small southern spare "
    "spring steady still strange sudden sunken sweet tender thin tidal twin urban vast violet "
    "wandering warm western white wicked wooden young"
)
NOUNS = _words(
    "river garden harbor kingdom letter mountain island library orchard lantern forest city "
    "voyage mirror engine compass bridge archive meadow tide atlas canyon market clockmaker "
    "cartographer lighthouse station violin anchor arrow ash bay bell bird blade border bottle "
    "bread cabin candle castle cathedral cellar chapel chorus circus cloud coast comet crown "
    "current dancer daughter desert diary door dream drum eagle echo ember empire falcon "
    "feather ferry field fire flood flower fountain fox frontier gate ghost glacier glove "
    "hammer harvest hill horizon hotel hunter inn journey key lake lark legend lion machine "
    "map mask meridian mill moon mountaineer nest night oak ocean painter palace pilgrim "
    "pine planet poet prince prophet quarry queen rain raven road rose sailor scholar sea "
    "season shepherd ship shore signal singer sister sky song spire star stone storm summit "
    "sun swan tailor tower traveler tree valley village vineyard voice wall watch wave well "
    "whale wind window wolf"
)
FIRST = _words(
    "Ada Jonas Mira Leo Nora Felix Ines Hugo Clara Otto Lena Marc Sofia Ivan Elena Yuki Aino "
    "Bruno Carmen Dario Edith Farah Greta Hamid Ida Jamal Kaia Luca Maren Nils Olga Pablo "
    "Quinn Rosa Samir Tilda Umar Vera Wim Xenia Yara Zeno Alma Boris Celia Dmitri Emil Freya"
)
LAST = _words(
    "Hartmann Okafor Lindqvist Moreau Castillo Nakamura Brennan Novak Rossi Kowalski Dubois "
    "Fischer Silva Haddad Jensen Petrov Abara Berg Conti Dahl Eriksen Ferreira Garcia Horvat "
    "Ibsen Jovanovic Keller Laine Mendes Nielsen Olsen Pereira Quist Romano Sato Tanaka Urban "
    "Vidal Weber Yilmaz Zoric Alvarez Bianchi Costa Duarte Engel Falk Gruber Holm Ito Kato "
    "Lund Meyer Nagy Ortega Park Reyes Schmidt Torres Varga Wagner Young"
)
CITIES = _words(
    "Lisbon Porto Madrid Seville Paris Lyon Berlin Munich Vienna Prague Rome Florence Athens "
    "Dublin Amsterdam Copenhagen Oslo Krakow Budapest Edinburgh Barcelona Valencia Bordeaux "
    "Marseille Nice Hamburg Cologne Zurich Geneva Milan Naples Venice Bologna Ljubljana Zagreb "
    "Split Dubrovnik Belgrade Sofia Bucharest Riga Tallinn Vilnius Helsinki Stockholm Gothenburg "
    "Bergen Reykjavik Galway Cork Bruges Ghent Antwerp Rotterdam Utrecht Salzburg Innsbruck "
    "Graz Bratislava Brno"
)
STAY_KINDS = _words("apartment loft studio cabin townhouse suite villa room cottage chalet")
TITLE_FORMS = (
    "The {adj} {noun}",
    "The {noun} of the {adj} {noun2}",
    "{adj} {noun}",
    "A {noun} for the {noun2}",
    "The {noun2} and the {noun}",
)


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
                "title": rng.choice(TITLE_FORMS)
                .format(adj=rng.choice(ADJECTIVES), noun=rng.choice(NOUNS), noun2=rng.choice(NOUNS))
                .title(),
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
