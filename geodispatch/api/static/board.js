/* The supervisor's board: every crew of the region by sector (status, time in it, incident,
   age of the last fix) and the joint actions with their crews and lead, from one request
   (GET /api/supervisor/board). Shown over the map while its tab is open; read again soon after
   the live feed reports a crew's status or an incident change, and every BOARD_POLL_MS anyway,
   while shown (never while hidden); the clocks tick in between. Supervisors, admins
   and the national centre; other roles do not see the tab (and the server refuses them). */
"use strict";
Object.assign(I18N.uk, {
  "tab.board": "Табло", "board.title": "Табло екіпажів", "board.updated": "оновлено {t}",
  "board.failed": "Табло недоступне: {d}", "board.joint": "Спільні дії", "board.joint.none": "Спільних дій немає",
  "board.lead": "старший", "board.nozone": "Поза секторами", "board.crews": "екіпажів: {n}", "board.crews1": "екіпажів: 1",
  "board.col.crew": "Екіпаж", "board.col.status": "Статус", "board.col.since": "У статусі",
  "board.col.incident": "Подія", "board.col.fix": "Остання позиція", "board.nofix": "немає",
  "board.old": "понад добу", "board.hideoff": "Сховати тих, хто не на зміні", "board.total": "Усього",
  "board.home": "(за приписом)",
});
Object.assign(I18N.en, {
  "tab.board": "Board", "board.title": "Crew board", "board.updated": "updated {t}",
  "board.failed": "Board unavailable: {d}", "board.joint": "Joint actions", "board.joint.none": "No joint actions",
  "board.lead": "lead", "board.nozone": "Outside every sector", "board.crews": "{n} crews", "board.crews1": "1 crew",
  "board.col.crew": "Crew", "board.col.status": "Status", "board.col.since": "In status",
  "board.col.incident": "Incident", "board.col.fix": "Last fix", "board.nofix": "none",
  "board.old": "over a day", "board.hideoff": "Hide crews off duty", "board.total": "Total",
  "board.home": "(home sector)",
});
(function () {
  const READERS = ["supervisor", "admin", "national"];
  const BOARD_POLL_MS = 10000;
  const LIVE_DELAY_MS = 700;  // changes arriving together are read once
  const B = { data: null, at: 0, error: null, timer: null, tick: null, seq: 0 };
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const gd = () => window.gd;
  const ui = () => window.gd.ui;
  const HIDE_OFF = "gd.boardHideOff";

  // The tab, its side section and the board over the map, added before app.js wires the tabs.
  const nav = $(".side .tabs");
  if (nav) {
    const btn = document.createElement("button");
    btn.type = "button"; btn.dataset.tab = "board"; btn.hidden = true;
    btn.setAttribute("data-testid", "tab-board");
    btn.innerHTML = '<span data-i18n="tab.board"></span>';
    nav.appendChild(btn);
    const sec = document.createElement("section");
    sec.id = "tab-board"; sec.className = "tab"; sec.hidden = true;
    sec.innerHTML = '<p id="board-status" class="hint" data-testid="board-status" role="status"></p>' +
      '<label class="board-check"><input type="checkbox" id="board-hideoff" data-testid="board-hideoff"> <span data-i18n="board.hideoff"></span></label>' +
      '<h3 data-i18n="board.total"></h3><div id="board-counts" data-testid="board-counts"></div>' +
      '<h3 data-i18n="board.joint"></h3><ul id="board-joint" class="list" data-testid="board-joint"></ul>';
    $(".side").appendChild(sec);
    const over = document.createElement("section");
    over.id = "board"; over.className = "board"; over.hidden = true;
    over.setAttribute("data-testid", "board");
    $("#console").appendChild(over);
  }

  // --- formatting ------------------------------------------------------------------------------
  function dur(s, old) {
    if (old) return t("board.old");
    if (s === null || s === undefined) return "—";
    const w = Math.max(0, Math.floor(s));
    if (w < 3600) return Math.floor(w / 60) + ":" + String(w % 60).padStart(2, "0");
    return Math.floor(w / 3600) + " h " + String(Math.floor((w % 3600) / 60)).padStart(2, "0") + " min";
  }
  const elapsed = () => (Date.now() - B.at) / 1000;
  function kindLabel(k) { return I18N[LANG]["kind." + k] ? t("kind." + k) : k; }
  function counts(c) {
    return Object.keys(c).sort().map((s) => '<span class="board-count" data-status="' + esc(s) + '">' +
      ui().stBadge(s) + " " + c[s] + "</span>").join(" ");
  }
  function crewRow(c) {
    const e = elapsed();
    const inc = c.incident;
    const fixAge = c.fix_age_s === null ? null : c.fix_age_s + e;
    return '<tr data-testid="board-crew" data-unit="' + c.unit_id + '" data-status="' + esc(c.status) + '">' +
      '<td class="cs"><a href="#" data-unit-link="' + c.unit_id + '">' + esc(c.call_sign) + "</a>" + '<div class="sub">' + esc(kindLabel(c.kind)) + "</div></td>" +
      "<td>" + ui().stBadge(c.status) + "</td>" +
      '<td class="num" data-testid="board-since" data-base="' + (c.seconds_in_status === null ? "" : c.seconds_in_status) + '"' +
      (c.old ? ' data-old="1"' : "") + ">" + esc(dur(c.seconds_in_status === null ? null : c.seconds_in_status + e, c.old)) + "</td>" +
      '<td data-testid="board-incident">' + (inc ? '<a href="#" data-incident="' + inc.id + '">' + ui().prioBadge(inc.priority) + " " + esc(inc.reference) +
        "</a>" + (inc.is_lead ? ' <span class="lead" title="' + esc(t("board.lead")) + '">★</span>' : "") +
        '<div class="sub">' + esc(ui().categoryLabel(inc.category)) + "</div>" : "—") + "</td>" +
      '<td class="num' + (c.stale ? " stale" : "") + '" data-testid="board-fix" data-base="' + (c.fix_age_s === null ? "" : c.fix_age_s) + '">' +
      esc(fixAge === null ? t("board.nofix") : dur(fixAge, fixAge > 86400)) + "</td></tr>";
  }
  function zoneCard(z, hideOff) {
    const crews = z.crews.filter((c) => !hideOff || c.status !== "off_duty");
    if (!crews.length) return "";
    const title = z.zone_id === null ? t("board.nozone") : (z.code || "#" + z.zone_id) + (z.name && z.name !== z.code ? " · " + z.name : "");
    return '<div class="board-zone" data-testid="board-zone" data-zone="' + (z.zone_id === null ? "" : z.zone_id) + '"><h4>' + esc(title) +
      ' <span class="muted">' + esc(crews.length === 1 ? t("board.crews1") : t("board.crews", { n: crews.length })) + "</span></h4>" +
      '<div class="board-zone-counts">' + counts(z.counts) + "</div>" +
      "<table><thead><tr><th>" + t("board.col.crew") + "</th><th>" + t("board.col.status") + "</th><th>" + t("board.col.since") +
      "</th><th>" + t("board.col.incident") + "</th><th>" + t("board.col.fix") + "</th></tr></thead><tbody>" +
      crews.map(crewRow).join("") + "</tbody></table></div>";
  }
  function jointLi(j) {
    return '<li data-testid="board-joint-item" data-incident="' + j.incident_id + '">' + ui().prioBadge(j.priority) + ' <span class="title">' +
      esc(j.reference) + "</span> " + ui().stBadge(j.status) + '<div class="sub">' + esc(ui().categoryLabel(j.category)) + "</div>" +
      '<div class="board-joint-crews">' + j.crews.map((c) => '<span class="jc' + (c.is_lead ? " is-lead" : "") + '" data-testid="board-joint-crew" data-unit="' +
        c.unit_id + '"' + (c.is_lead ? ' data-lead="1"' : "") + ">" + (c.is_lead ? "★ " : "") + esc(c.call_sign) + " " + ui().stBadge(c.unit_status) +
        "</span>").join(" ") + "</div></li>";
  }
  function render() {
    const over = $("#board");
    if (!over || !gd().ui) return;
    const status = $("#board-status");
    if (B.error) { status.textContent = t("board.failed", { d: B.error }); status.className = "error"; }
    else if (B.data) { status.textContent = t("board.updated", { t: ui().fmtTime(B.at / 1000) }); status.className = "hint"; }
    if (!B.data) return;
    const hideOff = $("#board-hideoff").checked;
    $("#board-counts").innerHTML = counts(B.data.counts);
    $("#board-joint").innerHTML = B.data.joint.length ? B.data.joint.map(jointLi).join("")
      : '<li class="muted">' + esc(t("board.joint.none")) + "</li>";
    const scroll = over.scrollTop;
    over.innerHTML = '<h2 class="board-title">' + esc(t("board.title")) + "</h2>" +
      (B.data.joint.length ? '<div class="board-joint-top"><h3>' + esc(t("board.joint")) + '</h3><ul class="list" data-testid="board-joint-top">' +
        B.data.joint.map(jointLi).join("") + "</ul></div>" : "") +
      '<div class="board-zones">' + B.data.zones.map((z) => zoneCard(z, hideOff)).join("") + "</div>";
    over.scrollTop = scroll;
  }
  // Between reads the clocks move on by themselves.
  function tick() {
    const e = elapsed();
    document.querySelectorAll("#board [data-testid=board-since]").forEach((td) => {
      if (td.dataset.base !== "" && !td.dataset.old) td.textContent = dur(Number(td.dataset.base) + e, false);
    });
    document.querySelectorAll("#board [data-testid=board-fix]").forEach((td) => {
      if (td.dataset.base !== "") { const a = Number(td.dataset.base) + e; td.textContent = dur(a, a > 86400); }
    });
  }
  async function load() {
    clearTimeout(B.timer);
    if (!gd().token || $("#board").hidden) return;
    const seq = ++B.seq;
    try {
      const data = await ui().api("GET", "/api/supervisor/board");
      if (seq !== B.seq) return;
      B.data = data; B.at = Date.now(); B.error = null;
    } catch (e) {
      if (seq !== B.seq) return;
      B.error = e.message;
    }
    render();
    if (!$("#board").hidden) B.timer = setTimeout(load, BOARD_POLL_MS);
  }
  function show(on) {
    const over = $("#board");
    if (!over || over.hidden === !on) return;
    over.hidden = !on;
    clearInterval(B.tick); clearTimeout(B.timer);
    if (on) { load(); B.tick = setInterval(tick, 1000); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const sec = $("#tab-board");
    if (!sec) return;
    // The side section is shown and hidden by app.js's tabs: the board follows it.
    new MutationObserver(() => show(!sec.hidden)).observe(sec, { attributes: true, attributeFilter: ["hidden"] });
    const hide = $("#board-hideoff");
    hide.checked = localStorage.getItem(HIDE_OFF) === "1";
    hide.addEventListener("change", () => { localStorage.setItem(HIDE_OFF, hide.checked ? "1" : "0"); render(); });
    const open = (ev) => {
      const u = ev.target.closest("[data-unit-link]");
      if (u && ui().showCrew) { ev.preventDefault(); ui().showCrew(Number(u.dataset.unitLink)); return; }
      const a = ev.target.closest("[data-incident]");
      if (!a) return;
      ev.preventDefault();
      ui().showIncident(Number(a.dataset.incident));
    };
    $("#board").addEventListener("click", open);
    $("#board-joint").addEventListener("click", open);
  });
  // The live feed says a crew's status or an incident changed: read the board again shortly.
  document.addEventListener("gd:live", (ev) => {
    const msg = ev.detail || {};
    const over = $("#board");
    if (!over || over.hidden || !B.data) return;
    let changed = msg.type === "incidents";
    if (msg.type === "units") {
      const now = {};
      B.data.zones.forEach((z) => z.crews.forEach((c) => { now[c.unit_id] = c.status; }));
      changed = (msg.units || []).some((u) => u.status !== undefined && now[u.id] !== u.status);
    }
    if (!changed || B.soon) return;
    B.soon = setTimeout(() => { B.soon = null; load(); }, LIVE_DELAY_MS);
  });
  const btnActive = () => { const b = $('[data-tab="board"]'); return b && b.classList.contains("active"); };
  document.addEventListener("gd:started", () => {
    const role = gd().user && gd().user.role;
    const btn = $('[data-tab="board"]');
    if (btn) btn.hidden = !READERS.includes(role);
  });
  document.addEventListener("gd:lang", () => { const s = $("#tab-board"); if (s) applyI18n(s); render(); });
  document.addEventListener("gd:logout", () => {
    show(false);
    B.data = null; B.error = null;
    if (btnActive()) ui().switchTab("queue");
    const s = $("#tab-board"); if (s) s.hidden = true;
    const btn = $('[data-tab="board"]'); if (btn) btn.hidden = true;
  });
})();
