/* geodispatch crew terminal: the crew's own assignment, status presses and GPS fixes.

   Every press and fix goes into an IndexedDB outbox first (with the device time and, for a press,
   an idempotency key) and leaves it only when the server answered; the outbox is sent one item at
   a time in the order it was filled, so after an outage everything arrives once and in order.
   Fixes go to the tracker ingest (/api/ingest/osmand), like every other tracker.

   The screen comes pushed over GET /api/crew/stream (stream.js); GET /api/crew/assignment is
   polled every 0.5 s only while the stream is down. A new assignment sounds (the #alert-sound
   audio element) and vibrates, again every ALERT_REPEAT_MS, until the crew acknowledges it. */
"use strict";
(function () {
  const gd = window.gdCrew = { creds: null, assignment: null, fix: null, map: null, layers: null,
    queued: [], flushing: false, seenAssignment: null, routeFor: null, lastRoute: 0, online: true, sent: [] };
  const $ = (id) => document.getElementById(id);
  const FIX_MIN_INTERVAL_MS = 3000;
  const POLL_MS = 500;
  const ALERT_REPEAT_MS = 5000;
  gd.alerts = [];  // what each alert did (vibrated, sound played or refused), newest last
  let lastFixQueued = 0;

  // ---- outbox (IndexedDB) ---------------------------------------------------------------------
  let dbp = null;
  function db() {
    dbp = dbp || new Promise((resolve, reject) => {
      const req = indexedDB.open("gd-crew", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return dbp;
  }
  async function store(mode, fn) {
    const d = await db();
    return new Promise((resolve, reject) => {
      const tx = d.transaction("outbox", mode);
      const out = fn(tx.objectStore("outbox"));
      tx.oncomplete = () => resolve(out && out.result);
      tx.onerror = () => reject(tx.error);
    });
  }
  // Each item names the unit it was pressed or fixed for: after a sign-out (an officer signed
  // off, another crew signing in on the same phone) it is never sent as another unit's.
  const enqueue = (item) => store("readwrite", (s) => s.add({ ...item, unit: gd.creds && gd.creds.device }))
    .then(refreshQueue).then(flush);
  const allQueued = () => store("readonly", (s) => s.getAll());
  const dequeue = (seq) => store("readwrite", (s) => s.delete(seq));

  async function refreshQueue() {
    gd.queued = (await allQueued()) || [];
    $("q-count").textContent = String(gd.queued.length);
    const ul = $("q-list");
    ul.replaceChildren(...gd.queued.map((it) => {
      const li = document.createElement("li");
      li.dataset.kind = it.kind;
      li.textContent = (it.kind === "fix" ? t("q.fix", { lat: it.lat.toFixed(5), lng: it.lng.toFixed(5) })
        : t("q.status", { s: t("st." + it.body.status) })) + " · " + new Date(it.at).toLocaleTimeString();
      return li;
    }));
  }

  async function send(it) {
    const c = gd.creds;
    if (it.kind === "fix") {
      const q = new URLSearchParams({ id: c.device, lat: it.lat.toFixed(7), lon: it.lng.toFixed(7), timestamp: it.at });
      if (it.acc != null) q.set("accuracy", String(it.acc));
      if (it.speed != null) q.set("speed", String(it.speed * 1.943844));  // OsmAnd speed is knots
      if (it.heading != null) q.set("bearing", String(it.heading));
      if (c.shift) {  // an officer's shift: the same ingest, authenticated by the shift token
        q.delete("id");
        return fetch("/api/crew/position?" + q, { method: "POST", headers: headers() });
      }
      return fetch("/api/ingest/osmand?" + q, { method: "POST", headers: { "X-Device-Token": c.token } });
    }
    return fetch("/api/crew/status", { method: "POST", headers: { ...headers(), "Content-Type": "application/json" },
      body: JSON.stringify(it.body) });
  }

  async function flush() {
    if (gd.flushing || !gd.creds) return;
    gd.flushing = true;
    try {
      for (;;) {
        const items = await allQueued();
        if (!items || !items.length) break;
        const it = items[0];
        if (it.unit && it.unit !== gd.creds.device) {  // queued for another unit: not ours to send
          gd.sent.push({ kind: it.kind, status: it.body && it.body.status, code: 0, result: "other_unit" });
          await dequeue(it.seq);
          await refreshQueue();
          continue;
        }
        let r;
        try { r = await send(it); } catch (e) { setConn("lost"); break; }
        if (r.status >= 500 || r.status === 401 || r.status === 429) { setConn(r.status === 401 ? "live" : "lost"); break; }
        setConn("live");
        let detail = "";
        try { const j = await r.json(); detail = (j && (j.result || j.detail || j.reason)) || ""; } catch (e) { /* empty body */ }
        gd.sent.push({ kind: it.kind, status: it.body && it.body.status, code: r.status, result: detail });
        if (it.kind === "status") {
          const s = t("st." + it.body.status);
          $("last-result").textContent = r.ok ? t("res." + (detail || "applied"), { s })
            : t("res.refused", { s, d: typeof detail === "string" ? detail : r.status });
        }
        await dequeue(it.seq);
        await refreshQueue();
      }
    } finally {
      gd.flushing = false;
    }
    if (gd.queued.length) setTimeout(flush, 2000);
  }

  // ---- server -----------------------------------------------------------------------------------
  function headers() {
    if (gd.creds.shift) return { "X-Crew-Shift": gd.creds.shift };
    return { "X-Device-Id": gd.creds.device, "X-Device-Token": gd.creds.token };
  }
  gd.headers = headers;
  function setConn(state) {
    const el = $("conn");
    el.dataset.state = state;
    el.textContent = t("conn." + state);
  }

  // The push channel; polling stands in only while it is down.
  function startPolling() {
    if (gd.pollTimer || !gd.creds) return;
    $("conn").dataset.channel = "poll";
    poll();
    gd.pollTimer = setInterval(poll, POLL_MS);
  }
  function stopPolling() {
    clearInterval(gd.pollTimer);
    gd.pollTimer = null;
  }
  function startStream() {
    if (!window.gdStream) { startPolling(); return; }
    gd.stream = window.gdStream({
      headers,
      onScreen: (view) => { gd.pushed = (gd.pushed || 0) + 1; setConn("live"); render(view); },
      onUp: () => { stopPolling(); $("conn").dataset.channel = "stream"; setConn("live"); },
      onDown: startPolling,
      onRevoked: () => logout(t(gd.creds && gd.creds.shift ? "login.signedoff" : "login.revoked")),
    });
  }

  async function poll() {
    if (!gd.creds) return;
    try {
      const r = await fetch("/api/crew/assignment", { headers: headers(), cache: "no-store" });
      if (r.status === 401) { logout(t(gd.creds.shift ? "login.signedoff" : "login.failed")); return; }
      if (!r.ok) throw new Error(String(r.status));
      setConn("live");
      render(await r.json());
    } catch (e) {
      setConn("lost");
    }
  }

  // A new assignment: sound and vibration, repeated until the crew acknowledges it.
  function alertCrew(assignmentId) {
    const rec = { assignment_id: assignmentId, at: Date.now(), vibrated: false, sound: "none" };
    gd.alerts.push(rec);
    try { rec.vibrated = !!(navigator.vibrate && navigator.vibrate([300, 150, 300, 150, 300])); } catch (e) { /* not supported */ }
    const audio = $("alert-sound");
    if (audio && audio.play) {
      try {
        audio.currentTime = 0;
        rec.sound = "requested";
        const p = audio.play();
        if (p && p.then) p.then(() => { rec.sound = "played"; }, (e) => { rec.sound = "refused:" + (e && e.name); });
      } catch (e) { rec.sound = "refused"; }
    }
  }
  function startAlerting(assignmentId) {
    stopAlerting();
    gd.alerting = assignmentId;
    alertCrew(assignmentId);
    gd.alertTimer = setInterval(() => alertCrew(assignmentId), ALERT_REPEAT_MS);
  }
  function stopAlerting() {
    if (gd.alerting == null) return;
    clearInterval(gd.alertTimer);
    gd.alertTimer = null;
    gd.alerting = null;
    try { if (navigator.vibrate) navigator.vibrate(0); } catch (e) { /* not supported */ }
    const audio = $("alert-sound");
    if (audio && audio.pause) audio.pause();
  }

  // A status as a word (the buttons say what to do: "Acknowledge"; a status what is: "Acknowledged").
  function statusLabel(s) { const k = "status." + s; const w = t(k); return w === k ? t("st." + s) : w; }

  function render(view) {
    const u = view.unit, a = view.assignment;
    $("callsign").textContent = u.call_sign;
    $("unit-status").textContent = statusLabel(u.status);
    $("unit-status").dataset.status = u.status;
    gd.unitStatus = u.status;
    document.querySelectorAll("[data-status]").forEach((b) => {
      b.classList.toggle("current", b.dataset.status === u.status);
    });
    gd.assignment = a;
    if (gd.alerting != null && (!a || a.id !== gd.alerting || a.acknowledged_at)) stopAlerting();
    $("none").hidden = !!a;
    $("assignment").hidden = !a;
    $("assignment").dataset.id = a ? String(a.id) : "";
    const ack = document.querySelector("[data-status=acknowledged]");
    ack.disabled = !a || !!a.acknowledged_at || gd.queued.some((q) => q.body && q.body.status === "acknowledged" && q.body.assignment_id === a.id);
    if (!a) { gd.routeFor = null; return; }
    const inc = a.incident;
    $("a-ref").textContent = inc.reference;
    $("a-prio").textContent = "P" + inc.priority;
    $("a-cat").textContent = inc.category;
    $("a-addr").textContent = inc.address || t("asg.noaddress");
    $("a-notes").textContent = inc.notes || t("asg.nonotes");
    $("a-crews").replaceChildren(...a.crews.map((c) => {
      const li = document.createElement("li");
      li.textContent = c.call_sign + " · " + statusLabel(c.status) + (c.is_lead ? " · " + t("asg.lead") : "") + (c.self ? " (" + t("asg.you") + ")" : "");
      return li;
    }));
    $("new-banner").hidden = !!a.acknowledged_at;
    if (gd.seenAssignment !== a.id) {
      gd.seenAssignment = a.id;
      if (!a.acknowledged_at) startAlerting(a.id);
      if (!a.delivered_at) queueStatus("delivered", a.id, "dlv-" + a.id);
      gd.routeFor = null;
    }
    drawMap(inc);
    maybeRoute();
  }

  function drawMap(inc) {
    if (!window.L || inc.lat == null) return;
    if (!gd.map) {
      gd.map = L.map("map", { zoomControl: true, attributionControl: true });
      const raster = () => { if (gd.tileUrl) L.tileLayer(gd.tileUrl, { maxZoom: 19, attribution: gd.tileAttribution }).addTo(gd.map); };
      if (window.gdBaseMap) window.gdBaseMap(gd.map, { fallback: raster }); else raster();  // our vector tiles (street names) first
      gd.layers = L.layerGroup().addTo(gd.map);
      gd.map.setView([inc.lat, inc.lng], 14);
    }
    gd.incidentLatLng = [inc.lat, inc.lng];
  }

  async function maybeRoute() {
    const a = gd.assignment;
    if (!a || a.incident.lat == null) return;
    if (!gd.fix) { $("a-route").textContent = t("route.nofix"); return; }
    if (gd.routeFor === a.id && Date.now() - gd.lastRoute < 15000) return;
    gd.routeFor = a.id; gd.lastRoute = Date.now();
    try {
      const q = new URLSearchParams({ lat: gd.fix.lat, lng: gd.fix.lng });
      const r = await fetch("/api/crew/route?" + q, { headers: headers() });
      if (!r.ok) { $("a-route").textContent = t("route.none"); return; }
      const route = await r.json();
      const vars = { min: Math.max(1, Math.round(route.eta_s / 60)), km: (route.distance_m / 1000).toFixed(1) };
      $("a-route").textContent = t(route.method === "road" ? "route.eta" : "route.straight", vars);
      $("a-route").dataset.method = route.method;
      $("a-route").dataset.etaS = String(Math.round(route.eta_s));
      if (gd.map) {
        gd.layers.clearLayers();
        const line = L.polyline(route.geometry.coordinates.map(([x, y]) => [y, x]), { color: "#1f5fbf", weight: 6 }).addTo(gd.layers);
        L.circleMarker([gd.fix.lat, gd.fix.lng], { radius: 8, color: "#2e7d32", fillOpacity: 1 }).addTo(gd.layers);
        L.circleMarker(gd.incidentLatLng, { radius: 9, color: "#b3261e", fillOpacity: 1 }).addTo(gd.layers);
        gd.map.invalidateSize();  // the card may have been laid out since the map was made
        gd.map.fitBounds(line.getBounds(), { padding: [20, 20] });
      }
    } catch (e) {
      gd.routeFor = null;  // offline: try again with the next fix
    }
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function queueStatus(status, assignmentId, key) {
    const body = { status, t: new Date().toISOString(), key: key || uuid() };
    if (assignmentId) body.assignment_id = assignmentId;
    return enqueue({ kind: "status", at: body.t, body });
  }

  function press(status) {
    const a = gd.assignment;
    if (status === "acknowledged") {
      if (!a) return;
      document.querySelector("[data-status=acknowledged]").disabled = true;
      $("new-banner").hidden = true;
      stopAlerting();
      return queueStatus(status, a.id);
    }
    return queueStatus(status, null);
  }

  // ---- GPS --------------------------------------------------------------------------------------
  function onFix(pos) {
    const c = pos.coords;
    gd.fix = { lat: c.latitude, lng: c.longitude };
    $("gps").textContent = t("gps.on", { lat: c.latitude.toFixed(5), lng: c.longitude.toFixed(5), acc: Math.round(c.accuracy || 0) });
    const now = Date.now();
    const moved = !gd.lastQueuedFix || Math.abs(gd.lastQueuedFix.lat - c.latitude) + Math.abs(gd.lastQueuedFix.lng - c.longitude) > 1e-6;
    if (moved || now - lastFixQueued >= FIX_MIN_INTERVAL_MS) {
      lastFixQueued = now;
      gd.lastQueuedFix = { lat: c.latitude, lng: c.longitude };
      enqueue({ kind: "fix", at: new Date(pos.timestamp || now).toISOString(), lat: c.latitude, lng: c.longitude,
        acc: c.accuracy != null ? c.accuracy : null, speed: c.speed != null && c.speed >= 0 ? c.speed : null,
        heading: c.heading != null && !Number.isNaN(c.heading) ? c.heading : null });
    }
    maybeRoute();
  }
  function startGps() {
    if (!navigator.geolocation) { $("gps").textContent = t("gps.off"); return; }
    gd.watch = navigator.geolocation.watchPosition(onFix, () => { $("gps").textContent = t("gps.off"); },
      { enableHighAccuracy: true, maximumAge: 0, timeout: 30000 });
  }

  // ---- sign-in ----------------------------------------------------------------------------------
  async function login(device, token) {
    let r;
    try {
      r = await fetch("/api/crew/session", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ device_id: device, token }) });
    } catch (e) { $("login-error").textContent = t("login.offline"); return; }
    if (!r.ok) { $("login-error").textContent = t("login.failed"); return; }
    begin({ device, token }, await r.json());
  }
  // Signed in (device credentials, or an officer's shift: officer.js): remember and start.
  function begin(creds, j) {
    gd.creds = creds;
    gd.tileUrl = j.tile_url; gd.tileAttribution = j.tile_attribution;
    localStorage.setItem("gd.crew.creds", JSON.stringify({ ...gd.creds, tile_url: j.tile_url, tile_attribution: j.tile_attribution }));
    start();
  }
  gd.begin = begin;
  function start() {
    $("login").hidden = true; $("main").hidden = false;
    if (window.gdOfficer) window.gdOfficer.started(gd.creds);
    setConn("connecting");
    refreshQueue().then(flush);
    startStream();
    gd.flushTimer = setInterval(flush, 2000);
    startGps();
  }
  function logout(msg) {
    if (window.gdOfficer) window.gdOfficer.leaving(gd.creds, msg);
    localStorage.removeItem("gd.crew.creds");
    gd.creds = null;
    if (gd.stream) { gd.stream.stop(); gd.stream = null; }
    stopPolling(); stopAlerting(); clearInterval(gd.flushTimer);
    gd.seenAssignment = null;
    if (gd.watch != null) navigator.geolocation.clearWatch(gd.watch);
    $("main").hidden = true; $("login").hidden = false;
    $("login-error").textContent = msg || "";
  }

  // ---- wiring -----------------------------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const b = e.target.closest("button");
    if (!b) return;
    if (b.dataset.status) press(b.dataset.status);
    else if (b.dataset.action === "lang") {
      window.lang = window.lang === "uk" ? "en" : "uk";
      localStorage.setItem("gd.crew.lang", window.lang);
      applyI18n(); refreshQueue(); if (gd.assignment !== null && gd.creds) poll();
    } else if (b.dataset.action === "night") {
      document.body.classList.toggle("night");
      localStorage.setItem("gd.crew.night", document.body.classList.contains("night") ? "1" : "0");
    } else if (b.dataset.action === "logout") logout();
  });
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("device").value.trim(), $("token").value); });
  window.addEventListener("online", flush);

  const night = localStorage.getItem("gd.crew.night");
  if (night === "1" || (night === null && window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches)) {
    document.body.classList.add("night");
  }
  applyI18n();
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/crew/sw.js", { scope: "/crew" }).catch(() => {});
  const saved = localStorage.getItem("gd.crew.creds");
  if (saved) {
    try {
      const s = JSON.parse(saved);
      gd.creds = s.shift ? { device: s.device, shift: s.shift, officer: s.officer } : { device: s.device, token: s.token };
      gd.tileUrl = s.tile_url; gd.tileAttribution = s.tile_attribution;
      start();
    } catch (e) { localStorage.removeItem("gd.crew.creds"); }
  }
})();
