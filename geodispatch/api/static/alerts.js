/* Alerts of the dispatcher console.
 *
 * 1. A new incident of an alerting priority (P1 by default; which ones is a per-console setting
 *    kept in localStorage) arriving unassigned in the queue plays a sound (an <audio> element
 *    whose WAV this script synthesises: no file, no network), flashes the document title and,
 *    when the browser allows it, raises a desktop notification. The sound repeats and the title
 *    keeps flashing until the dispatcher looks at it: opens the incident, or comes back to the
 *    window after leaving it, or the incident is assigned.
 * 2. The supervisor alerts (GET /api/dispatch/alerts, polled by app.js) in their own tab:
 *    grouped by kind with counts, worded here in the console's language from the alert's own
 *    fields (seconds, limit_s, priority, status, count), durations in minutes; the server's
 *    English `message` is never shown. */
"use strict";
(function () {
  const gd = window.gd;
  const UNASSIGNED = ["registered", "queued"];
  const WORKERS = ["dispatcher", "supervisor", "admin"];
  const WATCHERS = ["dispatcher", "supervisor", "admin", "national"];
  const KEY = "gd.alertPriorities";
  const REPEAT_MS = 20000;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  Object.assign(I18N.uk, {
    "tab.alerts": "Попередження", "al.settings": "Звук і сповіщення для нових подій пріоритету",
    "al.notify.ask": "Дозволити сповіщення на робочому столі", "al.notify.on": "сповіщення на робочому столі увімкнено",
    "al.notify.denied": "сповіщення заборонено в браузері", "al.notify.none": "браузер не підтримує сповіщень",
    "al.new": "Нова подія P{p}: {ref}", "al.title": "‼ P{p} {ref} — нова подія", "al.none": "Попереджень немає",
    "al.min": "{m} хв", "al.h": "{h} год", "al.more": "показати всі ({n})", "al.less": "згорнути",
    "alk.unassigned": "Без екіпажу понад норму", "alk.on_scene_too_long": "Задовго на місці",
    "alk.not_acknowledged": "Екіпаж не підтвердив виклик", "alk.dispatched_not_moving": "Направлений, але не рухається",
    "alk.gps_stale": "Немає свіжих координат", "alk.stale_records": "Старі записи",
    "alk.position_partitions_missing": "Бракує розділів координат", "alk.positions_in_default_partition": "Координати в розділі за замовчуванням",
    "alk.ingest_dead_letters": "Відкинуті повідомлення трекерів", "alk.other": "Інше",
    "alm.unassigned": "{ref} (P{p}) чекає {d} (норма {l})",
    "alm.on_scene_too_long": "{cs} на місці {ref} вже {d} (норма {l})",
    "alm.not_acknowledged": "{cs} не підтвердив {ref}: {d}, надіслано {n} раз(и)",
    "alm.dispatched_not_moving": "{cs} направлений на {ref} {d} тому і не рухається (норма {l})",
    "alm.gps_stale": "{cs} ({st}): остання позиція {d} тому", "alm.gps_none": "{cs} ({st}): позицій ще не було",
    "alm.stale_records": "{n} таймерів старших за {l} не показано (імпортовані або незакриті записи, екіпажі без зв'язку днями): перевірте їх",
    "alm.position_partitions_missing": "Бракує розділів таблиці координат: планове завдання не працює (`geodispatch tracking partitions`)",
    "alm.positions_in_default_partition": "Координати лежать у розділі за замовчуванням: планове завдання не працює (`geodispatch tracking partitions`)",
    "alm.ingest_dead_letters": "Повідомлення трекерів відкинуто за останню годину, перше {d} тому (`geodispatch tracking dead-letters`)",
    "alm.other": "Попередження «{k}»",
  });
  Object.assign(I18N.en, {
    "tab.alerts": "Alerts", "al.settings": "Sound and notification for new incidents of priority",
    "al.notify.ask": "Allow desktop notifications", "al.notify.on": "desktop notifications on",
    "al.notify.denied": "notifications blocked in the browser", "al.notify.none": "this browser has no notifications",
    "al.new": "New P{p} incident: {ref}", "al.title": "‼ P{p} {ref} — new incident", "al.none": "No alerts",
    "al.min": "{m} min", "al.h": "{h} h", "al.more": "show all ({n})", "al.less": "show fewer",
    "alk.unassigned": "Unassigned too long", "alk.on_scene_too_long": "On scene too long",
    "alk.not_acknowledged": "Assignment not acknowledged", "alk.dispatched_not_moving": "Dispatched, not moving",
    "alk.gps_stale": "No recent position", "alk.stale_records": "Old records",
    "alk.position_partitions_missing": "Position partitions missing", "alk.positions_in_default_partition": "Positions in the default partition",
    "alk.ingest_dead_letters": "Tracker messages dead-lettered", "alk.other": "Other",
    "alm.unassigned": "{ref} (P{p}) waiting {d} (limit {l})",
    "alm.on_scene_too_long": "{cs} on scene at {ref} for {d} (limit {l})",
    "alm.not_acknowledged": "{cs} has not acknowledged {ref}: {d}, sent {n} time(s)",
    "alm.dispatched_not_moving": "{cs} dispatched to {ref} {d} ago and not moving (limit {l})",
    "alm.gps_stale": "{cs} ({st}): last position {d} ago", "alm.gps_none": "{cs} ({st}): no position yet",
    "alm.stale_records": "{n} timers older than {l} left out (imported or never-closed records, crews silent for days): check them",
    "alm.position_partitions_missing": "Position partitions are missing: the scheduled job is failing (`geodispatch tracking partitions`)",
    "alm.positions_in_default_partition": "Positions sit in the default partition: the scheduled job is not running (`geodispatch tracking partitions`)",
    "alm.ingest_dead_letters": "Tracker messages dead-lettered in the last hour, the first {d} ago (`geodispatch tracking dead-letters`)",
    "alm.other": "Alert “{k}”",
  });

  const A = (gd.alertsUi = {
    played: 0, notified: 0, flashing: false, pending: {}, seen: null, mine: new Set(),
    priorities: loadPriorities(), audio: null, groups: [], expanded: {},
  });
  const SHOWN = 8;  // alerts shown per group until "show all" (60 unassigned must not bury the rest)

  // --- the per-console setting ---------------------------------------------------------------
  function loadPriorities() {
    try {
      const v = JSON.parse(localStorage.getItem(KEY) || "null");
      if (Array.isArray(v) && v.every((p) => [1, 2, 3, 4].includes(p))) return v;
    } catch (e) { /* a broken value: the default */ }
    return [1];
  }
  function savePriorities(list) {
    A.priorities = list.slice().sort();
    localStorage.setItem(KEY, JSON.stringify(A.priorities));
  }
  A.setPriorities = savePriorities;

  // --- the sound: a WAV made here (two short tones, 8 kHz, 8-bit mono, about 6 kB) ------------
  function wavUrl() {
    const rate = 8000;
    const tones = [[880, 0.18], [0, 0.06], [1320, 0.18], [0, 0.06], [880, 0.22]];
    const n = Math.round(tones.reduce((s, x) => s + x[1], 0) * rate);
    const buf = new ArrayBuffer(44 + n);
    const v = new DataView(buf);
    const str = (o, s) => { for (let k = 0; k < s.length; k++) v.setUint8(o + k, s.charCodeAt(k)); };
    str(0, "RIFF"); v.setUint32(4, 36 + n, true); str(8, "WAVE"); str(12, "fmt ");
    v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
    v.setUint32(24, rate, true); v.setUint32(28, rate, true); v.setUint16(32, 1, true);
    v.setUint16(34, 8, true); str(36, "data"); v.setUint32(40, n, true);
    let i = 0;
    tones.forEach(([f, d]) => {
      const m = Math.round(d * rate);
      for (let k = 0; k < m && i < n; k++, i++) {
        const env = Math.min(1, k / 80, (m - k) / 80);  // no clicks at the edges
        v.setUint8(44 + i, 128 + Math.round(f ? 100 * env * Math.sin(2 * Math.PI * f * k / rate) : 0));
      }
    });
    return URL.createObjectURL(new Blob([buf], { type: "audio/wav" }));
  }
  function audio() {
    if (A.audio) return A.audio;
    const el = (A.audio = document.createElement("audio"));
    el.id = "alert-sound"; el.dataset.testid = "alert-sound"; el.preload = "auto";
    el.src = wavUrl();
    el.addEventListener("play", () => { A.played += 1; });
    document.body.appendChild(el);
    return el;
  }
  function beep() {
    const el = audio();
    try { el.currentTime = 0; } catch (e) { /* not loaded yet */ }
    const p = el.play();
    if (p && p.catch) p.catch(() => { A.blocked = true; });  // autoplay refused before any click
  }

  // --- the title flash and the notification ---------------------------------------------------
  function baseTitle() { return A.baseTitle || (A.baseTitle = document.title); }
  function tick() {
    const ids = Object.keys(A.pending);
    if (!ids.length) { stop(); return; }
    const a = A.pending[ids[ids.length - 1]];
    A.flashOn = !A.flashOn;
    document.title = A.flashOn ? t("al.title", { p: a.priority, ref: a.reference }) : baseTitle();
  }
  function stop() {
    clearInterval(A.flashTimer); clearInterval(A.repeatTimer);
    A.flashTimer = A.repeatTimer = null; A.flashing = false;
    if (A.baseTitle) document.title = A.baseTitle;
  }
  function notify(inc) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(t("al.new", { p: inc.priority, ref: inc.reference || "#" + inc.id }), {
        body: [gd.ui.categoryLabel(inc.category), inc.address || inc.address_resolved || ""].filter(Boolean).join(" · "),
        tag: "gd-incident-" + inc.id, requireInteraction: true,
      });
      n.onclick = () => { window.focus(); gd.ui.showIncident(inc.id); n.close(); };
      A.notified += 1;
    } catch (e) { /* a browser that only notifies from a service worker */ }
  }
  function raise(inc) {
    A.pending[inc.id] = { id: inc.id, priority: inc.priority, reference: inc.reference || "#" + inc.id };
    baseTitle();
    beep();
    notify(inc);
    if (!A.flashing) {
      A.flashing = true;
      tick();
      A.flashTimer = setInterval(tick, 1000);
      A.repeatTimer = setInterval(() => { if (Object.keys(A.pending).length) beep(); }, REPEAT_MS);
    }
    document.dispatchEvent(new CustomEvent("gd:alert", { detail: inc }));
  }
  function seen(id) {
    if (!(id in A.pending)) return;
    delete A.pending[id];
    if (!Object.keys(A.pending).length) stop();
  }
  A.acknowledgeAll = () => { A.pending = {}; stop(); };

  // --- which incidents alert: new to this console, unassigned, of an alerting priority -------
  function consider(inc) {
    const known = A.seen.has(inc.id);
    const before = A.lastPriority[inc.id];
    const p = Number(inc.priority);
    A.seen.add(inc.id);
    A.lastPriority[inc.id] = p;
    if (!UNASSIGNED.includes(inc.status)) { seen(inc.id); return; }
    if (A.mine.has(inc.id) || !A.priorities.includes(p) || inc.id in A.pending) return;
    // A new incident, or one raised to an alerting priority while it waits (reclassified).
    if (!known || (before !== undefined && !A.priorities.includes(before))) raise(inc);
  }
  document.addEventListener("gd:live", (ev) => {
    const msg = ev.detail;
    if (!gd.user || !WORKERS.includes(gd.user.role)) return;
    if (msg.type === "snapshot") {
      // The first snapshot is what was already waiting at login: no alarm for it. A later one
      // (after a reconnect) alarms for what arrived meanwhile.
      const first = A.seen === null;
      if (first) { A.seen = new Set(); A.lastPriority = {}; }
      (msg.incidents || []).forEach((i) => { if (first) { A.seen.add(i.id); A.lastPriority[i.id] = Number(i.priority); } else consider(i); });
    } else if (msg.type === "incidents" && A.seen) {
      msg.incidents.forEach(consider);
    }
  });
  document.addEventListener("gd:incident-registered", (ev) => { if (ev.detail && ev.detail.id !== undefined) A.mine.add(ev.detail.id); });
  document.addEventListener("gd:incident-panel", (ev) => seen(ev.detail.id));
  // Back at the window after leaving it: the dispatcher has seen the title and the queue.
  window.addEventListener("focus", () => { if (A.blurred) A.acknowledgeAll(); A.blurred = false; });
  window.addEventListener("blur", () => { A.blurred = true; });
  document.addEventListener("gd:logout", () => { A.acknowledgeAll(); A.seen = null; A.mine = new Set(); });

  // --- the alerts tab --------------------------------------------------------------------------
  function minutes(s) {
    const m = Math.max(0, Number(s) || 0) / 60;
    const nf = new Intl.NumberFormat(LANG === "uk" ? "uk-UA" : "en-GB", { maximumFractionDigits: m < 10 ? 1 : 0 });
    return t("al.min", { m: nf.format(m) });
  }
  function hours(s) {
    const nf = new Intl.NumberFormat(LANG === "uk" ? "uk-UA" : "en-GB", { maximumFractionDigits: 1 });
    return t("al.h", { h: nf.format((Number(s) || 0) / 3600) });
  }
  const KNOWN = ["unassigned", "on_scene_too_long", "not_acknowledged", "dispatched_not_moving", "gps_stale",
    "stale_records", "position_partitions_missing", "positions_in_default_partition", "ingest_dead_letters"];
  function words(a) {
    const f = { ref: a.reference || (a.incident_id ? "#" + a.incident_id : "—"), cs: a.call_sign || (a.unit_id ? "#" + a.unit_id : "—"),
      p: a.priority === null || a.priority === undefined ? "?" : a.priority, d: minutes(a.seconds),
      l: a.limit_s === null || a.limit_s === undefined ? "—" : minutes(a.limit_s), n: a.count === null || a.count === undefined ? "?" : a.count,
      st: a.status ? t("status." + a.status) : "—", k: a.kind };
    if (a.kind === "gps_stale" && Number(a.seconds) < Number(a.limit_s || 0)) return t("alm.gps_none", f);
    if (a.kind === "stale_records") return t("alm.stale_records", Object.assign(f, { l: hours(a.limit_s) }));
    return t(KNOWN.includes(a.kind) ? "alm." + a.kind : "alm.other", f);
  }
  const SEV = { high: 0, medium: 1, low: 2 };
  function group(items) {
    const by = {};
    items.forEach((a, k) => {
      const kind = KNOWN.includes(a.kind) ? a.kind : "other";
      (by[kind] = by[kind] || { kind, items: [], sev: 2 }).items.push(Object.assign({ k }, a));
      by[kind].sev = Math.min(by[kind].sev, SEV[a.severity] === undefined ? 2 : SEV[a.severity]);
    });
    return Object.values(by).sort((x, y) => (x.sev - y.sev) || (y.items.length - x.items.length));
  }
  function renderAlerts() {
    const box = $("#alert-groups");
    if (!box) return;
    const items = gd.alerts || [];
    A.groups = group(items);
    $("#alerts-count").textContent = items.length;
    $("#alerts-count").classList.toggle("hot", items.some((a) => a.severity === "high"));
    box.innerHTML = A.groups.length ? A.groups.map((g) => '<section class="alert-group" data-testid="alert-group" data-kind="' + esc(g.kind) + '">' +
      '<h4>' + esc(t("alk." + g.kind)) + ' <span class="count" data-testid="alert-group-count">' + g.items.length + "</span></h4>" +
      '<ul class="list alerts">' + g.items.slice(0, A.expanded[g.kind] ? g.items.length : SHOWN).map((a) =>
        '<li class="' + esc(a.severity) + '" data-testid="alert" data-k="' + a.k + '" tabindex="0">' + esc(words(a)) + "</li>").join("") + "</ul>" +
      (g.items.length > SHOWN ? '<button type="button" class="link" data-testid="alert-more" data-kind="' + esc(g.kind) + '">' +
        esc(A.expanded[g.kind] ? t("al.less") : t("al.more", { n: g.items.length })) + "</button>" : "") + "</section>").join("")
      : '<p class="muted" data-testid="alerts-none">' + esc(t("al.none")) + "</p>";
  }
  function notifyState() {
    if (!("Notification" in window)) return t("al.notify.none");
    if (Notification.permission === "granted") return t("al.notify.on");
    if (Notification.permission === "denied") return t("al.notify.denied");
    return "";
  }
  function renderSettings() {
    const box = $("#alert-settings");
    if (!box) return;
    const ask = "Notification" in window && Notification.permission === "default";
    box.innerHTML = '<fieldset><legend>' + esc(t("al.settings")) + "</legend>" + [1, 2, 3, 4].map((p) =>
      '<label class="inline"><input type="checkbox" data-testid="alert-prio" value="' + p + '"' + (A.priorities.includes(p) ? " checked" : "") + "> P" + p + "</label>").join(" ") +
      '<div class="row">' + (ask ? '<button type="button" id="alert-notify" data-testid="alert-notify">' + esc(t("al.notify.ask")) + "</button>" : "") +
      ' <span class="hint" data-testid="alert-notify-state">' + esc(notifyState()) + "</span></div></fieldset>";
    box.querySelectorAll("input[data-testid=alert-prio]").forEach((el) => { el.onchange = () => {
      savePriorities(Array.from(box.querySelectorAll("input[data-testid=alert-prio]:checked"), (x) => Number(x.value)));
    }; });
    const b = $("#alert-notify");
    if (b) b.onclick = () => { Notification.requestPermission().then(renderSettings, renderSettings); };
  }
  function buildTab() {
    if ($("#tab-alerts")) return;
    const btn = document.createElement("button");
    btn.type = "button"; btn.dataset.tab = "alerts"; btn.dataset.testid = "tab-alerts"; btn.hidden = true;
    btn.innerHTML = '<span data-i18n="tab.alerts"></span> <span id="alerts-count" class="count">0</span>';
    const nav = $(".tabs");
    nav.insertBefore(btn, nav.querySelector('[data-tab="crews"]'));
    const sec = document.createElement("section");
    sec.id = "tab-alerts"; sec.className = "tab"; sec.hidden = true;
    sec.innerHTML = '<div id="alert-settings" data-testid="alert-settings"></div><div id="alert-groups" data-testid="alert-groups"></div>';
    $("#tab-queue").after(sec);
    btn.onclick = () => gd.ui.switchTab("alerts");
    sec.addEventListener("click", (ev) => {
      const more = ev.target.closest("button[data-testid=alert-more]");
      if (more) { A.expanded[more.dataset.kind] = !A.expanded[more.dataset.kind]; renderAlerts(); return; }
      const li = ev.target.closest("li[data-k]");
      const a = li && (gd.alerts || [])[Number(li.dataset.k)];
      if (a && a.incident_id) gd.ui.showIncident(a.incident_id);
      else if (a && a.unit_id && gd.ui.showCrew) gd.ui.showCrew(a.unit_id);
    });
    sec.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && ev.target.matches("li[data-k]")) ev.target.click(); });
  }
  buildTab();
  document.addEventListener("gd:started", () => {
    const watch = gd.user && WATCHERS.includes(gd.user.role);
    $('[data-tab="alerts"]').hidden = !watch;
    $("#alert-settings").hidden = !(gd.user && WORKERS.includes(gd.user.role));
    renderSettings(); renderAlerts();
    if (gd.user && WORKERS.includes(gd.user.role)) audio();
  });
  document.addEventListener("gd:alerts", renderAlerts);
  document.addEventListener("gd:lang", () => { renderSettings(); renderAlerts(); });
})();
