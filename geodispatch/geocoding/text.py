"""What a caller says, taken apart: street, house number, building, flat, a second street.

Everything here is pure text work, shared by the importer (which keys every street name it
stores) and the search (which keys what was typed), so both sides are always folded alike.

The **key** of a name folds Cyrillic and Latin spellings onto one Latin skeleton, so that the
official Ukrainian transliteration (``Khreshchatyk``), a Russian-style one and the Cyrillic
original (``Хрещатик``) all give ``khreshchatik``; abbreviations of street-type words are
expanded (``вул.`` → ``вулиця``, ``пр-т`` → ``проспект``, ``St`` → ``street``), and the *core*
of a name leaves the street-type words out, so ``вулиця Хрещатик``, ``Хрещатик`` and
``Khreshchatyk St`` share the core ``khreshchatik``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

#: Longest text the parser looks at (a call-taker's address is a line, not a page).
MAX_QUERY_CHARS = 300

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "ґ": "g", "д": "d", "е": "e", "є": "ie", "ж": "zh",
    "з": "z", "и": "i", "і": "i", "ї": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n",
    "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ь": "", "ъ": "", "ы": "i", "э": "e", "ю": "iu", "я": "ia",
    "ё": "e",
}
_APOSTROPHES = "'’ʼ`´‘"
# Latin digraphs kept whole; any other "h" is the Ukrainian г (``Hoholivska`` = Гоголівська).
_DIGRAPH = re.compile(r"shch|sh|ch|zh|kh|zgh|h")
_Y = re.compile(r"y([aeiu])|y")

#: Abbreviations as typed (lower case, without the dot) and what they stand for.
_ABBREVIATIONS = {
    # Ukrainian and Russian
    "вул": "вулиця", "ул": "улица", "просп": "проспект", "пр-т": "проспект", "пр": "проспект",
    "пров": "провулок", "пер": "переулок", "бул": "бульвар", "б-р": "бульвар", "пл": "площа",
    "наб": "набережна", "ш": "шосе", "пр-д": "проїзд", "туп": "тупик",
    # English
    "st": "street", "str": "street", "ave": "avenue", "av": "avenue", "rd": "road",
    "blvd": "boulevard", "ln": "lane", "dr": "drive", "ct": "court", "pl": "place",
    "sq": "square", "ter": "terrace", "hwy": "highway", "pkwy": "parkway", "aly": "alley",
    "n": "north", "s": "south", "e": "east", "w": "west",
    # Portuguese
    "r": "rua", "tv": "travessa", "trav": "travessa", "pc": "praca", "pç": "praça",
    "lg": "largo", "al": "alameda", "est": "estrada", "cc": "calcada", "cç": "calçada",
}
#: Street-type words (full forms; their keys are left out of a name's core).
STREET_TYPES = (
    "вулиця", "улица", "проспект", "провулок", "переулок", "бульвар", "площа", "площадь",
    "узвіз", "спуск", "набережна", "набережная", "шосе", "шоссе", "проїзд", "проезд", "тупик",
    "алея", "аллея", "майдан", "узвоз",
    "vulytsia", "prospekt", "provulok", "bulvar", "ploshcha", "uzviz", "naberezhna",
    "street", "avenue", "road", "boulevard", "lane", "drive", "court", "place", "square",
    "terrace", "way", "highway", "parkway", "alley",
    "rua", "avenida", "travessa", "praca", "largo", "alameda", "estrada", "calcada", "viela",
    "beco", "rotunda",
)
_HOUSE_WORDS = {"буд", "будинок", "д", "дом", "house", "no", "№", "nr", "n°", "nº"}
_BUILDING_WORDS = {"корп", "корпус", "к", "bldg", "building", "block"}
_STRUCTURE_WORDS = {"стр", "строение", "с", "будова"}
_FLAT_WORDS = {"кв", "квартира", "apt", "apartment", "flat", "unit", "офіс", "оф", "офис",
               "suite", "ste"}
_NUMBER = re.compile(
    r"^\d{1,5}(?:-?[a-zа-яіїєґ]{1,2})?(?:/\d{1,4}(?:-?[a-zа-яіїєґ])?)?$"
    r"|^\d{1,5}[-–]\d{1,5}$", re.IGNORECASE)  # ... or a range of numbers ("273-282")
#: "no number" (Portuguese sem número, Russian/Ukrainian без номера): said, not a number.
_NO_NUMBER = re.compile(r"(?<!\w)(?:s/n|s\.n\.|б/н)(?!\w)", re.IGNORECASE)
# "22к2", "30к1": house and building glued together (as Moscow's data and callers write them)
_GLUED_BUILDING = re.compile(r"^(\d{1,5}[a-zа-яіїєґ]?)(?:к|корп\.?|k)(\d{1,3})$", re.IGNORECASE)
_GLUED_PREFIX = re.compile(r"^(буд|д|кв|корп|к|стр|с|apt|№)\.?(\d.*)$", re.IGNORECASE)
_INTERSECTION = re.compile(
    r"\s+(?:/|&|and|та|і|и|x|×|угол|кут|перехрестя|перехрестя з|corner of|at)\s+"
    r"|\s*&\s*|(?<=[^\d\s/])\s*/\s*(?=[^\d\s/])",
    re.IGNORECASE)
_LETTER_BUILDING = re.compile(r"^(?:к|корп)\.?[a-zа-яіїєґ]$", re.IGNORECASE)
_COORDS = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*[,; ]\s*(-?\d{1,3}(?:\.\d+)?)\s*$")
_SPLIT = re.compile(r"[\s,;]+")


def clean(text: str) -> str:
    """What the parser reads: no NUL or control characters, one space between words."""
    head = text[:4 * MAX_QUERY_CHARS]
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in head)
    return " ".join(text.split())[:MAX_QUERY_CHARS]


def _latin(word: str) -> str:
    out = []
    for ch in word:
        if ch in _CYRILLIC:
            out.append(_CYRILLIC[ch])
        elif ch in _APOSTROPHES:
            continue
        else:
            out.append(ch)
    s = unicodedata.normalize("NFKD", "".join(out))
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = _DIGRAPH.sub(lambda m: "zg" if m.group(0) == "zgh" else
                     ("g" if m.group(0) == "h" else m.group(0)), s)
    s = s.replace("yo", "e")  # ё in Russian-style spellings (Korolyova = Королёва)
    s = _Y.sub(lambda m: "i" + (m.group(1) or ""), s)
    s = re.sub(r"ii+", "i", s)
    s = s.replace("ie", "e")  # є and е after a vowel or ь: ye / ie / e in the various schemes
    return re.sub(r"([a-z])\1+", r"\1", s)


def fold_words(text: str) -> list[str]:
    """The words of ``text`` expanded and folded onto the Latin skeleton (see the module)."""
    words: list[str] = []
    for raw in _SPLIT.split(text.lower()):
        token = raw.strip(".:()\"«»")
        if not token:
            continue
        token = _ABBREVIATIONS.get(token, token)
        token = "".join(c for c in token if c not in _APOSTROPHES)  # Пов'язана, Vorob'yovy
        for part in re.split(r"[^\w]+", token):
            folded = _latin(part)
            folded = re.sub(r"[^a-z0-9]", "", folded)
            if folded:
                words.append(folded)
    return words


_TYPE_KEYS = frozenset(w for t in STREET_TYPES for w in fold_words(t))


def name_key(name: str) -> str:
    """The whole name, folded (street-type words kept)."""
    return " ".join(fold_words(name))


def core_key(name: str) -> str:
    """The name without its street-type words, folded; the whole name if nothing else is left."""
    words = fold_words(name)
    core = [w for w in words if w not in _TYPE_KEYS]
    return " ".join(core or words)


def street_type(name: str) -> str | None:
    """The folded street-type word of a name (``vulitsia``, ``street``), if it has one."""
    for w in fold_words(name):
        if w in _TYPE_KEYS:
            return w
    return None


def housenumber_key(text: str) -> str:
    """A house number as the index compares it: ``22А`` = ``22a``, ``30к1`` = ``30 k 1``."""
    s = text.lower().strip()
    s = re.sub(r"\b(?:буд|будинок|д|дом|house|no|№)\.?\s*(?=\d)", "", s)
    s = re.sub(r"(?:корпус|корп\.?|к\.?|k)\s*(?=\d)", "k", s)
    s = re.sub(r"(?:строение|стр\.?|с\.?)\s*(?=\d)", "s", s)
    return re.sub(r"[^a-z0-9/]", "", _latin(s.replace(" ", "")))


def housenumber_value(text: str) -> int | None:
    """The leading integer of a house number (``22/1`` → 22), for interpolation."""
    m = re.match(r"\s*(\d{1,6})", text)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Parsed:
    """One reading of an address."""

    street: str
    housenumber: str | None = None
    building: str | None = None
    flat: str | None = None
    context: tuple[str, ...] = ()  # the other comma-separated parts (town, district)
    structure: str | None = None  # строение (Russian-style addresses: "27А с1")

    @property
    def house_key(self) -> str | None:
        if not self.housenumber:
            return None
        hn = housenumber_key(self.housenumber)
        if self.building:
            hn += f"k{housenumber_key(self.building)}"
        if self.structure:
            hn += f"s{housenumber_key(self.structure)}"
        return hn

    @property
    def plain_key(self) -> str | None:
        """The house number alone (without building or structure)."""
        return housenumber_key(self.housenumber) if self.housenumber else None


@dataclass(frozen=True)
class Query:
    """What a typed address asks for: readings to try in order, or an intersection, or a point."""

    text: str
    readings: list[Parsed] = field(default_factory=list)
    cross: tuple[str, str] | None = None
    coordinates: tuple[float, float] | None = None  # (lat, lng)


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token) or _GLUED_BUILDING.match(token))


def _read_part(tokens: list[str], had_house: bool
               ) -> tuple[list[str], list[str], dict[str, str]]:
    """Street words, candidate house numbers (first/last) and explicit items of one part
    (``had_house``: an earlier part already gave a house number)."""
    words: list[str] = []
    found: dict[str, str] = {}
    numbers: list[tuple[int, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower().rstrip(".")
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        glued = _GLUED_PREFIX.match(tok)
        if glued and glued.group(1).lower() in ("кв", "apt"):
            found["flat"] = glued.group(2)
        elif glued and glued.group(1).lower() in ("корп", "к"):
            found["building"] = glued.group(2)
        elif _LETTER_BUILDING.match(tok) and (numbers or had_house):
            found["building"] = tok[-1]  # a lettered building: "21А кА"
        elif glued and glued.group(1).lower() in ("стр", "с") and (numbers or had_house):
            found["structure"] = glued.group(2)
        elif glued and glued.group(1).lower() in ("буд", "д", "№"):
            found["house"] = glued.group(2)
        elif low in _FLAT_WORDS and nxt is not None:
            found["flat"] = nxt.rstrip(",")
            i += 1
        elif low in _BUILDING_WORDS and nxt is not None and re.match(r"^\d", nxt) \
                and (numbers or had_house or "house" in found):
            found["building"] = nxt
            i += 1
        elif low in _STRUCTURE_WORDS and nxt is not None and re.match(r"^\d", nxt) \
                and (numbers or had_house or "house" in found):
            found["structure"] = nxt
            i += 1
        elif low in _HOUSE_WORDS and nxt is not None and _is_number(nxt):
            found["house"] = nxt
            i += 1
        elif _is_number(tok):
            numbers.append((len(words), tok))
            words.append(tok)
        else:
            words.append(tok)
        i += 1
    candidates: list[str] = []
    if numbers:
        last_pos, last = numbers[-1]
        first_pos, first = numbers[0]
        if last_pos == len(words) - 1:
            candidates.append(f"end:{last}")
        if first_pos == 0:
            candidates.append(f"start:{first}")
    return words, candidates, found


def _split_building(hn: str, building: str | None) -> tuple[str, str | None]:
    m = _GLUED_BUILDING.match(hn)
    if m:
        return m.group(1), building or m.group(2)
    return hn, building


def parse(text: str) -> Query:
    """Every sensible reading of a typed address, most likely first.

    ``"вул. Хрещатик, буд. 22, корп. 2, кв. 5"`` reads as street ``вул. Хрещатик``, house ``22``,
    building ``2``, flat ``5``; ``"750 East Pratt Street"`` and ``"Rua 31 de Janeiro 45"`` put
    the number where it belongs; ``"Хрещатик / Прорізна"`` is an intersection; ``"50.45, 30.52"``
    a point. A number at both ends gives two readings, and the street alone is always the last.
    """
    text = clean(_NO_NUMBER.sub(" ", text))
    if not text:
        return Query(text="")
    m = _COORDS.match(text)
    if m:
        return Query(text=text, coordinates=(float(m.group(1)), float(m.group(2))))
    halves = [h.strip(" ,") for h in _INTERSECTION.split(text) if h and h.strip(" ,")]
    if len(halves) == 2 and all(re.search(r"[^\W\d_]", h) for h in halves):
        return Query(text=text, cross=(halves[0], halves[1]))
    parts = [p.strip() for p in text.split(",") if p.strip()]
    readings: list[Parsed] = []
    found: dict[str, str] = {}
    street_parts: list[tuple[list[str], list[str]]] = []
    for part in parts:
        had_house = "house" in found or any(c for _w, c in street_parts)
        words, candidates, items = _read_part(part.split(), had_house)
        found.update(items)
        street_parts.append((words, candidates))
    # A part that is only a number is the house number of the part before it ("Хрещатик, 22").
    merged: list[tuple[list[str], list[str]]] = []
    for words, candidates in street_parts:
        if merged and len(words) == 1 and candidates and "house" not in found:
            found["house"] = words[0]
            continue
        if words:
            merged.append((words, candidates))
    if not merged:
        return Query(text=text)
    main_words, candidates = merged[0]
    context = tuple(" ".join(w) for w, _ in merged[1:])
    building, flat, st = found.get("building"), found.get("flat"), found.get("structure")
    if "house" in found:
        hn, b = _split_building(found["house"], building)
        readings.append(Parsed(" ".join(main_words), hn, b, flat, context, st))
    for cand in candidates:
        where, hn = cand.split(":", 1)
        rest = main_words[:-1] if where == "end" else main_words[1:]
        if rest:
            hn, b = _split_building(hn, building)
            readings.append(Parsed(" ".join(rest), hn, b, flat, context, st))
    readings.append(Parsed(" ".join(main_words), None, None, flat, context))
    # The other parts may name the street when the first one does not ("Little Italy, Pratt St").
    for words, cands in merged[1:]:
        for cand in cands:
            where, hn = cand.split(":", 1)
            rest = words[:-1] if where == "end" else words[1:]
            if rest:
                readings.append(Parsed(" ".join(rest), hn, building, flat, ()))
        readings.append(Parsed(" ".join(words), None, None, flat, ()))
    return Query(text=text, readings=readings)
