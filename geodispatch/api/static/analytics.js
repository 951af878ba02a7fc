/* The analyst's page of the console: a heatmap of one response interval per H3 cell (metric,
 * resolution, category, priority, period) on the console's map (and so on its base map), the
 * interval by hour of day and day of week (inline SVG), the per-zone table, CSV/GeoJSON exports
 * of each, and the commander's report of a zone or the whole region. Figures come from
 * /api/analytics/cells.geojson and /api/analytics/summary; nothing is computed here but colours.
 * Analysts land on it; supervisors, admins and the national centre reach it from its tab. */
"use strict";
(function () {
  Object.assign(I18N.uk, {
    "tab.analytics": "Аналітика", "an.interval": "Інтервал", "an.stat": "Показник", "an.res": "Розмір комірки (H3)",
    "an.category": "Категорія", "an.priority": "Пріоритет", "an.all": "усі", "an.from": "Від", "an.to": "До (включно)",
    "an.show": "Показати", "an.loading": "Завантаження…", "an.none": "Немає подій за цими умовами",
    "an.cells": "{n} комірок · {c} подій", "an.hourly": "За годиною доби", "an.weekly": "За днем тижня",
    "an.zones": "За зонами", "an.export.cells.csv": "Комірки CSV", "an.export.cells.geojson": "Комірки GeoJSON",
    "an.export.charts": "Графіки CSV", "an.export.zones": "Зони CSV", "an.report": "Звіт для командира",
    "an.report.zone": "Звіт", "an.report.all": "Звіт по регіону", "an.nozone": "без зони",
    "an.int.total_response_s": "Загальний час реагування", "an.int.call_processing_s": "Обробка виклику",
    "an.int.turnout_s": "Час виїзду", "an.int.travel_s": "Час у дорозі",
    "an.stat.p90_s": "90-й процентиль", "an.stat.median_s": "Медіана", "an.stat.within_target": "Частка в межах нормативу",
    "an.stat.count": "Кількість подій", "an.few": "менше {n} відповідей", "an.col.zone": "Зона",
    "an.col.count": "Подій", "an.col.median": "Медіана", "an.col.p90": "P90", "an.col.within": "У нормі",
    "an.dow": "Пн,Вт,Ср,Чт,Пт,Сб,Нд", "an.min": "хв", "an.error": "Помилка: {d}",
  });
  Object.assign(I18N.en, {
    "tab.analytics": "Analytics", "an.interval": "Interval", "an.stat": "Figure", "an.res": "Cell size (H3)",
    "an.category": "Category", "an.priority": "Priority", "an.all": "all", "an.from": "From", "an.to": "To (inclusive)",
    "an.show": "Show", "an.loading": "Loading…", "an.none": "No incidents match",
    "an.cells": "{n} cells · {c} incidents", "an.hourly": "By hour of day", "an.weekly": "By day of week",
    "an.zones": "By zone", "an.export.cells.csv": "Cells CSV", "an.export.cells.geojson": "Cells GeoJSON",
    "an.export.charts": "Charts CSV", "an.export.zones": "Zones CSV", "an.report": "Commander's report",
    "an.report.zone": "Report", "an.report.all": "Region report", "an.nozone": "no zone",
    "an.int.total_response_s": "Total response", "an.int.call_processing_s": "Call processing",
    "an.int.turnout_s": "Turnout", "an.int.travel_s": "Travel",
    "an.stat.p90_s": "90th percentile", "an.stat.median_s": "Median", "an.stat.within_target": "Share within target",
    "an.stat.count": "Incidents", "an.few": "fewer than {n} responses", "an.col.zone": "Zone",
    "an.col.count": "Incidents", "an.col.median": "Median", "an.col.p90": "P90", "an.col.within": "Within",
    "an.dow": "Mon,Tue,Wed,Thu,Fri,Sat,Sun", "an.min": "min", "an.error": "Error: {d}",
  });

  const READERS = ["analyst", "supervisor", "admin", "national"];
  const INTERVALS = ["total_response_s", "call_processing_s", "turnout_s", "travel_s"];
  const STATS = ["p90_s", "median_s", "within_target", "count"];
  const MIN_N = 5;  // as the folium heatmap: fewer responses give no meaningful percentile
  const YLORRD = ["#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026"];
  const NO_DATA = "#bdbdbd";
  const A = (window.gdAnalytics = { layer: null, cells: null, hours: [], dows: [], zones: [], zoneNames: {}, fitted: false, seq: 0 });
  const $ = (sel, root) => (root || document).querySelector(sel);
  const ui = () => window.gd.ui;
  const esc = (s) => ui().esc(s);
  const mmss = (s) => (s === null || s === undefined) ? "–" : (() => { const r = Math.round(s); return Math.floor(r / 60) + ":" + String(r % 60).padStart(2, "0"); })();
  const pct = (x) => (x === null || x === undefined) ? "–" : (100 * x).toFixed(1) + " %";

  // --- the tab ---------------------------------------------------------------------------------
  function build() {
    if ($("#tab-analytics")) return;
    const btn = document.createElement("button");
    btn.type = "button"; btn.dataset.tab = "analytics"; btn.dataset.testid = "tab-analytics";
    btn.setAttribute("data-testid", "tab-analytics");
    btn.innerHTML = '<span data-i18n="tab.analytics"></span>';
    btn.onclick = () => ui().switchTab("analytics");
    $(".tabs").appendChild(btn);
    const sec = document.createElement("section");
    sec.id = "tab-analytics"; sec.className = "tab analytics"; sec.hidden = true;
    const opt = (v, key) => '<option value="' + v + '" data-i18n="' + key + '"></option>';
    sec.innerHTML =
      '<form id="an-form" data-testid="an-form" class="an-form">' +
      '<label><span data-i18n="an.interval"></span><select name="interval" data-testid="an-interval">' +
        INTERVALS.map((i) => opt(i, "an.int." + i)).join("") + "</select></label>" +
      '<label><span data-i18n="an.stat"></span><select name="stat" data-testid="an-stat">' +
        STATS.map((s) => opt(s, "an.stat." + s)).join("") + "</select></label>" +
      '<label><span data-i18n="an.res"></span><select name="res" data-testid="an-res">' +
        '<option value="7">7 (~5 km²)</option><option value="8" selected>8 (~0.7 km²)</option><option value="9">9 (~0.1 km²)</option></select></label>' +
      '<label><span data-i18n="an.category"></span><select name="category" data-testid="an-category">' + opt("", "an.all") + "</select></label>" +
      '<label><span data-i18n="an.priority"></span><select name="priority" data-testid="an-priority">' + opt("", "an.all") +
        [1, 2, 3, 4].map((p) => '<option value="' + p + '">' + p + "</option>").join("") + "</select></label>" +
      '<label><span data-i18n="an.from"></span><input type="date" name="from" data-testid="an-from"></label>' +
      '<label><span data-i18n="an.to"></span><input type="date" name="to" data-testid="an-to"></label>' +
      '<button type="submit" class="primary" data-testid="an-show" data-i18n="an.show"></button>' +
      "</form>" +
      '<p id="an-status" data-testid="an-status" role="status"></p>' +
      '<div id="an-legend" class="an-legend" data-testid="an-legend"></div>' +
      '<div class="actions an-exports">' +
        '<button type="button" data-export="cells-csv" data-testid="an-export-cells-csv" data-i18n="an.export.cells.csv"></button>' +
        '<button type="button" data-export="cells-geojson" data-testid="an-export-cells-geojson" data-i18n="an.export.cells.geojson"></button>' +
        '<button type="button" data-report="" data-testid="an-report" data-i18n="an.report.all"></button></div>' +
      '<h3 data-i18n="an.hourly"></h3><div id="an-hourly" data-testid="an-hourly" class="an-chart"></div>' +
      '<h3 data-i18n="an.weekly"></h3><div id="an-weekly" data-testid="an-weekly" class="an-chart"></div>' +
      '<div class="actions"><button type="button" data-export="charts-csv" data-testid="an-export-charts" data-i18n="an.export.charts"></button></div>' +
      '<h3 data-i18n="an.zones"></h3><table class="an-zones" data-testid="an-zones"><thead></thead><tbody></tbody></table>' +
      '<div class="actions"><button type="button" data-export="zones-csv" data-testid="an-export-zones" data-i18n="an.export.zones"></button></div>';
    $(".side").appendChild(sec);
    applyI18n(btn); applyI18n(sec);
    $("#an-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
    $("#an-form").addEventListener("change", () => load());
    sec.addEventListener("click", (ev) => {
      const ex = ev.target.closest("[data-export]");
      if (ex) { exportData(ex.dataset.export); return; }
      const rep = ev.target.closest("[data-report]");
      if (rep) openReport(rep.dataset.report || null);
    });
    // The heatmap is drawn while its tab is shown (the dispatcher's map stays readable).
    new MutationObserver(() => { showLayer(!sec.hidden); if (window.gd.map) window.gd.map.invalidateSize(); }).observe(sec, { attributes: true, attributeFilter: ["hidden"] });
  }

  async function fillCategories() {
    let cats = [];
    try {
      const data = await ui().api("GET", "/api/incidents/categories");
      cats = (data && data.categories) || [];
    } catch (e) { cats = window.gd.categories || []; }
    const label = (c) => (c.label && typeof c.label === "object" ? c.label[LANG] || c.label.en : c.label) || c.code;
    const sel = $('#an-form [name="category"]');
    const keep = sel.value;
    sel.innerHTML = '<option value="" data-i18n="an.all">' + esc(t("an.all")) + "</option>" +
      cats.map((c) => '<option value="' + esc(c.code) + '">' + esc(label(c)) + "</option>").join("");
    sel.value = keep;
  }

  // The default period: the 30 days up to the newest incident with intervals (an imported
  // year-old archive shows its last month, not an empty map).
  async function defaultPeriod() {
    const f = $("#an-form");
    if (f.from.value || f.to.value) return;
    let newest = new Date();
    try {
      const rows = await ui().api("GET", "/api/analytics/incidents?limit=1");
      if (rows && rows.length) newest = new Date(rows[0].received_at);
    } catch (e) { /* today */ }
    const day = (d) => d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
    f.to.value = day(newest);
    f.from.value = day(new Date(newest.getTime() - 29 * 86400000));
  }

  // --- queries ---------------------------------------------------------------------------------
  function filters() {
    const f = $("#an-form");
    const q = { res: f.res.value, interval: f.interval.value };
    if (f.category.value) q.category = f.category.value;
    if (f.priority.value) q.priority = f.priority.value;
    // Dates are the analyst's local days; "to" is inclusive, so the period ends the next midnight.
    if (f.from.value) q.from = new Date(f.from.value + "T00:00:00").toISOString();
    if (f.to.value) { const e = new Date(f.to.value + "T00:00:00"); e.setDate(e.getDate() + 1); q.to = e.toISOString(); }
    return q;
  }
  const qs = (q, extra) => {
    const p = new URLSearchParams(q);
    (extra || []).forEach(([k, v]) => p.append(k, v));
    return p.toString();
  };

  async function load() {
    const seq = ++A.seq;
    const q = filters();
    A.query = q;
    const status = $("#an-status");
    status.className = ""; status.textContent = t("an.loading");
    try {
      const [cells, hours, dows, zones] = await Promise.all([
        ui().api("GET", "/api/analytics/cells.geojson?" + qs(q)),
        ui().api("GET", "/api/analytics/summary?" + qs(q, [["by", "hour"]])),
        ui().api("GET", "/api/analytics/summary?" + qs(q, [["by", "dow"]])),
        ui().api("GET", "/api/analytics/summary?" + qs(q, [["by", "sector_id"]])),
        loadZoneNames(),
      ]);
      if (seq !== A.seq) return;  // a newer filter's answer wins
      A.cells = cells; A.hours = hours; A.dows = dows; A.zones = zones;
      const total = cells.features.reduce((s, f) => s + f.properties.count, 0);
      status.textContent = cells.features.length ? t("an.cells", { n: cells.features.length, c: total }) : t("an.none");
      render();
    } catch (e) {
      if (seq !== A.seq) return;
      status.textContent = t("an.error", { d: e.message }); status.className = "error";
    }
  }
  async function loadZoneNames() {
    if (A.zoneNamesLoaded) return;
    try {
      const fc = await ui().api("GET", "/api/zones?level=sector");
      (fc.features || []).forEach((f) => { A.zoneNames[f.properties.id] = { code: f.properties.code, name: f.properties.name }; });
      A.zoneNamesLoaded = true;
    } catch (e) { /* ids only */ }
  }

  // --- drawing ---------------------------------------------------------------------------------
  function statValue(p) {
    const stat = $("#an-form").stat.value;
    if (stat === "count") return p.count;
    if (p.n < MIN_N) return null;
    if (stat === "within_target") return p.within_target === null ? null : 100 * p.within_target;
    return p[stat] === null ? null : p[stat] / 60;
  }
  // Colour classes: quantiles of the values shown (times, counts); fixed shares for "within".
  function classes(values) {
    const stat = $("#an-form").stat.value;
    if (stat === "within_target") return { bounds: [50, 70, 80, 90, 95, Infinity], colours: YLORRD.slice().reverse() };
    const v = values.slice().sort((a, b) => a - b);
    if (!v.length) return { bounds: [Infinity], colours: [YLORRD[0]] };
    const b = [...new Set([0.3, 0.5, 0.7, 0.85, 0.95].map((q) => v[Math.min(v.length - 1, Math.floor(q * v.length))]))];
    b.push(Infinity);
    return { bounds: b, colours: YLORRD.slice(YLORRD.length - b.length) };
  }
  const unit = () => ({ count: "", within_target: "%" }[$("#an-form").stat.value] ?? t("an.min"));
  const fmtVal = (x) => x === null ? "–" : ($("#an-form").stat.value === "count" ? String(x) :
    $("#an-form").stat.value === "within_target" ? x.toFixed(1) + " %" : mmss(60 * x));

  function render() {
    if (!A.cells) return;
    drawCells();
    drawChart($("#an-hourly"), A.hours, "hour", Array.from({ length: 24 }, (_, h) => h), (h) => String(h));
    const dn = t("an.dow").split(",");
    drawChart($("#an-weekly"), A.dows, "dow", [0, 1, 2, 3, 4, 5, 6], (d) => dn[d]);
    drawZones();
  }
  function drawCells() {
    const map = window.gd.map;
    if (A.layer) { map.removeLayer(A.layer); A.layer = null; }
    const values = A.cells.features.map((f) => statValue(f.properties));
    const cls = classes(values.filter((v) => v !== null));
    const colour = (v) => v === null ? NO_DATA : cls.colours[cls.bounds.findIndex((b) => v <= b)];
    A.layer = L.geoJSON(A.cells, {
      // SVG, not the console's canvas: each cell is an element (hover, tests, screen readers).
      renderer: A.renderer || (A.renderer = L.svg({ padding: 0.3 })),
      style: (f) => ({ className: "gd-heat-cell", color: "#555", weight: 0.6, fillOpacity: 0.5,
        fillColor: colour(statValue(f.properties)) }),
      onEachFeature: (f, l) => {
        const p = f.properties;
        l.bindTooltip("<b>" + esc(p.cell) + "</b><br>" + esc(t("an.col.count")) + ": " + p.count +
          "<br>" + esc(t("an.col.median")) + ": " + mmss(p.median_s) + "<br>" + esc(t("an.col.p90")) + ": " + mmss(p.p90_s) +
          "<br>" + esc(t("an.col.within")) + ": " + pct(p.within_target), { sticky: true });
      },
    });
    showLayer(!$("#tab-analytics").hidden);
    if (!A.fitted && A.cells.features.length) { map.fitBounds(A.layer.getBounds(), { maxZoom: 15 }); A.fitted = true; }
    let lo = 0;
    const stat = $("#an-form").stat.value;
    $("#an-legend").innerHTML = "<b>" + esc(t("an.int." + $("#an-form").interval.value)) + " · " + esc(t("an.stat." + stat)) +
      "</b>" + cls.bounds.map((b, k) => {
        const label = b === Infinity ? "> " + fmtLegend(lo) : fmtLegend(lo) + " – " + fmtLegend(b);
        lo = b;
        return '<div><i style="background:' + cls.colours[k] + '"></i>' + esc(label) + "</div>";
      }).join("") + (stat === "count" ? "" : '<div><i style="background:' + NO_DATA + '"></i>' + esc(t("an.few", { n: MIN_N })) + "</div>");
  }
  function fmtLegend(x) { return fmtVal(x) + (["count", "within_target"].includes($("#an-form").stat.value) ? "" : " " + unit()); }
  function showLayer(on) {
    const map = window.gd && window.gd.map;
    if (!map || !A.layer) return;
    if (on && !map.hasLayer(A.layer)) A.layer.addTo(map);
    if (!on && map.hasLayer(A.layer)) map.removeLayer(A.layer);
  }
  // Bars of the chosen figure per hour / weekday; the count is in each bar's tooltip.
  function drawChart(el, rows, key, domain, label) {
    const by = {};
    rows.forEach((r) => { by[r[key]] = r; });
    const vals = domain.map((d) => (by[d] ? statValue(by[d]) : null));
    const max = Math.max(1e-9, ...vals.filter((v) => v !== null));
    const W = 420, H = 120, pad = 18, bw = (W - pad) / domain.length;
    const bars = domain.map((d, k) => {
      const v = vals[k];
      const h = v === null ? 0 : Math.max(1, (H - 2 * pad) * v / max);
      const x = pad + k * bw, y = H - pad - h;
      const tip = label(d) + ": " + fmtVal(v) + " · " + t("an.col.count") + " " + (by[d] ? by[d].count : 0);
      return '<rect data-testid="an-bar" data-key="' + d + '" x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + (bw - 2).toFixed(1) +
        '" height="' + h.toFixed(1) + '" fill="#1f5fbf"><title>' + esc(tip) + "</title></rect>" +
        (domain.length <= 7 || d % 3 === 0 ? '<text x="' + (x + bw / 2).toFixed(1) + '" y="' + (H - 4) + '" text-anchor="middle">' + esc(label(d)) + "</text>" : "");
    }).join("");
    el.innerHTML = '<svg viewBox="0 0 ' + W + " " + H + '" width="100%" role="img" aria-label="' + esc(el.previousElementSibling.textContent) + '">' +
      '<text x="' + pad + '" y="11" class="an-max">' + esc(fmtVal(max === 1e-9 ? null : max)) + "</text>" +
      '<line x1="' + pad + '" y1="' + (H - pad) + '" x2="' + W + '" y2="' + (H - pad) + '" stroke="#9aa3b0"/>' + bars + "</svg>";
  }
  function zoneOf(id) {
    if (id === null || id === undefined) return { code: "", name: t("an.nozone") };
    return A.zoneNames[id] || { code: String(id), name: "" };
  }
  function drawZones() {
    const tbl = $("table.an-zones");
    tbl.tHead.innerHTML = "<tr><th>" + esc(t("an.col.zone")) + "</th><th>" + esc(t("an.col.count")) + "</th><th>" + esc(t("an.col.median")) +
      "</th><th>" + esc(t("an.col.p90")) + "</th><th>" + esc(t("an.col.within")) + "</th><th></th></tr>";
    tbl.tBodies[0].innerHTML = A.zones.map((r) => {
      const z = zoneOf(r.sector_id);
      return '<tr data-testid="zone-row" data-sector="' + esc(r.sector_id ?? "") + '"><td data-testid="zone-name">' + esc(z.code) +
        (z.name ? ' <span class="sub">' + esc(z.name) + "</span>" : "") + '</td><td data-testid="zone-count">' + r.count +
        '</td><td data-testid="zone-median">' + mmss(r.median_s) + '</td><td data-testid="zone-p90">' + mmss(r.p90_s) +
        '</td><td data-testid="zone-within">' + pct(r.within_target) + "</td><td>" +
        (r.sector_id !== null && A.zoneNames[r.sector_id] ? '<button type="button" class="link" data-testid="zone-report" data-report="' +
          esc(z.code) + '">' + esc(t("an.report.zone")) + "</button>" : "") + "</td></tr>";
    }).join("");
  }

  // --- exports and the report ------------------------------------------------------------------
  function csv(header, rows) {
    const cell = (v) => { const s = v === null || v === undefined ? "" : String(v); return /[",\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; };
    return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
  }
  const FIG = ["count", "n", "median_s", "p90_s", "within_target"];
  function stamp() {
    const q = A.query || {};
    return [q.interval, "h3r" + q.res, q.category, q.priority ? "p" + q.priority : null,
      q.from ? q.from.slice(0, 10) : null, q.to ? q.to.slice(0, 10) : null].filter(Boolean).join("_");
  }
  function exportData(kind) {
    if (!A.cells) return;
    let body, type, name;
    if (kind === "cells-geojson") {
      body = JSON.stringify(A.cells); type = "application/geo+json"; name = "cells_" + stamp() + ".geojson";
    } else if (kind === "cells-csv") {
      body = csv(["cell", ...FIG], A.cells.features.map((f) => [f.properties.cell, ...FIG.map((k) => f.properties[k])]));
      type = "text/csv"; name = "cells_" + stamp() + ".csv";
    } else if (kind === "charts-csv") {
      body = csv(["by", "value", ...FIG], [...A.hours.map((r) => ["hour", r.hour, ...FIG.map((k) => r[k])]),
        ...A.dows.map((r) => ["dow", r.dow, ...FIG.map((k) => r[k])])]);
      type = "text/csv"; name = "charts_" + stamp() + ".csv";
    } else {
      body = csv(["sector_id", "code", "name", ...FIG], A.zones.map((r) => {
        const z = r.sector_id === null ? { code: "", name: "" } : zoneOf(r.sector_id);
        return [r.sector_id, z.code, z.name, ...FIG.map((k) => r[k])];
      }));
      type = "text/csv"; name = "zones_" + stamp() + ".csv";
    }
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([body], { type: type + ";charset=utf-8" }));
    a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }
  // The report needs the bearer token, so it is fetched and shown from a blob in a new window
  // (opened at the click, before the answer, so no popup blocker stops it).
  async function openReport(zone) {
    const q = Object.assign({}, A.query || filters());
    const params = new URLSearchParams();
    ["from", "to", "category", "priority"].forEach((k) => { if (q[k]) params.set(k, q[k]); });
    if (zone) params.set("zone", zone);
    const w = window.open("", "_blank");
    try {
      const r = await fetch("/api/analytics/report?" + params, { headers: { Authorization: "Bearer " + window.gd.token } });
      const text = await r.text();
      if (!r.ok) { let d = text; try { d = JSON.parse(text).detail || text; } catch (e) { /* text */ } throw new Error(d); }
      const url = URL.createObjectURL(new Blob([text], { type: "text/html;charset=utf-8" }));
      if (w) w.location.href = url; else location.assign(url);
    } catch (e) {
      if (w) w.close();
      const status = $("#an-status");
      status.textContent = t("an.error", { d: e.message }); status.className = "error";
    }
  }

  // --- wiring ----------------------------------------------------------------------------------
  const HIDDEN_FOR_ANALYST = ["queue", "crews", "calls", "newcall"];
  document.addEventListener("gd:started", () => {
    const role = window.gd.user && window.gd.user.role;
    if (!READERS.includes(role)) { const b = $('[data-tab="analytics"]'); if (b) b.hidden = true; return; }
    build();
    $('[data-tab="analytics"]').hidden = false;
    const first = !A.started;
    A.started = true;
    fillCategories();
    const go = () => defaultPeriod().then(load);
    if (role === "analyst") {
      // The analyst has no live map, queue or crews: this page is their console.
      HIDDEN_FOR_ANALYST.forEach((n) => { const b = $('[data-tab="' + n + '"]'); if (b) { b.hidden = true; b.dataset.anHidden = "1"; } });
      ui().switchTab("analytics");
      go();
    } else if (first) {
      $('[data-tab="analytics"]').addEventListener("click", () => { if (!A.cells) go(); });
    }
  });
  document.addEventListener("gd:logout", () => {
    document.querySelectorAll("[data-an-hidden]").forEach((b) => { delete b.dataset.anHidden; if (b.dataset.tab !== "calls" && b.dataset.tab !== "newcall") b.hidden = false; });
    if (A.layer && window.gd.map) window.gd.map.removeLayer(A.layer);
    A.layer = null; A.cells = null; A.fitted = false; A.zoneNamesLoaded = false; A.zoneNames = {};
    const sec = $("#tab-analytics");
    if (sec) { sec.hidden = true; $("#an-form").reset(); }
    if (window.gd.ui) ui().switchTab("queue");
  });
  document.addEventListener("gd:lang", () => { if ($("#tab-analytics")) { fillCategories(); render(); } });
})();
