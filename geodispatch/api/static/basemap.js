/* The offline base map: the city's own vector tiles (/tiles, built by `geodispatch tiles build`
   from the OSM extract) drawn by protomaps-leaflet on a canvas, with street and place names.

   window.gdBaseMap(map, {base, attribution, fallback}) -> Promise<"vector" | "fallback">
     Asks the server for /tiles/metadata.json; when tiles are built (and GEODISPATCH_VECTOR_TILES
     is on) adds the vector layer under everything else on `map`, else calls `fallback()` (the
     page's own raster tiles or road lines). `base` is the server's origin ("" = this page's).
   After it resolves, map.gdBase = {kind, layer, meta, drawnLabels}: drawnLabels is the set of
   names actually painted on the map's canvases (what the browser tests look for).

   Needs Leaflet and static/vendor/protomaps-leaflet/protomaps-leaflet.js (scripts/fetch_assets.sh)
   loaded first. Layers and attributes: geodispatch/tiles/tilemaker/process.lua. */
"use strict";
(function () {
  const BG = "#f3f1ea";
  const ROAD = {  // class -> [fill, casing, width at z12, width at z18]
    motorway: ["#f6c57a", "#c9944a", 2.2, 16], trunk: ["#f8d38f", "#c99f57", 2, 15],
    primary: ["#fbe3a4", "#c8ad6b", 1.8, 14], secondary: ["#ffffff", "#b9b1a2", 1.4, 12],
    tertiary: ["#ffffff", "#bdb6a8", 1.1, 11], minor: ["#ffffff", "#c9c2b5", 0.6, 9],
    service: ["#ffffff", "#d2ccc0", 0.3, 5], path: ["#fbfaf6", "#cfc6b6", 0.3, 2.5],
  };
  const LAND = { park: "#d4e8c4", wood: "#c6dcb2", grass: "#dcecc9", residential: "#ece8df",
                 commercial: "#efe3e0", industrial: "#e6e1ea", cemetery: "#d6e0cf" };
  const ORDER = ["path", "service", "minor", "tertiary", "secondary", "primary", "trunk", "motorway"];

  function widthFn(lo, hi, extra) {  // exponential-ish growth from z12 to z18
    return (z) => {
      const t = Math.min(Math.max((z - 12) / 6, 0), 1);
      return lo + (hi - lo) * t * t + (extra || 0);
    };
  }
  function is(cls) { return (z, f) => f.props["class"] === cls; }

  function rules(P) {
    const paint = [
      { dataLayer: "landuse", symbolizer: new P.PolygonSymbolizer({
        fill: (z, f) => LAND[f.props["class"]] || BG }) },
      { dataLayer: "water", symbolizer: new P.PolygonSymbolizer({ fill: "#aad3df" }) },
      { dataLayer: "waterway", symbolizer: new P.LineSymbolizer({ color: "#aad3df",
        width: (z, f) => (f.props["class"] === "river" || f.props["class"] === "canal" ? 3 : 1.2) }) },
      { dataLayer: "buildings", symbolizer: new P.PolygonSymbolizer({ fill: "#dcd5cc",
        stroke: "#cbc2b6", width: 0.5 }) },
    ];
    for (const cls of ORDER) {  // casings first, then fills, minor roads under major ones
      const [, casing, lo, hi] = ROAD[cls];
      paint.push({ dataLayer: "roads", filter: is(cls),
        symbolizer: new P.LineSymbolizer({ color: casing, width: widthFn(lo, hi, 1.5) }) });
    }
    for (const cls of ORDER) {
      const [fill, , lo, hi] = ROAD[cls];
      paint.push({ dataLayer: "roads", filter: is(cls),
        symbolizer: new P.LineSymbolizer({ color: fill, width: widthFn(lo, hi) }) });
    }
    paint.push({ dataLayer: "roads", filter: is("rail"), symbolizer: new P.LineSymbolizer({
      color: "#9a968e", width: 1.2 }) });
    const label = [
      { dataLayer: "places", symbolizer: new P.CenteredTextSymbolizer({
        labelProps: ["name"], fill: "#3d3a35", stroke: "#ffffff", width: 3,
        font: (z, f) => (f && (f.props["class"] === "city" || f.props["class"] === "town")
          ? "600 16px sans-serif" : "600 13px sans-serif") }) },
      { dataLayer: "roads", minzoom: 13, filter: (z, f) => !!f.props.name && f.props["class"] !== "rail",
        symbolizer: new P.LineLabelSymbolizer({ labelProps: ["name"], fill: "#2b2b2b",
          stroke: "#ffffff", width: 3, font: "500 12px sans-serif", repeatDistance: 250 }),
        sort: (a, b) => ORDER.indexOf(b["class"]) - ORDER.indexOf(a["class"]) },
      { dataLayer: "waterway", minzoom: 13, filter: (z, f) => !!f.props.name,
        symbolizer: new P.LineLabelSymbolizer({ labelProps: ["name"], fill: "#2f6f8f",
          stroke: "#ffffff", width: 2, font: "italic 12px sans-serif" }) },
    ];
    return { paint, label };
  }

  // Record which names the labeler really paints (a label that collides is never drawn).
  function recording(rule, drawn) {
    const sym = rule.symbolizer;
    return Object.assign({}, rule, { symbolizer: {
      place(layout, geom, feature) {
        const labels = sym.place(layout, geom, feature);
        if (!labels) return labels;
        const name = feature.props && feature.props.name;
        return labels.map((l) => Object.assign({}, l, { draw(ctx, extra) {
          if (name) drawn.add(String(name));
          return l.draw(ctx, extra);
        } }));
      },
    } });
  }

  async function gdBaseMap(map, opts) {
    const o = opts || {};
    const base = o.base || "";
    const fallback = () => { map.gdBase = { kind: "fallback" }; if (o.fallback) o.fallback(); return "fallback"; };
    if (!window.protomapsL || !window.L) return fallback();
    let meta;
    try {
      const r = await fetch(base + "/tiles/metadata.json", { cache: "no-cache" });
      if (!r.ok) return fallback();
      meta = await r.json();
    } catch (e) { return fallback(); }
    const P = window.protomapsL;
    const drawn = new Set();
    const { paint, label } = rules(P);
    const layer = P.leafletLayer({
      url: base + "/tiles/{z}/{x}/{y}.pbf",
      maxDataZoom: meta.maxzoom || 14,
      paintRules: paint,
      labelRules: label.map((rl) => recording(rl, drawn)),
      backgroundColor: BG,
      attribution: o.attribution || meta.attribution || "&copy; OpenStreetMap contributors",
      maxZoom: 20,
      zIndex: 0,
    });
    layer.addTo(map);
    if (layer.bringToBack) layer.bringToBack();
    map.getContainer().style.background = BG;
    map.gdBase = { kind: "vector", layer, meta, drawnLabels: drawn };
    return "vector";
  }
  window.gdBaseMap = gdBaseMap;
})();
