"""Forward geocoding on real data: Cyrillic abbreviations and transliteration (Moscow),
Ukrainian addresses, street-only answers placed nearest the hint, intersections."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import shapely
import shapely.ops
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng, haversine_m
from geodispatch.geocoding.service import IndexGeocoder
from tests.geocoding.conftest import read_addresses, sample
from tests.helpers import index_street

# BGN/PCGN romanisation of Russian (what a Latin keyboard gives for a Moscow street), written
# here independently of the geocoder's own folding.
_BGN = {"а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh",
        "з": "z", "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p",
        "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch",
        "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "'", "э": "e", "ю": "yu", "я": "ya"}
_RU_ABBREVIATIONS = {"улица": "ул.", "проспект": "пр-т", "переулок": "пер.", "бульвар": "б-р",
                     "площадь": "пл.", "шоссе": "ш."}


def bgn(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        low = ch.lower()
        if low == "е" and (i == 0 or name[i - 1].lower() in "аеёиоуыэюяъь "):
            t = "ye"
        else:
            t = _BGN.get(low, ch)
        out.append(t.capitalize() if ch.isupper() else t)
    return "".join(out)


def abbreviate(name: str) -> str:
    return re.sub("|".join(_RU_ABBREVIATIONS), lambda m: _RU_ABBREVIATIONS[m.group(0)], name)


@pytest.mark.parametrize("form", ["abbreviated", "transliterated"])
def test_moscow_streets_by_abbreviation_and_transliteration(
        db: Session, address_index: object, osm_dir: Path, form: str) -> None:
    """Moscow addresses typed with abbreviated street types (ул., пр-т, пер., б-р) or in Latin
    letters (BGN/PCGN) land on their own house in >= 95% of cases."""
    truth = [a for a in read_addresses(osm_dir / "moscow_north_part_2013.osm.gz")
             if re.fullmatch(r"\d+[А-Яа-я]?", a.housenumber)]
    truth = sample(truth, 250)
    geocoder = IndexGeocoder(db)
    misses = []
    for a in truth:
        street = abbreviate(a.street) if form == "abbreviated" else bgn(a.street)
        typed = f"{street} {a.housenumber if form == 'abbreviated' else bgn(a.housenumber)}"
        hits = geocoder.forward(typed, limit=5)
        tied = [h for h in hits if h.score >= hits[0].score - 1e-9]
        if min((a.distance_m(h.point) for h in tied), default=1e9) > 30:
            misses.append((typed, hits[:1]))
    assert len(truth) >= 150
    assert 1 - len(misses) / len(truth) >= 0.95, misses[:10]


KYIV = [("вулиця Хрещатик", "LINESTRING(30.5175 50.4420, 30.5235 50.4500)",
         (("22", 30.5212, 50.4466), ("22А", 30.5214, 50.4468), ("22/1", 30.5216, 50.4470),
          ("15 корп. 2", 30.5190, 50.4440))),
        ("вулиця Прорізна", "LINESTRING(30.5130 50.4480, 30.5215 50.4468)", ()),
        ("Андріївський узвіз", "LINESTRING(30.5140 50.4590, 30.5180 50.4620)",
         (("2Б", 30.5160, 50.4600),)),
        ("проспект Перемоги", "LINESTRING(30.4000 50.4550, 30.4800 50.4520)",
         (("37", 30.4400, 50.4535),))]


@pytest.fixture()
def kyiv(db: Session) -> Session:
    for name, wkt, houses in KYIV:
        index_street(db, name, wkt, houses)
    return db


@pytest.mark.parametrize(("typed", "where"), [
    ("вул. Хрещатик, буд. 22", (50.4466, 30.5212)),
    ("Хрещатик 22А", (50.4468, 30.5214)),
    ("Хрещатик, 22/1, кв. 5", (50.4470, 30.5216)),
    ("Khreshchatyk St 22a", (50.4468, 30.5214)),
    ("вул. Хрещатик, 15, корп. 2", (50.4440, 30.5190)),
    ("Andriivskyi uzviz 2B", (50.4600, 30.5160)),
    ("пр-т Перемоги 37", (50.4535, 30.4400)),
    ("просп. Перемоги, буд. 37", (50.4535, 30.4400)),
])
def test_ukrainian_addresses(kyiv: Session, typed: str, where: tuple[float, float]) -> None:
    """Ukrainian house-number forms, abbreviations and the official transliteration find the
    house itself."""
    [best, *_] = IndexGeocoder(kyiv).forward(typed)
    assert best.precision == "house", best
    assert haversine_m(best.point, LatLng(*where)) < 1


def test_flat_is_kept_as_text(kyiv: Session) -> None:
    """'кв. 5' does not move the pin; it stays in the resolved address."""
    [best, *_] = IndexGeocoder(kyiv).forward("вул. Хрещатик, буд. 22, кв. 5")
    assert best.flat == "5" and best.resolved == "вулиця Хрещатик, 22, кв. 5"


def test_intersection_of_ukrainian_streets(kyiv: Session) -> None:
    """'Хрещатик / Прорізна' is where the two lines cross."""
    [best, *_] = IndexGeocoder(kyiv).forward("Хрещатик / Прорізна")
    expect = shapely.from_wkt(KYIV[0][1]).intersection(shapely.from_wkt(KYIV[1][1]))
    assert best.precision == "intersection"
    assert haversine_m(best.point, LatLng(expect.y, expect.x)) < 1


def test_street_only_is_placed_nearest_the_hint(db: Session, address_index: object) -> None:
    """'East Pratt Street' with a hint lands on the point of that street nearest the hint
    (checked against the street's own geometry), is marked street-only and says so."""
    hint = LatLng(39.2885, -76.5950)
    [best, *_] = IndexGeocoder(db).forward("East Pratt Street", near=hint)
    assert best.precision == "street" and best.street_only and best.method == "street-near-hint"
    wkb = db.execute(text("SELECT ST_AsBinary(ST_Collect(geom)) FROM geocode_streets "
                          "WHERE name = 'East Pratt Street'")).scalar_one()
    line = shapely.from_wkb(bytes(wkb))
    nearest = shapely.ops.nearest_points(line, shapely.Point(hint.lng, hint.lat))[0]
    assert haversine_m(best.point, LatLng(nearest.y, nearest.x)) < 2


def test_issue_example_750_east_pratt(db: Session, address_index: object) -> None:
    """The demo call-taker's '750 East Pratt Street' lands on the house, not 2.5 km away."""
    [best, *_] = IndexGeocoder(db).forward("750 East Pratt Street", near=LatLng(39.29, -76.61))
    assert best.precision == "house" and best.label == "750 East Pratt Street"
    assert haversine_m(best.point, LatLng(39.2870835, -76.6052454)) < 5


def test_nothing_found_is_empty(db: Session, address_index: object) -> None:
    """Text that names nothing gives no answer rather than a guess."""
    assert IndexGeocoder(db).forward("Qqqxz Wvvvy 12") == []
