/* geodispatch dispatcher console: Leaflet map, live crews and incidents, recommendations and
 * assignments, call registration. Plain JavaScript, no build step; state lives in window.gd so
 * browser tests (and curious operators, from the devtools console) can inspect it. */
"use strict";
(function () {
  const gd = (window.gd = {
    token: sessionStorage.getItem("gd.token"), user: null, config: null, map: null,
    units: {}, unitMarkers: {}, unitHistory: {}, incidents: {}, incidentMarkers: {}, incidentHistory: {},
    ws: null, wsBackoff: 500, offline: false, tileErrors: 0, tileLoads: 0,
    selected: null, reco: null, routeLayer: null, callPoint: null, callMarker: null,
    lastUnitMsgAt: 0, categories: null, layers: {},
  });
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const OPEN = ["registered", "queued", "assigned", "en_route", "on_scene", "cleared"];
  const UNASSIGNED = ["registered", "queued"];
  const STATUS_COLORS = {
    available: "#2e7d32", dispatched: "#c77700", en_route: "#1f5fbf", on_scene: "#8e24aa",
    transporting: "#00838f", cleared: "#558b2f", off_duty: "#9aa3b0", out_of_service: "#37474f",
    break: "#78909c",
  };
  // Fallback categories when the incidents API does not list its own.
  const DEFAULT_CATEGORIES = ["theft", "assault", "domestic_violence", "traffic_accident",
    "noise", "burglary", "robbery", "suspicious_person", "missing_person", "other"];

  // --- HTTP ------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) { super((body && (body.detail || body.title)) || ("HTTP " + status)); this.status = status; this.body = body; }
  }
  async function api(method, path, body, opts) {
    const headers = { Accept: "application/json" };
    if (gd.token) headers.Authorization = "Bearer " + gd.token;
    let payload;
    if (body instanceof URLSearchParams) { payload = body; }
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
    const r = await fetch(path, { method, headers, body: payload });
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
    if (r.status === 401 && !(opts && opts.noLogout)) { logout(); }
    if (!r.ok) throw new ApiError(r.status, data);
    return data;
  }
  const fmtTime = (epoch) => {
    if (epoch === null || epoch === undefined) return "—";
    const d = typeof epoch === "number" ? new Date(epoch * 1000) : new Date(epoch);
    return d.toLocaleTimeString(LANG === "uk" ? "uk-UA" : "en-GB");
  };
  // Rounded to whole seconds before splitting: 179.6 s is "3:00", never "2:60".
  const fmtEta = (s) => {
    if (s === null || s === undefined || !Number.isFinite(Number(s))) return "—";
    const whole = Math.max(0, Math.round(Number(s)));
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
  };
  const fmtKm = (m) => (m === null || m === undefined) ? "—" : (m / 1000).toFixed(1) + " km";
  const stBadge = (s) => '<span class="st st-' + esc(s) + '">' + esc(t("status." + s)) + "</span>";
  const prioBadge = (p) => '<span class="prio p' + esc(p) + '">' + esc(p) + "</span>";

  // --- login -----------------------------------------------------------------------------------
  async function doLogin(ev) {
    ev.preventDefault();
    const f = ev.target;
    $("#login-error").textContent = "";
    try {
      const body = new URLSearchParams({ username: f.username.value, password: f.password.value });
      const tok = await api("POST", "/api/auth/token", body, { noLogout: true });
      gd.token = tok.access_token;
      sessionStorage.setItem("gd.token", gd.token);
      if (!localStorage.getItem("gd.lang") && tok.language) { LANG = tok.language; applyI18n(); }
      await start();
    } catch (e) {
      $("#login-error").textContent = e.status === 429
        ? t("login.ratelimited", { s: (e.body && e.body.retry_after) || 60 }) : t("login.failed");
    }
  }
  function logout() {
    gd.token = null;
    clearTimeout(gd.alertsTimer);
    sessionStorage.removeItem("gd.token");
    if (gd.ws) { gd.ws.onclose = null; gd.ws.close(); gd.ws = null; }
    $("#console").hidden = true;
    $("#login").hidden = false;
    document.dispatchEvent(new CustomEvent("gd:logout"));
  }

  // --- start -----------------------------------------------------------------------------------
  async function start() {
    gd.user = await api("GET", "/api/auth/me");
    gd.config = await api("GET", "/api/web/config");
    $("#login").hidden = true;
    $("#console").hidden = false;
    $("#whoami").textContent = gd.user.username + " · " + gd.user.role + (gd.user.region ? " · " + gd.user.region : "");
    const canCall = ["call_taker", "dispatcher", "supervisor", "admin"].includes(gd.user.role);
    $('[data-tab="newcall"]').hidden = !canCall;
    initMap();
    loadCategories().then(scheduleRender);
    // Analysts have no live map (the server refuses them the feed): their page is analytics.js.
    $("#conn").hidden = gd.user.role === "analyst";
    if (gd.user.role !== "analyst") connectLive();
    if (["dispatcher", "supervisor", "admin", "national"].includes(gd.user.role)) pollAlerts();
    document.dispatchEvent(new CustomEvent("gd:started"));  // calls.js and other screens start
  }

  // --- supervisor alerts (dispatch's timers: unassigned too long, crews too long on a step) ------
  async function pollAlerts() {
    if (!gd.token) return;
    try {
      const data = await api("GET", "/api/dispatch/alerts");
      gd.alerts = (data && data.items) || [];
    } catch (e) { gd.alerts = []; }
    document.dispatchEvent(new CustomEvent("gd:alerts"));  // alerts.js words and groups them
    clearTimeout(gd.alertsTimer);
    gd.alertsTimer = setTimeout(pollAlerts, 15000);
  }

  // --- map -------------------------------------------------------------------------------------
  function initMap() {
    if (gd.map) { gd.map.invalidateSize(); return; }
    const map = (gd.map = L.map("map", { preferCanvas: true, zoomControl: true, attributionControl: true }));
    map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    const b = gd.config.bounds;
    // (maxZoom: bounds of one point, such as a new centre's first incident, have no zoom of
    // their own without a tile layer, and Leaflet would throw on an infinite zoom)
    if (b) map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { maxZoom: 16 }); else map.setView([50.45, 30.52], 12);
    // Crews clustered and filtered by mapcrews.js when loaded.
    gd.layers.crews = (window.gdCrewLayer ? window.gdCrewLayer(map) : L.layerGroup()).addTo(map);
    gd.layers.incidents = L.layerGroup().addTo(map);
    gd.layers.roads = L.geoJSON(null, { style: { color: "#8a94a6", weight: 1.2, opacity: 0.8 }, interactive: false });
    gd.layers.zones = L.geoJSON(null, {
      style: (f) => ({ color: "#1f5fbf", weight: f.properties && f.properties.level === "sector" ? 1 : 2, fill: true, fillOpacity: 0.03, dashArray: "4 3" }),
      onEachFeature: (f, l) => f.properties && l.bindTooltip(esc(f.properties.name || f.properties.code || ""), { sticky: true }),
    });
    // The attribution is always shown: our own roads and zones are OpenStreetMap data too.
    map.attributionControl.addAttribution(gd.config.tile_attribution);
    const rasterBase = () => { if (gd.config.tile_url) {
      const tiles = L.tileLayer(gd.config.tile_url, { maxZoom: 19, attribution: gd.config.tile_attribution });
      tiles.on("tileload", () => { gd.tileLoads += 1; });
      tiles.on("tileerror", () => {
        gd.tileErrors += 1;
        if (gd.tileLoads === 0 && gd.tileErrors >= 4 && !gd.offline) { map.removeLayer(tiles); goOffline(); }
      });
      tiles.addTo(map);
      gd.layers.tiles = tiles;
    } else {
      goOffline();
    } };
    // The city's own vector tiles with street names when built (basemap.js), else the above.
    gd.baseMap = window.gdBaseMap ? window.gdBaseMap(map, { attribution: gd.config.tile_attribution, fallback: rasterBase }) : rasterBase();
    const overlays = {};
    overlays[t("map.crews")] = gd.layers.crews;
    overlays[t("map.incidents")] = gd.layers.incidents;
    overlays[t("map.roads")] = gd.layers.roads;
    overlays[t("map.zones")] = gd.layers.zones;
    L.control.layers(null, overlays, { collapsed: true }).addTo(map);
    L.control.scale({ imperial: false }).addTo(map);
    const legend = L.control({ position: "bottomleft" });
    legend.onAdd = () => { const div = L.DomUtil.create("div", "legend"); gd.legendDiv = div; renderLegend(); return div; };
    legend.addTo(map);
    gd.legend = legend;
    map.on("click", onMapClick);
    loadZones();
  }
  function renderLegend() {
    if (!gd.legendDiv) return;
    gd.legendDiv.innerHTML = ["available", "dispatched", "en_route", "on_scene", "off_duty"].map(
      (s) => '<i style="background:' + STATUS_COLORS[s] + '"></i>' + esc(t("status." + s))).join("<br>");
  }
  function categoryLabel(code) {
    const c = (gd.categories || []).find((x) => x.code === code);
    return c ? c.label : code;
  }
  async function loadGeoJSON(path, layer) {
    try {
      const data = await api("GET", path);
      layer.clearLayers();
      layer.addData(data);
      return true;
    } catch (e) { return false; }
  }
  // Roads come from our own database (routing's /api/roads/edges), one viewport at a time.
  const MAX_ROADS_BBOX_DEG = 0.5;
  let roadsTimer = null;
  function loadRoads() {
    const b = gd.map.getBounds();
    if (b.getEast() - b.getWest() > MAX_ROADS_BBOX_DEG || b.getNorth() - b.getSouth() > MAX_ROADS_BBOX_DEG) {
      gd.layers.roads.clearLayers();
      return;
    }
    gd.roadsRequested = (gd.roadsRequested || 0) + 1;
    loadGeoJSON("/api/roads/edges?bbox=" + b.toBBoxString(), gd.layers.roads);
  }
  function goOffline() {
    gd.offline = true;
    $("#offline-badge").hidden = false;
    gd.map.getContainer().style.background = "#f3f1ea";
    gd.layers.roads.addTo(gd.map);
    gd.layers.zones.addTo(gd.map);
    loadRoads();
    gd.map.on("moveend", () => { clearTimeout(roadsTimer); roadsTimer = setTimeout(loadRoads, 250); });
  }
  function loadZones() { loadGeoJSON("/api/zones?level=sector", gd.layers.zones); }

  // --- crews -----------------------------------------------------------------------------------
  function unitStyle(u) {
    return { radius: 7, color: "#fff", weight: 2, fillColor: STATUS_COLORS[u.status] || "#7a8494",
             fillOpacity: u.stale ? 0.35 : 0.95 };
  }
  function upsertUnit(update) {
    const prev = gd.units[update.id];
    // Position-only updates carry just id, lat, lng, fix_time, speed and heading: merge them.
    const u = prev ? Object.assign({}, prev, update) : update;
    if (u.call_sign === undefined) return;  // a compact update for a unit we never saw in full
    if (gd.config && u.fix_time) u.stale = Date.now() / 1000 - u.fix_time > gd.config.stale_after_s;
    if (!prev || prev.status !== u.status) {
      (gd.unitHistory[u.id] = gd.unitHistory[u.id] || []).push({ at: Date.now() / 1000, status: u.status });
    }
    gd.units[u.id] = u;
    let m = gd.unitMarkers[u.id];
    if (u.lat === null || u.lat === undefined) { if (m) { gd.layers.crews.removeLayer(m); delete gd.unitMarkers[u.id]; } return; }
    if (!m) {
      m = L.circleMarker([u.lat, u.lng], unitStyle(u));
      m.bindTooltip(esc(u.call_sign), { permanent: true, direction: "right", offset: [6, 0], className: "unit-label" });
      m.on("click", (ev) => { L.DomEvent.stopPropagation(ev); showCrew(u.id); });
      gd.unitMarkers[u.id] = m;
      if (!gd.mapUi) m.addTo(gd.layers.crews);
    } else {
      m.setLatLng([u.lat, u.lng]);
      m.setStyle(unitStyle(u));
    }
    if (gd.mapUi) gd.mapUi.place(u, m);  // the status/kind filter (mapcrews.js)
  }
  function renderCrews() {
    const filter = ($("#crew-filter").value || "").toLowerCase();
    const list = Object.values(gd.units).filter((u) => !filter || String(u.call_sign).toLowerCase().includes(filter))
      .sort((a, b) => String(a.call_sign).localeCompare(String(b.call_sign)));
    $("#crew-count").textContent = Object.keys(gd.units).length;
    $("#crews").innerHTML = list.slice(0, 500).map((u) =>
      '<li data-testid="crew-item" data-id="' + u.id + '"><span class="title">' + esc(u.call_sign) + "</span> " + stBadge(u.status) +
      '<div class="sub">' + esc(u.kind) + (u.stale ? " · " + esc(t("crew.stale")) : "") + "</div></li>").join("");
  }

  // --- incidents -------------------------------------------------------------------------------
  function incidentIcon(i) {
    return L.divIcon({ className: "inc-icon " + esc(i.status), iconSize: [28, 28], iconAnchor: [14, 14],
                       html: '<span class="prio p' + esc(i.priority) + '">' + esc(i.priority) + "</span>" });
  }
  function upsertIncident(i) {
    const prev = gd.incidents[i.id];
    if (i.last_event) {  // the live feed's newest event: a local timeline when the API has none
      const hist = (gd.incidentHistory[i.id] = gd.incidentHistory[i.id] || []);
      if (!hist.some((e) => e.id === i.last_event.id)) hist.push(i.last_event);
    }
    gd.incidents[i.id] = Object.assign({}, prev || {}, i);
    let m = gd.incidentMarkers[i.id];
    if (!OPEN.includes(i.status)) {
      if (m) { gd.layers.incidents.removeLayer(m); delete gd.incidentMarkers[i.id]; }
      return;
    }
    if (i.lat === null || i.lat === undefined) return;
    if (!m) {
      m = L.marker([i.lat, i.lng], { icon: incidentIcon(i), zIndexOffset: 1000 });
      m.on("click", (ev) => { L.DomEvent.stopPropagation(ev); showIncident(i.id); });
      m.bindTooltip(esc(i.reference) + " · " + esc(i.category));
      m.addTo(gd.layers.incidents);
      gd.incidentMarkers[i.id] = m;
    } else {
      m.setLatLng([i.lat, i.lng]);
      m.setIcon(incidentIcon(i));
    }
  }
  function incidentLi(i) {
    return '<li data-testid="queue-item" data-id="' + i.id + '">' + prioBadge(i.priority) + ' <span class="title">' +
      esc(i.reference || "#" + i.id) + "</span> " + stBadge(i.status) + '<div class="sub">' + esc(categoryLabel(i.category)) + " · " +
      esc(i.address || i.address_resolved || (i.lat ? i.lat.toFixed(5) + ", " + i.lng.toFixed(5) : "")) +
      (i.location_precision === "street" || i.location_precision === "area" ? precBadge(i.location_precision) : "") + " · " + fmtTime(i.received_at) +
      (i.lat === null || i.lat === undefined ? ' <span class="badge warn" data-testid="location-unknown">' + esc(t("inc.unknown")) + "</span>" : "") + "</div></li>";
  }
  function renderQueue() {
    const all = Object.values(gd.incidents).filter((i) => OPEN.includes(i.status))
      .sort((a, b) => (a.priority - b.priority) || ((a.received_at || 0) - (b.received_at || 0)));
    const queue = all.filter((i) => UNASSIGNED.includes(i.status));
    if (gd.queueUi) gd.queueUi.order(queue);  // queue.js: priority, then share of its limit
    const active = all.filter((i) => !UNASSIGNED.includes(i.status));
    $("#queue").innerHTML = queue.map(incidentLi).join("");
    $("#active").innerHTML = active.map(incidentLi).join("").replaceAll('data-testid="queue-item"', 'data-testid="active-item"');
    $("#queue-count").textContent = queue.length;
    $("#queue-empty").hidden = queue.length > 0;
    document.dispatchEvent(new CustomEvent("gd:queue-rendered"));
  }

  // --- live feed -------------------------------------------------------------------------------
  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; renderQueue(); renderCrews(); refreshPanel(); });
  }
  function setConn(state) {
    const el = $("#conn");
    el.textContent = t("conn." + state);
    el.className = "badge " + ({ live: "ok", lost: "bad", connecting: "" }[state]);
    el.dataset.state = state;
  }
  function connectLive() {
    if (!gd.token) return;
    setConn("connecting");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = (gd.ws = new WebSocket(proto + "//" + location.host + "/api/live"));
    ws.onopen = () => { ws.send(JSON.stringify({ token: gd.token })); };
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      document.dispatchEvent(new CustomEvent("gd:live", { detail: msg }));
      if (msg.type === "snapshot") {
        setConn("live"); gd.wsBackoff = 500;
        msg.units.forEach(upsertUnit); msg.incidents.forEach(upsertIncident);
      } else if (msg.type === "units") {
        gd.lastUnitMsgAt = Date.now(); msg.units.forEach(upsertUnit);
      } else if (msg.type === "incidents") {
        msg.incidents.forEach(upsertIncident);
        if (gd.selected && gd.selected.kind === "incident" && msg.incidents.some((i) => i.id === gd.selected.id)) {
          gd.selected.dirty = true;
        }
      }
      scheduleRender();
    };
    ws.onclose = (ev) => {
      gd.ws = null;
      if (ev.code === 4401) { logout(); return; }
      setConn("lost");
      if (ev.code === 4403) { $("#conn").textContent = t("conn.forbidden"); return; }
      setTimeout(connectLive, gd.wsBackoff);
      gd.wsBackoff = Math.min(gd.wsBackoff * 2, 10000);
    };
  }

  // --- panels ----------------------------------------------------------------------------------
  function openPanel(html) {
    $("#panel-body").innerHTML = html;
    $("#panel").hidden = false;
    gd.map.invalidateSize();
  }
  function closePanel() {
    $("#panel").hidden = true;
    gd.selected = null;
    clearRoute();
    gd.map.invalidateSize();
  }
  function refreshPanel() {
    const s = gd.selected;
    if (!s) return;
    if (s.kind === "crew") renderCrewPanel(s.id);
    else if (s.kind === "incident" && s.dirty) { s.dirty = false; loadIncidentDetails(s.id); }
  }
  function clearRoute() { if (gd.routeLayer) { gd.map.removeLayer(gd.routeLayer); gd.routeLayer = null; } }
  function routeLatLngs(r) {
    if (!r) return null;
    const pick = r.route || r.geometry || r.coords || r.path;
    if (!pick) return null;
    if (pick.type === "LineString") return pick.coordinates.map((c) => [c[1], c[0]]);
    if (pick.type === "Feature") return routeLatLngs({ route: pick.geometry });
    const coords = pick.coords || pick;
    if (!Array.isArray(coords) || !coords.length) return null;
    return coords.map((c) => Array.isArray(c) ? [c[0], c[1]] : [c.lat, c.lng]);
  }
  async function drawRoute(r) {
    clearRoute();
    const inc = gd.selected && gd.incidents[gd.selected.id];
    const u = gd.units[r.unit_id];
    let latlngs = routeLatLngs(r);
    if (!latlngs && u && inc && u.lat !== null && u.lat !== undefined) {
      // The recommendation did not carry the geometry: ask routing for the drive.
      try {
        const q = new URLSearchParams({ from_lat: u.lat, from_lng: u.lng, to_lat: inc.lat, to_lng: inc.lng });
        latlngs = routeLatLngs({ route: await api("GET", "/api/roads/route?" + q) });
      } catch (e) { latlngs = null; }
    }
    const line = latlngs || (u && inc && u.lat !== null ? [[u.lat, u.lng], [inc.lat, inc.lng]] : null);
    if (!line) return;
    clearRoute();
    gd.routeLayer = L.polyline(line, { color: "#1f5fbf", weight: 5, opacity: 0.75, dashArray: latlngs ? null : "6 6" }).addTo(gd.map);
    gd.routeLayer.bringToBack();
    document.dispatchEvent(new CustomEvent("gd:route", { detail: { id: inc && inc.id, unit_id: r.unit_id } }));
  }

  // Reverse geocoding of the points the console shows (crews, map clicks), cached per ~10 m.
  const placeNames = {};
  function placeName(lat, lng, then) {
    if (lat === null || lat === undefined) return "";
    const k = Number(lat).toFixed(4) + "," + Number(lng).toFixed(4);
    if (k in placeNames) return placeNames[k];
    placeNames[k] = null;
    api("GET", "/api/geocode/reverse?" + new URLSearchParams({ lat, lng }))
      .then((r) => { placeNames[k] = r.distance_m > 15 ? t("place.near", { p: r.label }) : r.label; if (then) then(); })
      .catch(() => { placeNames[k] = ""; });
    return null;
  }
  // A place name that fills itself in when the reverse lookup answers ("near East Pratt Street").
  function placeSpan(lat, lng) {
    if (lat === null || lat === undefined) return "";
    const k = Number(lat).toFixed(4) + "," + Number(lng).toFixed(4);
    const name = placeName(lat, lng, () => $$('[data-place="' + k + '"]').forEach((el) => { el.textContent = placeNames[k] || ""; }));
    return '<span class="place" data-testid="place-name" data-place="' + k + '">' + esc(name || "") + "</span>";
  }
  function showCrew(id) {
    gd.selected = { kind: "crew", id };
    gd.trackFixes = 0;
    clearRoute();
    renderCrewPanel(id);
    loadTrack(id);
  }
  async function loadTrack(id) {
    // The last hour of the crew's fixes (tracking's GeoJSON), drawn under the markers.
    try {
      const fc = await api("GET", "/api/units/" + id + "/track");
      if (!gd.selected || gd.selected.kind !== "crew" || gd.selected.id !== id) return;
      const line = (fc.features || []).find((f) => f.geometry && f.geometry.type === "LineString");
      gd.trackFixes = (fc.features || []).filter((f) => f.geometry && f.geometry.type === "Point").length;
      if (line) {
        clearRoute();
        gd.routeLayer = L.polyline(line.geometry.coordinates.map((c) => [c[1], c[0]]),
          { color: "#37474f", weight: 3, opacity: 0.6, dashArray: "2 6" }).addTo(gd.map);
      }
      renderCrewPanel(id);
    } catch (e) { /* no history available */ }
  }
  function renderCrewPanel(id) {
    const u = gd.units[id];
    if (!u) return;
    const hist = (gd.unitHistory[id] || []).slice().reverse();
    const html = '<div data-testid="crew-panel" data-id="' + id + '"><h2>' + esc(t("crew.title")) + " " + esc(u.call_sign) + "</h2>" +
      '<dl class="kv"><dt>' + t("crew.status") + '</dt><dd data-testid="crew-status">' + stBadge(u.status) + "</dd>" +
      "<dt>" + t("crew.kind") + "</dt><dd>" + esc(u.kind) + "</dd>" +
      "<dt>" + t("crew.caps") + "</dt><dd>" + esc((u.capabilities || []).join(", ") || "—") + "</dd>" +
      "<dt>" + t("crew.region") + "</dt><dd>" + esc(u.region) + "</dd>" +
      "<dt>" + t("crew.where") + '</dt><dd data-testid="crew-where">' + placeSpan(u.lat, u.lng) + "</dd>" +
      "<dt>" + t("crew.fix") + "</dt><dd>" + fmtTime(u.fix_time) + (u.stale ? " (" + esc(t("crew.stale")) + ")" : "") + "</dd>" +
      "<dt>" + t("crew.speed") + "</dt><dd>" + (u.speed_mps !== null && u.speed_mps !== undefined ? (u.speed_mps * 3.6).toFixed(0) + " km/h" : "—") + "</dd></dl>" +
      (gd.trackFixes ? '<p class="hint">' + esc(t("crew.track", { n: gd.trackFixes })) + "</p>" : "") +
      (["dispatcher", "supervisor", "admin"].includes(gd.user.role)
        ? '<div class="actions"><select id="crew-set-status" data-testid="crew-set-status">' +
          Object.keys(STATUS_COLORS).map((s) => '<option value="' + s + '"' + (s === u.status ? " selected" : "") + ">" +
            esc(t("status." + s)) + "</option>").join("") +
          '</select><button type="button" id="crew-set-btn" data-testid="crew-set-btn">' + t("crew.set") + "</button></div>" +
          '<p id="crew-set-result" class="hint"></p>' : "") +
      "<h3>" + t("crew.timeline") + '</h3><ul class="timeline" data-testid="crew-timeline">' +
      hist.map((h) => "<li>" + fmtTime(h.at) + " " + stBadge(h.status) + "</li>").join("") + "</ul></div>";
    if (!(gd.selected && gd.selected.kind === "crew" && gd.selected.id === id)) return;
    // Live updates re-render the panel: keep an open status choice as it is.
    if (document.activeElement && document.activeElement.id === "crew-set-status") return;
    openPanel(html);
    const btn = $("#crew-set-btn");
    if (btn) btn.onclick = async () => {
      try {
        await api("POST", "/api/dispatch/units/" + id + "/status", { status: $("#crew-set-status").value });
        $("#crew-set-result").textContent = "✓";
      } catch (e) { $("#crew-set-result").textContent = t("err.generic", { d: e.message }); }
    };
  }

  function showIncident(id) {
    gd.selected = { kind: "incident", id };
    gd.reco = null;
    clearRoute();
    const i = gd.incidents[id];
    if (gd.mapUi) gd.mapUi.fitIncident(id); else if (i && i.lat !== null) gd.map.panTo([i.lat, i.lng]);
    renderIncidentPanel(id, null, []);
    loadIncidentDetails(id);
    if (i && UNASSIGNED.includes(i.status) && ["dispatcher", "supervisor", "admin"].includes(gd.user.role)) recommend(id);
  }
  async function loadIncidentDetails(id) {
    let detail = null;
    let events = [];
    try { detail = await api("GET", "/api/incidents/" + id); } catch (e) { /* not published yet */ }
    try {
      const ev = await api("GET", "/api/incidents/" + id + "/events");
      events = Array.isArray(ev) ? ev : (ev && (ev.events || ev.items)) || [];
    } catch (e) { events = (detail && detail.events) || gd.incidentHistory[id] || []; }
    if (detail && detail.id !== undefined) {
      const flat = Object.assign({}, detail);
      if (detail.location && detail.location.coordinates) { flat.lng = detail.location.coordinates[0]; flat.lat = detail.location.coordinates[1]; }
      if (typeof flat.received_at === "string") flat.received_at = Date.parse(flat.received_at) / 1000;
      delete flat.events;
      upsertIncident(Object.assign({}, gd.incidents[id] || {}, flat));
    }
    if (gd.selected && gd.selected.kind === "incident" && gd.selected.id === id) renderIncidentPanel(id, detail, events);
  }
  function renderIncidentPanel(id, detail, events) {
    const i = Object.assign({}, gd.incidents[id] || {}, detail || {});
    const phone = detail && detail.caller_phone;
    const canAssign = ["dispatcher", "supervisor", "admin"].includes(gd.user.role);
    const assignments = (detail && detail.assignments) || [];
    let html = '<div data-testid="incident-panel" data-id="' + id + '"><h2>' + prioBadge(i.priority) + " " + esc(i.reference || "#" + id) + "</h2>" +
      '<dl class="kv"><dt>' + t("inc.status") + '</dt><dd data-testid="incident-status">' + stBadge(i.status) + "</dd>" +
      "<dt>" + t("inc.category") + "</dt><dd>" + esc(categoryLabel(i.category)) + "</dd>" +
      "<dt>" + t("inc.address") + "</dt><dd>" + esc(i.address || "—") +
      (i.address_resolved && i.address_resolved !== i.address ? '<div class="sub" data-testid="incident-resolved">' + esc(t("inc.resolved")) + ": " + esc(i.address_resolved) + "</div>" : "") +
      (i.lat !== null && i.lat !== undefined ? precBadge(i.location_precision) : "") +
      (i.lat === null || i.lat === undefined ? ' <span class="badge warn">' + esc(t("inc.unknown")) + "</span>" : "") +
      (OPEN.includes(i.status) && gd.user.role !== "analyst" && gd.user.role !== "national"
        ? ' <button type="button" data-testid="place-on-map" id="place-btn">' + esc(t("inc.place")) + "</button>" : "") + "</dd>" +
      "<dt>" + t("inc.received") + "</dt><dd>" + fmtTime(i.received_at) + "</dd>" +
      (phone ? "<dt>" + t("inc.phone") + '</dt><dd data-testid="incident-phone">' + esc(phone) + "</dd>" : "") +
      (i.description ? "<dt>" + t("inc.description") + "</dt><dd>" + esc(i.description) + "</dd>" : "") + "</dl>";
    if (assignments.length) {
      html += "<h3>" + t("inc.assignments") + '</h3><ul class="list" data-testid="incident-assignments">' + assignments.map((a) => {
        const u = gd.units[a.unit_id];
        const when = (x) => fmtTime(Date.parse(x) / 1000);
        const dlv = [a.sent_at ? t("dlv.sent", { t: when(a.sent_at) }) : t("dlv.unsent"),
          a.delivered_at ? t("dlv.delivered", { t: when(a.delivered_at) }) : "",
          a.acknowledged_at ? t("dlv.acked", { t: when(a.acknowledged_at) }) : t("dlv.unacked")].filter(Boolean).join(" · ");
        return "<li>" + esc(a.call_sign || (u && u.call_sign) || a.unit_id) + " " + stBadge(a.status) + (a.override_reason ? '<div class="sub">' + esc(a.override_reason) + "</div>" : "") +
          '<div class="sub" data-testid="delivery" data-acknowledged="' + (a.acknowledged_at ? "1" : "0") + '">' + esc(dlv) + "</div></li>";
      }).join("") + "</ul>";
    }
    if (canAssign && OPEN.includes(i.status)) {
      html += '<h3>' + t("inc.reco") + '</h3><div id="reco" data-testid="reco">' + renderReco() + "</div>";
    }
    // The actions (close, cancel, merge, notes ...) and the readable timeline: incident.js.
    html += '<div id="incident-actions" data-testid="incident-actions"></div>';
    html += "<h3>" + t("inc.timeline") + '</h3><ul class="timeline" data-testid="incident-timeline">' +
      (gd.incidentUi ? gd.incidentUi.timeline(events, i) : events.slice().reverse().map((e) => "<li>" + fmtTime(typeof e.at === "string" ? Date.parse(e.at) / 1000 : e.at) + " <b>" +
        esc(e.kind) + "</b>" + (e.data && e.data.to ? " " + esc(e.data.to) : "") +
        (e.data && e.data.call_sign ? " · " + esc(e.data.call_sign) : "") + " · " + esc(e.actor) + "</li>").join("")) + "</ul></div>";
    // A live re-draw keeps an open "other crew" box as the dispatcher left it.
    const ov = $("#override-box");
    const keep = ov && !ov.hidden && $('[data-testid="incident-panel"]').dataset.id === String(id)
      ? { unit: $("#override-unit").value, reason: $("#override-reason").value } : null;
    openPanel(html);
    bindRecoHandlers(id);
    if (keep && $("#override-box")) {
      $("#override-box").hidden = false;
      if ([...$("#override-unit").options].some((o) => o.value === keep.unit)) $("#override-unit").value = keep.unit;
      $("#override-reason").value = keep.reason;
    }
    document.dispatchEvent(new CustomEvent("gd:incident-panel", { detail: { id, incident: i, detail, events } }));
    const place = $("#place-btn");
    if (place) place.onclick = () => {
      gd.placing = id;
      gd.map.getContainer().style.cursor = "crosshair";
      place.textContent = t("inc.placehint"); place.disabled = true;
    };
  }
  async function placeIncident(id, lat, lng) {
    gd.placing = null;
    gd.map.getContainer().style.cursor = "";
    try {
      await api("POST", "/api/incidents/" + id + "/location", { lat, lng });
      const inc = gd.incidents[id];
      if (inc) { inc.lat = lat; inc.lng = lng; upsertIncident(inc); scheduleRender(); }
      loadIncidentDetails(id);
    } catch (e) { alert(t("err.generic", { d: e.message })); loadIncidentDetails(id); }
  }
  function recoRows() { return (gd.reco && (gd.reco.ranked || gd.reco.candidates || gd.reco.crews || gd.reco.recommendations)) || []; }
  function crewName(r) { const u = gd.units[r.unit_id]; return r.call_sign || (u && u.call_sign) || "#" + r.unit_id; }
  function renderReco() {
    if (!gd.reco) return '<button type="button" class="primary" data-testid="recommend" id="recommend-btn">' + t("inc.recommend") + "</button>";
    if (gd.reco.error) return '<p class="error">' + esc(t("err.generic", { d: gd.reco.error })) + "</p>";
    const rows = recoRows();
    const off = gd.reco.target_off_road_m;
    const offHint = (off !== null && off !== undefined)
      ? '<p class="error" data-testid="reco-offroad">' + esc(t("inc.offroad", { m: Math.round(off) })) + "</p>" : "";
    if (!rows.length) return offHint + '<p class="muted" data-testid="reco-empty">' + t("inc.noreco") + "</p>";
    const sel = gd.reco.selectedIdx || 0;
    let html = offHint + (gd.reco.straight_line_fallback ? '<p class="hint">' + t("inc.straight") + "</p>" : "") +
      "<table><tr><th>" + t("col.crew") + "</th><th>" + t("col.eta") + "</th><th>" + t("col.dist") + "</th><th>" + t("col.status") + "</th></tr>" +
      rows.map((r, k) => '<tr class="reco' + (k === sel ? " sel" : "") + '" data-testid="reco-row" data-idx="' + k + '" data-unit="' + r.unit_id + '" title="' + esc(r.reason || "") + '"><td>' +
        esc(crewName(r)) + ((gd.units[r.unit_id] || {}).lat != null ? '<div class="sub">' + placeSpan(gd.units[r.unit_id].lat, gd.units[r.unit_id].lng) + "</div>" : "") + (r.off_road_m > 0 ? ' <span class="hint" data-testid="crew-offroad">' + esc(t("inc.crewoffroad", { m: Math.round(r.off_road_m) })) + "</span>" : "") +
        "</td><td>" + fmtEta(r.eta_s) + "</td><td>" + fmtKm(r.distance_m) + "</td><td>" +
        stBadge(r.status || (gd.units[r.unit_id] || {}).status) + "</td></tr>").join("") + "</table>";
    const top = rows[sel];
    html += '<div class="actions"><button type="button" class="primary" data-testid="accept" id="accept-btn">' +
      esc(t("inc.accept", { cs: crewName(top) })) + '</button><button type="button" data-testid="override" id="override-btn">' +
      t("inc.override") + "</button></div>" +
      '<div class="override" id="override-box" hidden><label><span>' + t("inc.override.unit") + '</span><select data-testid="override-unit" id="override-unit">' +
      overrideOptions(rows) + '</select></label><label><span>' + t("inc.override.reason") +
      '</span><input data-testid="override-reason" id="override-reason"></label><button type="button" class="danger" data-testid="override-confirm" id="override-confirm">' +
      t("inc.override.confirm") + '</button></div><p id="assign-result" data-testid="assign-result" role="status"></p>';
    return html;
  }
  function overrideOptions(rows) {
    const seen = new Set();
    const opts = [];
    rows.slice(1).forEach((r) => { seen.add(r.unit_id); opts.push([r.unit_id, crewName(r) + " · " + fmtEta(r.eta_s)]); });
    (gd.reco.excluded || []).forEach((x) => { if (!seen.has(x.unit_id)) { seen.add(x.unit_id); opts.push([x.unit_id, crewName(x) + " · " + (x.reason || "")]); } });
    Object.values(gd.units).filter((u) => u.status === "available" && !seen.has(u.id) && u.id !== (rows[0] || {}).unit_id)
      .forEach((u) => opts.push([u.id, u.call_sign]));
    return opts.map(([id, label]) => '<option value="' + id + '">' + esc(label) + "</option>").join("");
  }
  function bindRecoHandlers(id) {
    const b = $("#recommend-btn");
    if (b) b.onclick = () => recommend(id);
    $$("tr.reco").forEach((tr) => tr.onclick = () => {
      gd.reco.selectedIdx = Number(tr.dataset.idx);
      $("#reco").innerHTML = renderReco(); bindRecoHandlers(id);
      drawRoute(recoRows()[gd.reco.selectedIdx]);
    });
    const acc = $("#accept-btn");
    if (acc) acc.onclick = () => {
      // Every ranked crew is a recommendation for the server: only a crew outside the ranking
      // (chosen in the override box) needs a reason.
      const r = recoRows()[gd.reco.selectedIdx || 0];
      if (r) assign(id, r, null);
    };
    const ov = $("#override-btn");
    if (ov) ov.onclick = () => { $("#override-box").hidden = false; $("#override-reason").focus(); };
    const conf = $("#override-confirm");
    if (conf) conf.onclick = () => {
      const reason = $("#override-reason").value.trim();
      const unitId = Number($("#override-unit").value);
      const ranked = recoRows().find((x) => x.unit_id === unitId);
      if (!reason && !ranked) { $("#override-reason").focus(); $("#override-reason").style.borderColor = "#b3261e"; return; }
      assign(id, ranked || { unit_id: unitId }, reason || null);
    };
  }
  async function recommend(id) {
    try {
      gd.reco = await api("POST", "/api/incidents/" + id + "/recommend", {});
      gd.reco.selectedIdx = 0;
    } catch (e) { gd.reco = { error: e.message }; }
    if (!gd.selected || gd.selected.id !== id) return;
    const box = $("#reco");
    if (box) { box.innerHTML = renderReco(); bindRecoHandlers(id); }
    const rows = recoRows();
    if (rows.length) drawRoute(rows[0]);
  }
  async function assign(id, r, reason) {
    const body = { unit_id: r.unit_id };
    if (reason) body.override_reason = reason;
    const out = $("#assign-result");
    try {
      await api("POST", "/api/incidents/" + id + "/assignments", body);
      if (out) out.textContent = t("inc.assigned", { cs: crewName(r) });
      gd.reco = null;
      setTimeout(() => loadIncidentDetails(id), 300);
    } catch (e) {
      if (out) { out.textContent = t("err.generic", { d: e.message }); out.className = "error"; }
    }
  }

  // --- new call --------------------------------------------------------------------------------
  async function loadCategories() {
    let cats = null;
    try {
      const data = await api("GET", "/api/incidents/categories");
      cats = Array.isArray(data) ? data : (data && (data.categories || data.items)) || null;
    } catch (e) { cats = null; }
    const label = (c) => (c.label && typeof c.label === "object" ? c.label[LANG] || c.label.en : c.label) || c.name || c.code;
    gd.categories = (cats && cats.length ? cats : DEFAULT_CATEGORIES).map((c) =>
      typeof c === "string" ? { code: c, label: c } : { code: c.code || c.name || c.id, label: label(c), priority: c.priority });
    // The preselected category is "other" (the server's own default), never the first of the
    // list (armed threat, priority 1); "selected" also makes a form reset return to it.
    const sel = $('#newcall [name="category"]');
    const keep = sel.value;
    const fallback = gd.categories.some((c) => c.code === "other") ? "other" : "";
    sel.innerHTML = (fallback ? "" : '<option value="" selected>—</option>') + gd.categories.map((c) =>
      '<option value="' + esc(c.code) + '"' + (c.code === fallback ? " selected" : "") + ">" + esc(c.label) +
      (c.priority ? " (" + c.priority + ")" : "") + "</option>").join("");
    if (keep && gd.categories.some((c) => c.code === keep)) sel.value = keep;
  }
  function setCallPoint(lat, lng, label) {
    gd.callPoint = { lat, lng };
    if (gd.callMarker) gd.callMarker.setLatLng([lat, lng]);
    else {
      gd.callMarker = L.marker([lat, lng], { draggable: true, title: t("map.newcall") }).addTo(gd.map);
      gd.callMarker.on("dragend", () => { const p = gd.callMarker.getLatLng(); setCallPoint(p.lat, p.lng); });
    }
    const show = () => {
      if (gd.callHit || !gd.callPoint || gd.callPoint.lat !== lat || gd.callPoint.lng !== lng) return;
      const name = placeName(lat, lng);
      $("#call-where").textContent = t("call.at", { p: (name ? name + " · " : "") + lat.toFixed(5) + ", " + lng.toFixed(5) });
    };
    $("#call-where").textContent = t("call.at", { p: lat.toFixed(5) + ", " + lng.toFixed(5) });
    $("#call-where").dataset.lat = lat; $("#call-where").dataset.lng = lng;
    gd.callHit = null;
    placeName(lat, lng, show); show();
    if (label) $('#newcall [name="address"]').value = label;
  }
  function onMapClick(ev) {
    if (gd.placing) placeIncident(gd.placing, ev.latlng.lat, ev.latlng.lng);
    else if (!$("#tab-newcall").hidden) { setCallPoint(ev.latlng.lat, ev.latlng.lng); document.dispatchEvent(new CustomEvent("gd:call-point")); }
  }
  // One key per call being typed: a retry or a double click sends the same key, so the server
  // registers the call once. A new key only after the call was registered.
  function newKey() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);  // (crypto.randomUUID needs a secure context; this does not)
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  // Address search: suggestions as the call-taker types (debounced), arrow keys and Enter to
  // pick one, each with its precision ("street only" in orange: not a house).
  function precBadge(p) {
    if (!p) return "";
    const cls = (p === "house" || p === "point") ? "ok" : (p === "interpolated" || p === "intersection") ? "" : "warn";
    return ' <span class="badge ' + cls + '" data-testid="precision" data-precision="' + esc(p) + '">' + esc(t("prec." + p)) + "</span>";
  }
  function pickHit(h) {
    setCallPoint(h.lat, h.lng);
    gd.callHit = h;
    $("#call-where").innerHTML = esc(t("call.at", { p: h.resolved || h.label })) + precBadge(h.precision) +
      (h.note ? '<div class="sub">' + esc(h.note) + "</div>" : "");
    gd.map.setView([h.lat, h.lng], Math.max(gd.map.getZoom(), 17));
    $("#address-hits").innerHTML = "";
    gd.hits = [];
  }
  function moveHit(step) {
    const items = $$("li[data-k]", $("#address-hits"));
    if (!items.length) return false;
    gd.hitIndex = ((gd.hitIndex === undefined ? -1 : gd.hitIndex) + step + items.length) % items.length;
    items.forEach((li, k) => li.classList.toggle("active", k === gd.hitIndex));
    return true;
  }
  async function searchAddress(asYouType) {
    const q = $('#newcall [name="address"]').value.trim();
    const ul = $("#address-hits");
    if (q.length < 2) { ul.innerHTML = ""; gd.hits = []; return; }
    const c = gd.map.getCenter();
    const seq = (gd.searchSeq = (gd.searchSeq || 0) + 1);
    try {
      const hits = await api("GET", "/api/geocode/search?" + new URLSearchParams({ q, lat: c.lat, lng: c.lng, limit: 6 }));
      if (seq !== gd.searchSeq) return;  // a newer keystroke's answer wins
      gd.hits = hits; gd.hitIndex = undefined;
      ul.innerHTML = hits.length ? hits.map((h, k) => '<li data-testid="address-hit" data-k="' + k + '">' + esc(h.resolved || h.label) +
        precBadge(h.precision) + (h.note ? '<div class="sub">' + esc(h.note) + "</div>" : "") + "</li>").join("")
        : '<li class="muted">' + t("call.nohits") + "</li>";
      $$("li[data-k]", ul).forEach((li) => li.onmousedown = (e) => { e.preventDefault(); pickHit(hits[Number(li.dataset.k)]); });
      if (!asYouType && hits.length === 1) pickHit(hits[0]);
    } catch (e) { if (seq === gd.searchSeq) ul.innerHTML = '<li class="error">' + esc(e.message) + "</li>"; }
  }
  function addressKey(e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") { if (moveHit(e.key === "ArrowDown" ? 1 : -1)) e.preventDefault(); }
    else if (e.key === "Enter") {
      e.preventDefault();
      if (gd.hits && gd.hits.length && gd.hitIndex !== undefined) pickHit(gd.hits[gd.hitIndex]);
      else searchAddress(false);
    } else if (e.key === "Escape") { $("#address-hits").innerHTML = ""; gd.hits = []; }
  }
  function addressTyped() {
    clearTimeout(gd.typeTimer);
    gd.typeTimer = setTimeout(() => searchAddress(true), 250);
  }
  async function submitCall(ev) {
    ev.preventDefault();
    const f = ev.target;
    const out = $("#call-result");
    out.className = "";
    const submit = f.querySelector('[type="submit"]');
    if (submit.disabled) return;  // still waiting for the previous press
    // A typed address without a point is resolved by the intake service itself; a call with
    // only a phone number or a description is registered with its place unknown.
    if (!gd.callPoint && !f.address.value.trim() && !f.caller_phone.value.trim() && !f.description.value.trim()) {
      out.textContent = t("call.needsomething"); out.className = "error"; return;
    }
    gd.callKey = gd.callKey || newKey();
    const body = {
      idempotency_key: gd.callKey,
      lat: gd.callPoint ? gd.callPoint.lat : null, lng: gd.callPoint ? gd.callPoint.lng : null, category: f.category.value,
      caller_phone: f.caller_phone.value.trim() || null, address: f.address.value.trim() || null,
      description: f.description.value.trim(), caller_lang: f.caller_lang.value,
    };
    if (!gd.callPoint && gd.map) { const c = gd.map.getCenter(); body.near_lat = c.lat; body.near_lng = c.lng; }
    if (f.priority.value) body.priority = Number(f.priority.value);
    if (!gd.callPoint) { delete body.lat; delete body.lng; }
    submit.disabled = true;
    out.textContent = t("call.sending");
    try {
      const inc = await api("POST", "/api/incidents", body);
      gd.callKey = null;
      out.textContent = t("call.done", { ref: inc.reference || "#" + inc.id }) +
        (inc.warnings && inc.warnings.length ? " · " + t("call.warnings", { w: inc.warnings.join("; ") }) : "");
      if (inc.warnings && inc.warnings.length) out.className = "warn";
      out.dataset.id = inc.id;
      f.reset();
      gd.callPoint = null; gd.callHit = null;
      if (gd.callMarker) { gd.map.removeLayer(gd.callMarker); gd.callMarker = null; }
      $("#call-where").textContent = t("call.clickmap");
      if (inc.id !== undefined) {
        const flat = Object.assign({}, inc);
        if (inc.location && inc.location.coordinates) { flat.lng = inc.location.coordinates[0]; flat.lat = inc.location.coordinates[1]; }
        if (flat.lat === undefined && body.lat !== undefined) { flat.lat = body.lat; flat.lng = body.lng; }
        if (typeof flat.received_at === "string") flat.received_at = Date.parse(flat.received_at) / 1000;
        upsertIncident(flat); scheduleRender();
        document.dispatchEvent(new CustomEvent("gd:incident-registered", { detail: flat }));
        if (["dispatcher", "supervisor", "admin"].includes(gd.user.role)) { switchTab("queue"); showIncident(inc.id); }
      }
    } catch (e) {
      // The form keeps what was typed and the same key: pressing again cannot register twice.
      out.textContent = t("err.generic", { d: e.message }); out.className = "error";
    } finally {
      submit.disabled = false;
    }
  }

  // --- wiring ----------------------------------------------------------------------------------
  function switchTab(name) {
    $$(".tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
    $$(".tabs button").forEach((b) => { $("#tab-" + b.dataset.tab).hidden = b.dataset.tab !== name; });
    if (gd.map) gd.map.getContainer().style.cursor = name === "newcall" ? "crosshair" : "";
  }
  function toggleLang() {
    LANG = LANG === "uk" ? "en" : "uk";
    localStorage.setItem("gd.lang", LANG);
    applyI18n();
    if (gd.map) { renderLegend(); renderQueue(); renderCrews(); if (gd.categories) loadCategories().then(renderQueue); setConn(($("#conn").dataset.state) || "connecting");
      if (gd.selected && gd.selected.kind === "incident") loadIncidentDetails(gd.selected.id); else refreshPanel(); }
    document.dispatchEvent(new CustomEvent("gd:lang"));
  }
  // What other console scripts (calls.js) use of this one.
  gd.ui = { api, esc, fmtTime, fmtEta, setCallPoint, switchTab, showIncident, upsertIncident, scheduleRender,
    loadIncidentDetails, categoryLabel, stBadge, prioBadge, renderQueue, showCrew };
  document.addEventListener("DOMContentLoaded", () => {
    applyI18n();
    $("#login-form").addEventListener("submit", doLogin);
    $("#logout").onclick = logout;
    $$(".lang-toggle").forEach((b) => b.onclick = toggleLang);
    $$(".tabs button").forEach((b) => b.onclick = () => switchTab(b.dataset.tab));
    $("#panel-close").onclick = closePanel;
    $("#crew-filter").oninput = renderCrews;
    $("#queue").onclick = $("#active").onclick = (ev) => { const li = ev.target.closest("li[data-id]"); if (li) showIncident(Number(li.dataset.id)); };
    $("#crews").onclick = (ev) => { const li = ev.target.closest("li[data-id]"); if (li) { const u = gd.units[li.dataset.id]; showCrew(Number(li.dataset.id)); if (u && u.lat !== null) gd.map.panTo([u.lat, u.lng]); } };
    $("#address-search").onclick = () => searchAddress(false);
    $('#newcall [name="address"]').addEventListener("keydown", addressKey);
    $('#newcall [name="address"]').addEventListener("input", addressTyped);
    $("#newcall").addEventListener("submit", submitCall);
    if (gd.token) start().catch(() => logout());
  });
})();
