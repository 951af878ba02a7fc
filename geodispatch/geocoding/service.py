"""Forward and reverse geocoding over the address index, behind one small typed interface.

:class:`Geocoder` is what the rest of the project sees; :class:`IndexGeocoder` implements it
over the tables :mod:`geodispatch.geocoding.importer` fills. Forward geocoding reads the text
(:func:`geodispatch.geocoding.text.parse`), finds the streets whose folded names are most
similar (pg_trgm word similarity, so ``Charles`` finds ``North Charles Street`` and a prefix
typed so far finds the street it starts), then on those streets, in order:

``house``
    a house (node, building) with that number (``22А`` = ``22a``; ``30к1`` = ``30 корп. 1``);
``interpolated``
    a point along an ``addr:interpolation`` way (method ``interpolation``), or between the
    nearest lower and higher numbers of the same parity on that street (method ``neighbours``);
``street``
    the street alone: the point of the street nearest the hint (``near``: the caller's
    position, the zone centre, the map centre; method ``street-near-hint``), or without a
    hint the point of the street nearest its own centre (``street-centre``). Never a house
    number that was not found silently passed off: the result says ``street`` and its
    ``note`` says which number was missing;
``intersection``
    ``A / B``: where the two streets meet (nearest the hint when they meet more than once);
``area``
    a named neighbourhood or landmark (landmarks are ``house``-exact, method ``landmark``);
``point``
    typed coordinates, taken as they are.

Reverse geocoding returns the nearest house within ``geocode_reverse_house_m``, else the
nearest street (at its nearest point), else the nearest named area.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodispatch.geo import LatLng, haversine_m, valid_latlng
from geodispatch.geocoding.importer import _label
from geodispatch.geocoding.text import Parsed, core_key, fold_words, parse, street_type
from geodispatch.settings import Settings, get_settings

log = logging.getLogger(__name__)

Precision = Literal["house", "interpolated", "street", "area", "intersection", "point"]
#: Best first (how exact a precision is).
PRECISION_ORDER: dict[str, int] = {"point": 0, "house": 1, "interpolated": 2,
                                   "intersection": 3, "street": 4, "area": 5}


@dataclass(frozen=True)
class GeocodeResult:
    """One answer: where, what it is called, how exact, and how it was found."""

    point: LatLng
    label: str
    precision: Precision
    method: str
    score: float = 1.0
    street: str | None = None
    housenumber: str | None = None
    building: str | None = None
    flat: str | None = None
    note: str | None = None
    distance_m: float | None = None  # reverse: from the asked point

    @property
    def street_only(self) -> bool:
        return self.precision == "street"

    @property
    def resolved(self) -> str:
        """The resolved address with the flat and building kept as typed."""
        extra = []
        if self.building and self.precision in ("house", "interpolated") \
                and "k" not in (self.housenumber or "").lower():
            extra.append(f"корп. {self.building}")
        if self.flat:
            extra.append(f"кв. {self.flat}")
        return ", ".join([self.label, *extra])


class Geocoder(Protocol):
    """What the rest of the project needs from a geocoder."""

    def forward(self, text: str, near: LatLng | None = None,
                limit: int = 5) -> list[GeocodeResult]:
        """Ranked candidates for a typed address (empty when nothing fits)."""
        ...

    def reverse(self, *, lon: float, lat: float) -> GeocodeResult | None:
        """The nearest addressed feature or street to a point (None when nothing is near)."""
        ...


@dataclass(frozen=True)
class _StreetHit:
    id: int
    name: str
    score: float
    country: str | None


def _pt(lat: float, lng: float) -> str:
    return LatLng(lat, lng).to_ewkt()


class IndexGeocoder:
    """:class:`Geocoder` over the address index, in the caller's session (reads only)."""

    def __init__(self, session: Session, settings: Settings | None = None) -> None:
        self.session = session
        self.settings = settings or get_settings()

    # --- forward --------------------------------------------------------------------------------

    def forward(self, text: str, near: LatLng | None = None,
                limit: int = 5) -> list[GeocodeResult]:
        q = parse(text)
        limit = max(1, min(limit, 20))
        if q.coordinates is not None:
            lat, lng = q.coordinates
            if not valid_latlng(lat, lng):
                return []
            label = f"{lat:.6f}, {lng:.6f}"
            return [GeocodeResult(LatLng(lat, lng), label, "point", "coordinates")]
        if q.cross is not None:
            hits = self._intersection(q.cross[0], q.cross[1], near)
            if hits:
                return hits[:limit]
            # Not two streets that meet: perhaps "22/1"-like text after all; read it plainly.
            q = parse(text.replace("/", " "))
        results: list[GeocodeResult] = []
        # Readings in order: the first whose house is found wins; otherwise the street that
        # matched best under any reading (so "1000 Fleet Street" still means Fleet Street).
        best: tuple[Parsed, list[_StreetHit]] | None = None
        for reading in q.readings:
            streets = self._streets(reading.street, near)
            if not streets:
                continue
            if best is None or streets[0].score > best[1][0].score + 1e-9:
                best = (reading, streets)
            if reading.housenumber:
                found = self._house(reading, streets, near)
                if found:
                    results.extend(found)
                    best = None
                    break
            elif streets[0].score >= 0.99:
                break  # an exact street name: later readings cannot do better
        if best is not None:
            results.extend(self._street_results(best[0], best[1], near, limit, q.readings))
        # Landmarks and areas fill what streets left; a house found keeps them out.
        if len(results) < limit and q.readings and not any(
                r.precision in ("house", "interpolated") for r in results):
            key = core_key(q.readings[0].street)
            results.extend(self._places(key, near, limit - len(results)))
        results.sort(key=lambda r: (-round(r.score, 3), PRECISION_ORDER[r.precision]))
        return results[:limit]

    def _streets(self, street: str, near: LatLng | None, n: int = 8) -> list[_StreetHit]:
        key = core_key(street)
        letters = [c for c in key if c.isalpha()]
        if len(letters) < 2:
            return []
        kind = street_type(street)
        s = self.session
        # A name typed in full (in any of its spellings) is an index lookup; only what is not
        # takes the trigram search.
        rows = s.execute(text("SELECT DISTINCT street_id, 1.0 FROM geocode_names WHERE key = :k"),
                         {"k": key}).all()
        if not rows:
            rows = self._similar_names(key)
        sims = {int(r[0]): float(r[1]) for r in rows
                if float(r[1]) >= self.settings.geocode_min_similarity}
        if not sims:
            return []
        return self._rank_streets(sims, kind, near, n)

    def _similar_names(self, key: str) -> list[Any]:
        s = self.session
        self._thresholds()
        return list(s.execute(text(f"""
            SELECT n.street_id, max(CASE WHEN n.key = :k THEN 1.0 ELSE
                       (similarity(n.key, :k) + word_similarity(:k, n.key)) / 2 END) AS sim
            FROM geocode_names n
            WHERE n.key = :k OR n.key % :k {_part_of(key, "n.key")}
            GROUP BY n.street_id ORDER BY sim DESC LIMIT 60
        """), {"k": key}).all())

    def _thresholds(self) -> None:
        self.session.execute(text(
            "SELECT set_config('pg_trgm.word_similarity_threshold', :t, true),"
            " set_config('pg_trgm.similarity_threshold', :t, true)"),
            {"t": str(self.settings.geocode_min_similarity)})

    def _rank_streets(self, sims: dict[int, float], kind: str | None, near: LatLng | None,
                      n: int) -> list[_StreetHit]:
        s = self.session
        params: dict[str, object] = {"ids": list(sims)}
        dist = "NULL"
        if near is not None:
            dist = "ST_Distance(geom::geography, ST_GeomFromEWKT(:near)::geography)"
            params["near"] = near.to_ewkt()
        info = s.execute(text(
            f"SELECT id, name, street_type, country, {dist} FROM geocode_streets "
            "WHERE id = ANY(:ids)"), params).all()
        hits = []
        for sid, name, stype, country, d in info:
            score = sims[int(sid)]
            if kind and stype:
                score += 0.04 if stype == kind else -0.04
            if d is not None:
                score -= min(float(d), 20_000.0) / 20_000.0 * 0.08  # nearer first among equals
            hits.append(_StreetHit(int(sid), str(name), score, country))
        hits.sort(key=lambda h: -h.score)
        best = hits[0].score
        return [h for h in hits if h.score >= best - 0.2][:n]

    def _house(self, r: Parsed, streets: list[_StreetHit],
               near: LatLng | None) -> list[GeocodeResult]:
        s = self.session
        by_id = {h.id: h for h in streets}
        ids = list(by_id)
        hk = r.house_key or ""
        keys = [hk] + ([r.plain_key or ""] if hk != r.plain_key else [])
        for attempt, key in enumerate(keys):
            rows = s.execute(text("""
                SELECT street_id, housenumber, label, ST_Y(ST_PointOnSurface(geom)),
                       ST_X(ST_PointOnSurface(geom))
                FROM geocode_features
                WHERE kind = 'house' AND street_id = ANY(:ids) AND hn_key = :hk
            """), {"ids": ids, "hk": key}).all()
            if rows:
                note = (f"{r.housenumber} without its building/structure: house {key}"
                        if attempt else None)
                return [GeocodeResult(LatLng(float(lat), float(lng)), str(label), "house", "house",
                                      score=by_id[int(sid)].score, street=by_id[int(sid)].name,
                                      housenumber=str(hn), building=r.building, flat=r.flat,
                                      note=note)
                        for sid, hn, label, lat, lng in rows]
        # "10" when only "10к1", "10к2" or "10/1" exist: the first of them (same building group).
        rows = s.execute(text("""
            SELECT street_id, housenumber, label, ST_Y(ST_PointOnSurface(geom)),
                   ST_X(ST_PointOnSurface(geom))
            FROM geocode_features
            WHERE kind = 'house' AND street_id = ANY(:ids)
              AND (hn_key LIKE :hk || 'k%' OR hn_key LIKE :hk || '/%')
            ORDER BY length(hn_key), hn_key LIMIT 3
        """), {"ids": ids, "hk": keys[-1]}).all()
        if rows:
            return [GeocodeResult(LatLng(float(lat), float(lng)), str(label), "house",
                                  "house-part", score=by_id[int(sid)].score - 0.02,
                                  street=by_id[int(sid)].name, housenumber=str(hn),
                                  building=r.building, flat=r.flat,
                                  note=f"no house {r.housenumber} alone: {hn}")
                    for sid, hn, label, lat, lng in rows[:1]]
        n = _leading_int(r.housenumber or "")
        if n is None:
            return []
        rows = s.execute(text("""
            SELECT street_id, ST_Y(p), ST_X(p) FROM (
                SELECT street_id, ST_LineInterpolatePoint(geom, CASE WHEN end_value = start_value
                    THEN 0.5 ELSE (:n - start_value)::float / (end_value - start_value) END) AS p
                FROM geocode_features
                WHERE kind = 'interpolation' AND street_id = ANY(:ids)
                  AND :n BETWEEN start_value AND end_value AND (:n - start_value) % step = 0
                  AND GeometryType(geom) = 'LINESTRING') x
        """), {"ids": ids, "n": n}).all()
        if rows:
            return [self._numbered(by_id[int(sid)], r, LatLng(float(lat), float(lng)),
                                   "interpolated", "interpolation")
                    for sid, lat, lng in rows]
        out = []
        for h in streets[:3]:
            p = self._between_neighbours(h.id, n)
            if p is not None:
                out.append(self._numbered(h, r, p, "interpolated", "neighbours"))
        return out

    def _numbered(self, h: _StreetHit, r: Parsed, p: LatLng, precision: Precision,
                  method: str) -> GeocodeResult:

        hn = r.housenumber or ""
        return GeocodeResult(p, _label(h.name, hn, h.country), precision, method,
                             score=h.score - 0.01, street=h.name, housenumber=hn,
                             building=r.building, flat=r.flat)

    def _between_neighbours(self, street_id: int, n: int) -> LatLng | None:
        """A number between two known ones of the same parity on the street, placed in
        proportion between them and moved onto the street."""
        rows = self.session.execute(text("""
            WITH lo AS (SELECT hn_value v, geom g FROM geocode_features
                        WHERE kind = 'house' AND street_id = :s AND hn_value < :n
                          AND hn_value % 2 = :n % 2 ORDER BY hn_value DESC LIMIT 1),
                 hi AS (SELECT hn_value v, geom g FROM geocode_features
                        WHERE kind = 'house' AND street_id = :s AND hn_value > :n
                          AND hn_value % 2 = :n % 2 ORDER BY hn_value LIMIT 1),
                 est AS (SELECT ST_LineInterpolatePoint(ST_MakeLine(ST_Centroid(lo.g),
                                 ST_Centroid(hi.g)), (:n - lo.v)::float / (hi.v - lo.v)) AS p,
                                ST_Distance(lo.g::geography, hi.g::geography) AS span,
                                hi.v - lo.v AS gap
                         FROM lo, hi)
            SELECT ST_Y(p), ST_X(p), span, gap FROM est
        """), {"s": street_id, "n": n}).first()
        if rows is None or rows[2] is None or float(rows[2]) > 600 or int(rows[3]) > 200:
            return None
        return LatLng(float(rows[0]), float(rows[1]))

    def _street_results(self, r: Parsed, streets: list[_StreetHit], near: LatLng | None,
                        limit: int, readings: list[Parsed]) -> list[GeocodeResult]:
        wanted = next((x.housenumber for x in readings if x.housenumber), None)
        note = (f"house {wanted} not found on this street: street only" if wanted
                else "street only")
        out: list[GeocodeResult] = []
        seen: set[str] = set()
        for h in streets:
            # Pieces of one street apart in the extract: the best (nearest the hint) only.
            if h.name in seen or len(out) >= limit:
                continue
            seen.add(h.name)
            p, method = self.street_point(h.id, near)
            out.append(GeocodeResult(p, h.name, "street", method, score=h.score - 0.05,
                                     street=h.name, flat=r.flat, note=note))
        return out

    def street_point(self, street_id: int, near: LatLng | None) -> tuple[LatLng, str]:
        """The point of a street nearest the hint, else nearest its own centre."""
        if near is not None:
            sql, params, method = ("ST_ClosestPoint(geom, ST_GeomFromEWKT(:near))",
                                   {"near": near.to_ewkt()}, "street-near-hint")
        else:
            sql, params, method = "ST_ClosestPoint(geom, ST_Centroid(geom))", {}, "street-centre"
        row = self.session.execute(
            text(f"SELECT ST_Y(p), ST_X(p) FROM (SELECT {sql} AS p FROM geocode_streets "
                 "WHERE id = :id) x"), {"id": street_id, **params}).one()
        return LatLng(float(row[0]), float(row[1])), method

    def _intersection(self, a: str, b: str, near: LatLng | None) -> list[GeocodeResult]:
        sa, sb = self._streets(a, near), self._streets(b, near)
        if not sa or not sb:
            return []
        score = {h.id: h.score for h in sa + sb}
        name = {h.id: h.name for h in sa + sb}
        hint = "ST_GeomFromEWKT(:near)" if near is not None else "ST_Centroid(x.meet)"
        rows = self.session.execute(text(f"""
            SELECT a_id, b_id, ST_Y(p), ST_X(p), d FROM (
                SELECT x.a_id, x.b_id, x.d, ST_ClosestPoint(x.meet, {hint}) AS p FROM (
                    SELECT a.id AS a_id, b.id AS b_id, ST_Distance(a.geom, b.geom) AS d,
                           CASE WHEN ST_Intersects(a.geom, b.geom)
                                THEN ST_Intersection(a.geom, b.geom)
                                ELSE ST_ClosestPoint(a.geom, b.geom) END AS meet
                    FROM geocode_streets a JOIN geocode_streets b
                      ON a.id <> b.id AND ST_DWithin(a.geom, b.geom, 0.0004)
                    WHERE a.id = ANY(:a) AND b.id = ANY(:b)) x) y
            ORDER BY d LIMIT 10
        """), {"a": [h.id for h in sa], "b": [h.id for h in sb],
               **({"near": near.to_ewkt()} if near is not None else {})}).all()
        out = [GeocodeResult(LatLng(float(lat), float(lng)), f"{name[ia]} / {name[ib]}",
                             "intersection", "intersection",
                             score=(score[ia] + score[ib]) / 2 - float(d) * 100,
                             street=name[ia])
               for ia, ib, lat, lng, d in rows]
        out.sort(key=lambda r: -r.score)
        return out

    def _places(self, key: str, near: LatLng | None, n: int) -> list[GeocodeResult]:
        if n <= 0 or not key or len(key) < 3:
            return []
        self._thresholds()
        rows = self.session.execute(text(f"""
            SELECT kind, label, ST_Y(ST_PointOnSurface(geom)), ST_X(ST_PointOnSurface(geom)),
                   (similarity(key, :k) + word_similarity(:k, key)) / 2 AS sim
            FROM geocode_features
            WHERE kind IN ('area', 'poi') AND (key % :k {_part_of(key, "key")})
            ORDER BY sim DESC LIMIT :n
        """), {"k": key, "n": n}).all()
        rows = [r for r in rows if float(r[4]) >= 0.6]
        return [GeocodeResult(LatLng(float(lat), float(lng)), str(label),
                              "house" if kind == "poi" else "area",
                              "landmark" if kind == "poi" else "area", score=float(sim) - 0.1)
                for kind, label, lat, lng, sim in rows]

    # --- reverse --------------------------------------------------------------------------------

    def reverse(self, *, lon: float, lat: float) -> GeocodeResult | None:
        if not valid_latlng(lat, lon):
            return None
        p = _pt(lat, lon)
        s, cfg = self.session, self.settings
        house = s.execute(text("""
            SELECT f.label, f.housenumber, st.name, ST_Y(c), ST_X(c),
                   ST_Distance(f.geom::geography, ST_GeomFromEWKT(:p)::geography) AS d
            FROM (SELECT * FROM geocode_features WHERE kind = 'house'
                  ORDER BY geom <-> ST_GeomFromEWKT(:p) LIMIT 1) f
            LEFT JOIN geocode_streets st ON st.id = f.street_id,
            LATERAL ST_PointOnSurface(f.geom) AS c
        """), {"p": p}).first()
        if house is not None and float(house[5]) <= cfg.geocode_reverse_house_m:
            return GeocodeResult(LatLng(float(house[3]), float(house[4])), str(house[0]),
                                 "house", "reverse-house", street=house[2],
                                 housenumber=house[1], distance_m=round(float(house[5]), 1))
        street = s.execute(text("""
            SELECT st.name, ST_Y(c), ST_X(c),
                   ST_Distance(st.geom::geography, ST_GeomFromEWKT(:p)::geography) AS d
            FROM (SELECT * FROM geocode_streets WHERE source = 'road'
                  ORDER BY geom <-> ST_GeomFromEWKT(:p) LIMIT 1) st,
            LATERAL ST_ClosestPoint(st.geom, ST_GeomFromEWKT(:p)) AS c
        """), {"p": p}).first()
        if street is not None and float(street[3]) <= cfg.geocode_reverse_max_m:
            return GeocodeResult(LatLng(float(street[1]), float(street[2])), str(street[0]),
                                 "street", "reverse-street", street=str(street[0]),
                                 distance_m=round(float(street[3]), 1))
        area = s.execute(text("""
            SELECT label, ST_Y(geom), ST_X(geom),
                   ST_Distance(geom::geography, ST_GeomFromEWKT(:p)::geography) AS d
            FROM geocode_features WHERE kind = 'area'
            ORDER BY geom <-> ST_GeomFromEWKT(:p) LIMIT 1
        """), {"p": p}).first()
        if area is not None and float(area[3]) <= cfg.geocode_reverse_max_m * 4:
            return GeocodeResult(LatLng(float(area[1]), float(area[2])), str(area[0]), "area",
                                 "reverse-area", distance_m=round(float(area[3]), 1))
        return None


def _part_of(key: str, column: str) -> str:
    """Also match names that merely contain the typed words ("Charles" in "North Charles
    Street") when the typed text is short; a long text is matched by similarity alone (word
    similarity of many trigrams makes the trigram index scan nearly everything)."""
    return f"OR :k <% {column}" if len(key.split()) <= 2 and len(key) <= 24 else ""


def _leading_int(hn: str) -> int | None:
    digits = ""
    for ch in hn.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits and len(digits) <= 6 else None


def describe_point(result: GeocodeResult | None, point: LatLng) -> str | None:
    """``near 750 East Pratt Street`` for a point (what a map shows next to a crew)."""
    if result is None:
        return None
    if result.distance_m is not None and result.distance_m > 15:
        return f"near {result.label}"
    return result.label


def with_hint_distance(result: GeocodeResult, near: LatLng | None) -> GeocodeResult:
    """The result with ``distance_m`` from the hint (for display), when there is one."""
    if near is None:
        return result
    return replace(result, distance_m=round(haversine_m(result.point, near), 1))


__all__ = ["GeocodeResult", "Geocoder", "IndexGeocoder", "PRECISION_ORDER", "Precision",
           "describe_point", "fold_words", "with_hint_distance"]
