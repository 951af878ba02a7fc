/* A readable dispatcher map: crews clustered (leaflet.markercluster, vendored by
   scripts/fetch_assets.sh), so a call sign is drawn only on a crew that stands apart; a filter of
   crews by status and by kind (a control on the map, kept in this browser's localStorage); and
   "zoom to fit" of the selected incident with its recommended and assigned crews and the route.

   Hooks used by app.js: window.gdCrewLayer(map) makes the crews' layer; gd.mapUi.place(u, m)
   puts a crew's marker in or out of it; gd.mapUi.fitIncident(id) frames an incident; the
   "gd:route" event says a route was drawn. Loaded after Leaflet, before app.js. */
"use strict";
Object.assign(I18N.uk, {
  "mapf.title": "Екіпажі на карті", "mapf.status": "Статус", "mapf.kind": "Тип", "mapf.all": "усі",
  "mapf.shown": "показано {n} з {m}", "mapf.fit": "Показати подію й екіпажі",
  "kind.patrol_car": "патрульний автомобіль", "kind.foot_patrol": "піший патруль",
  "kind.rapid_response": "група швидкого реагування", "kind.traffic": "дорожній патруль",
  "kind.k9": "кінологи", "kind.supervisor_car": "автомобіль чергового",
  "cluster.title": "{n} екіпажів: {s}",
});
Object.assign(I18N.en, {
  "mapf.title": "Crews on the map", "mapf.status": "Status", "mapf.kind": "Kind", "mapf.all": "all",
  "mapf.shown": "{n} of {m} shown", "mapf.fit": "Zoom to incident and crews",
  "kind.patrol_car": "patrol car", "kind.foot_patrol": "foot patrol",
  "kind.rapid_response": "rapid response", "kind.traffic": "traffic",
  "kind.k9": "K9", "kind.supervisor_car": "supervisor car",
  "cluster.title": "{n} crews: {s}",
});
(function () {
  const KEY = "gd.crewFilter";
  const STATUSES = ["available", "dispatched", "en_route", "on_scene", "transporting", "cleared",
    "off_duty", "out_of_service", "break"];
  const KINDS = ["patrol_car", "foot_patrol", "rapid_response", "traffic", "k9", "supervisor_car"];
  const COLORS = {
    available: "#2e7d32", dispatched: "#c77700", en_route: "#1f5fbf", on_scene: "#8e24aa",
    transporting: "#00838f", cleared: "#558b2f", off_duty: "#9aa3b0", out_of_service: "#37474f",
    break: "#78909c",
  };
  // From this zoom on every crew stands alone (streets are readable there; a crowd at one
  // address is spread by the cluster's spiderfy on click below it).
  const NO_CLUSTER_ZOOM = 17;
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  function load() {
    try {
      const f = JSON.parse(localStorage.getItem(KEY) || "{}");
      return { statuses: Array.isArray(f.statuses) ? f.statuses : [], kinds: Array.isArray(f.kinds) ? f.kinds : [] };
    } catch (e) { return { statuses: [], kinds: [] }; }
  }
  // What is hidden is stored (not what is shown): a status or kind added later shows by default.
  const hidden = load();
  const save = () => localStorage.setItem(KEY, JSON.stringify(hidden));
  const gd = () => window.gd;

  function shown(u) { return !hidden.statuses.includes(u.status) && !hidden.kinds.includes(u.kind); }

  // A cluster: its count inside a ring coloured by the share of each status among its crews.
  function clusterIcon(cluster) {
    const counts = {};
    const ms = cluster.getAllChildMarkers();
    ms.forEach((m) => { const s = m.gdStatus || "?"; counts[s] = (counts[s] || 0) + 1; });
    let at = 0;
    const stops = STATUSES.concat(Object.keys(counts).filter((s) => !STATUSES.includes(s))).filter((s) => counts[s]).map((s) => {
      const from = at; at += (100 * counts[s]) / ms.length;
      return (COLORS[s] || "#7a8494") + " " + from.toFixed(1) + "% " + at.toFixed(1) + "%";
    });
    const n = ms.length;
    const size = n < 10 ? 30 : n < 50 ? 36 : 42;
    const title = t("cluster.title", { n, s: Object.keys(counts).map((s) => t("status." + s) + " " + counts[s]).join(", ") });
    return L.divIcon({
      className: "crew-cluster", iconSize: [size, size],
      html: '<div class="ring" data-testid="crew-cluster" data-count="' + n + '" title="' + esc(title) +
        '" style="background:conic-gradient(' + stops.join(",") + ')"><span>' + n + "</span></div>",
    });
  }

  window.gdCrewLayer = function (map) {
    if (!L.markerClusterGroup) return L.layerGroup();  // vendor asset missing: plain markers
    // The cluster group needs the map's top zoom, which tile layers would give (the vector base
    // map is added later, and the offline fallback has none).
    if (map.options.maxZoom === undefined) map.options.maxZoom = 19;
    return L.markerClusterGroup({
      maxClusterRadius: 44, disableClusteringAtZoom: NO_CLUSTER_ZOOM, showCoverageOnHover: false,
      spiderfyOnMaxZoom: false, chunkedLoading: true, iconCreateFunction: clusterIcon,
    });
  };

  // In or out of the crews' layer as the filter says; called for every live update of a crew.
  function place(u, m) {
    const layer = gd().layers.crews;
    m.gdStatus = u.status; m.gdKind = u.kind;
    const want = shown(u);
    const has = layer.hasLayer(m);
    if (want && !has) layer.addLayer(m);
    else if (!want && has) layer.removeLayer(m);
    else if (has && m.gdShownStatus !== u.status && layer.refreshClusters) layer.refreshClusters(m);
    m.gdShownStatus = u.status;
    scheduleCount();
  }
  function applyFilter() {
    const g = gd();
    Object.entries(g.unitMarkers).forEach(([id, m]) => { const u = g.units[id]; if (u) place(u, m); });
    save();
    renderControl();
  }

  // --- the control on the map ------------------------------------------------------------------
  let box = null;
  let countTimer = null;
  function scheduleCount() {
    if (countTimer) return;
    countTimer = setTimeout(() => { countTimer = null; renderCount(); }, 200);
  }
  function renderCount() {
    const el = box && box.querySelector("[data-testid=crew-filter-count]");
    if (!el) return;
    const g = gd();
    const all = Object.keys(g.unitMarkers).length;
    const n = Object.values(g.unitMarkers).filter((m) => g.layers.crews.hasLayer(m)).length;
    el.textContent = t("mapf.shown", { n, m: all });
    el.dataset.shown = n; el.dataset.total = all;
  }
  function renderControl() {
    if (!box) return;
    const kinds = KINDS.concat(Object.values(gd().units).map((u) => u.kind).filter((k) => k && !KINDS.includes(k)))
      .filter((k, i, a) => a.indexOf(k) === i);
    const row = (group, value, label, dot) => '<label class="mapf-row"><input type="checkbox" data-group="' + group + '" value="' + esc(value) +
      '" data-testid="crew-filter-' + group + '-' + esc(value) + '"' + (hidden[group === "status" ? "statuses" : "kinds"].includes(value) ? "" : " checked") + ">" +
      (dot ? '<i style="background:' + dot + '"></i>' : "") + esc(label) + "</label>";
    const open = box.classList.contains("open");
    box.innerHTML = '<button type="button" class="mapf-toggle" data-testid="crew-filter-toggle" aria-expanded="' + open + '">' +
      esc(t("mapf.title")) + ' <span class="mapf-count" data-testid="crew-filter-count"></span></button>' +
      '<div class="mapf-body" data-testid="crew-filter"' + (open ? "" : " hidden") + '><div class="mapf-col"><b>' + esc(t("mapf.status")) + "</b>" +
      STATUSES.map((s) => row("status", s, t("status." + s), COLORS[s])).join("") + '</div><div class="mapf-col"><b>' + esc(t("mapf.kind")) + "</b>" +
      kinds.map((k) => row("kind", k, I18N[LANG]["kind." + k] ? t("kind." + k) : k)).join("") + "</div></div>";
    renderCount();
  }
  function makeControl(map) {
    const c = L.control({ position: "topright" });
    c.onAdd = () => {
      box = L.DomUtil.create("div", "leaflet-bar mapf");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      box.addEventListener("click", (ev) => {
        if (!ev.target.closest(".mapf-toggle")) return;
        box.classList.toggle("open"); renderControl();
      });
      box.addEventListener("change", (ev) => {
        const cb = ev.target;
        if (!cb.dataset || !cb.dataset.group) return;
        const list = hidden[cb.dataset.group === "status" ? "statuses" : "kinds"];
        const k = list.indexOf(cb.value);
        if (cb.checked && k >= 0) list.splice(k, 1);
        if (!cb.checked && k < 0) list.push(cb.value);
        applyFilter();
      });
      renderControl();
      return box;
    };
    c.addTo(map);
  }

  // --- zoom to fit -----------------------------------------------------------------------------
  const assignedOf = {};  // incident id -> unit ids of its assignments (from the panel's detail)
  function fitPoints(id) {
    const g = gd();
    const i = g.incidents[id];
    if (!i || i.lat === null || i.lat === undefined) return null;
    const pts = [[i.lat, i.lng]];
    const units = [];
    const rows = (g.reco && (g.reco.ranked || g.reco.candidates || g.reco.crews || g.reco.recommendations)) || [];
    const ids = rows.slice(0, 3).map((r) => r.unit_id);
    if (g.reco && rows[g.reco.selectedIdx || 0]) ids.push(rows[g.reco.selectedIdx || 0].unit_id);
    (assignedOf[id] || []).forEach((u) => ids.push(u));
    ids.filter((u, k, a) => a.indexOf(u) === k).forEach((uid) => {
      const u = g.units[uid];
      if (u && u.lat !== null && u.lat !== undefined) { pts.push([u.lat, u.lng]); units.push(uid); }
    });
    const b = L.latLngBounds(pts);
    if (g.routeLayer && g.routeLayer.getBounds && g.selected && g.selected.kind === "incident") b.extend(g.routeLayer.getBounds());
    return { bounds: b, units };
  }
  function fitIncident(id) {
    const g = gd();
    const f = fitPoints(id);
    if (!f) return false;
    if (f.units.length === 0 && f.bounds.getNorth() === f.bounds.getSouth()) {
      g.map.setView(f.bounds.getCenter(), Math.max(g.map.getZoom(), 16));
    } else {
      g.map.fitBounds(f.bounds.pad(0.05), { padding: [30, 30], maxZoom: 17 });
    }
    g.lastFit = { id, units: f.units, bounds: [[f.bounds.getSouth(), f.bounds.getWest()], [f.bounds.getNorth(), f.bounds.getEast()]] };
    return true;
  }

  document.addEventListener("gd:started", () => {
    const g = gd();
    if (!g.map || box) { renderControl(); return; }
    makeControl(g.map);
    g.mapUi = { place, fitIncident, shown, filter: hidden };
    // The first render of markers happened before: sort them into the filter now.
    applyFilter();
  });
  // The panel of the selected incident: remember its crews, offer the button.
  document.addEventListener("gd:incident-panel", (ev) => {
    const { id, detail } = ev.detail || {};
    if (detail && detail.assignments) {
      const before = (assignedOf[id] || []).join(",");
      assignedOf[id] = detail.assignments.filter((a) => !["cleared", "cancelled"].includes(a.status)).map((a) => a.unit_id);
      if (before !== assignedOf[id].join(",") && assignedOf[id].length) fitIncident(id);
    }
    const h = document.querySelector('[data-testid="incident-panel"] h2');
    const i = gd().incidents[id];
    if (h && i && i.lat !== null && i.lat !== undefined && !h.querySelector("[data-testid=zoom-fit]")) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "zoom-fit"; b.title = t("mapf.fit");
      b.setAttribute("data-testid", "zoom-fit"); b.setAttribute("aria-label", t("mapf.fit"));
      b.textContent = "⤢";
      b.onclick = () => fitIncident(id);
      h.appendChild(b);
    }
  });
  // A route (recommendation) drawn for the selected incident: frame it with its crews.
  document.addEventListener("gd:route", (ev) => {
    const g = gd();
    if (g.selected && g.selected.kind === "incident" && ev.detail && ev.detail.id === g.selected.id) fitIncident(g.selected.id);
  });
  document.addEventListener("gd:lang", renderControl);
})();
