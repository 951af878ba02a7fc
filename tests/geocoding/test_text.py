"""Taking what a caller says apart: Ukrainian house-number forms, abbreviations, folding."""

from __future__ import annotations

import pytest

from geodispatch.geocoding.text import clean, core_key, housenumber_key, parse


@pytest.mark.parametrize(("typed", "street", "hn", "building", "flat"), [
    ("вул. Хрещатик, буд. 22, корп. 2, кв. 5", "вул. Хрещатик", "22", "2", "5"),
    ("Хрещатик 22А", "Хрещатик", "22А", None, None),
    ("Хрещатик, 22/1", "Хрещатик", "22/1", None, None),
    ("просп. Перемоги 22/1 кв. 5", "просп. Перемоги", "22/1", None, "5"),
    ("пр-т Перемоги, будинок 7, квартира 12", "пр-т Перемоги", "7", None, "12"),
    ("Руставели 10к1", "Руставели", "10", "1", None),
    ("750 East Pratt Street", "East Pratt Street", "750", None, None),
    ("750 E Pratt St Apt 4B", "E Pratt St", "750", None, "4B"),
    ("Rua 31 de Janeiro 45", "Rua 31 de Janeiro", "45", None, None),
])
def test_house_number_forms(typed: str, street: str, hn: str, building: str | None,
                            flat: str | None) -> None:
    """The first reading names the street, house, building and flat as the caller meant."""
    first = parse(typed).readings[0]
    assert (first.street, first.housenumber, first.building, first.flat) == (
        street, hn, building, flat)


def test_a_street_with_a_number_in_its_name_keeps_it() -> None:
    """'Rua 31 de Janeiro' alone has no house number; the street reading is always there."""
    readings = parse("Rua 31 de Janeiro").readings
    assert [r.housenumber for r in readings] == [None]


@pytest.mark.parametrize(("typed", "a", "b"), [
    ("Хрещатик / Прорізна", "Хрещатик", "Прорізна"),
    ("Хрещатик/Прорізна", "Хрещатик", "Прорізна"),
    ("Eastern Ave & Broadway", "Eastern Ave", "Broadway"),
    ("вул. Хрещатик та вул. Прорізна", "вул. Хрещатик", "вул. Прорізна"),
])
def test_intersections(typed: str, a: str, b: str) -> None:
    """Two streets joined by '/', '&', 'та' ... are an intersection; '22/1' is not."""
    assert parse(typed).cross == (a, b)
    assert parse("Хрещатик 22/1").cross is None


@pytest.mark.parametrize(("one", "other"), [
    ("вулиця Хрещатик", "Khreshchatyk"), ("вул. Хрещатик", "Khreshchatyk St"),
    ("проспект Перемоги", "пр-т Перемоги"), ("проспект Перемоги", "просп. Перемоги"),
    ("провулок Лютеранський", "пров. Лютеранський"), ("бульвар Шевченка", "бул. Шевченка"),
    ("бульвар Шевченка", "б-р Шевченка"), ("площа Львівська", "пл. Львівська"),
    ("Андріївський узвіз", "Andriivskyi uzviz"), ("набережна Дніпровська", "наб. Дніпровська"),
    ("вулиця Гоголівська", "Hoholivska"), ("вулиця Ярославів Вал", "Yaroslaviv Val"),
    ("Європейська площа", "Yevropeiska"), ("East Pratt Street", "E Pratt St"),
    ("улица Академика Королёва", "Akademika Korolyova"),
])
def test_spellings_of_one_street_share_a_key(one: str, other: str) -> None:
    """Abbreviations, the official transliteration and the Cyrillic name give one key."""
    assert core_key(one) == core_key(other)


@pytest.mark.parametrize(("a", "b"), [("22А", "22a"), ("30к1", "30 к 1"), ("22 корп. 2", "22к2"),
                                      ("буд. 22", "22"), ("10 стр. 3", "10с3")])
def test_house_number_keys(a: str, b: str) -> None:
    """Cyrillic and Latin letters, spaces and the words for building/structure compare alike."""
    assert housenumber_key(a) == housenumber_key(b)


@pytest.mark.parametrize("hostile", ["", "\x00\x00", "🚓🚨" * 50, "' OR 1=1 --", "x" * 10_000,
                                     "\ud800", "%_\\"])
def test_hostile_text_parses_to_something_harmless(hostile: str) -> None:
    """Nothing the parser reads can blow up: no NUL, bounded length."""
    q = parse(hostile)
    assert "\x00" not in q.text and len(clean(hostile)) <= 300


def test_ranges_and_no_number() -> None:
    """'273-282' is one house number; 'S/N' (sem número) and 'б/н' say there is none."""
    assert parse("Rua de Miguel Bombarda 273-282").readings[0].housenumber == "273-282"
    q = parse("Praça Almeida Garrett S/N")
    assert q.cross is None and q.readings[0].housenumber is None
    assert parse("вул. Хрещатик, б/н").readings[0].street == "вул. Хрещатик"
