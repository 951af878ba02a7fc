/* The call-taker's screen, built around the ringing phone: the incoming calls with their waiting
 * times, answering (the registration form opens prefilled with the number and the caller's
 * AML / PIDF-LO location, drawn as a point with its accuracy circle and fix time), the duplicate
 * check (open incidents nearby or from the same number, to attach the call as an additional
 * caller), the outcome buttons (an answered call is not closed without one) and the callbacks of
 * abandoned calls. The list is read once from /api/calls (at start and whenever the live feed
 * reconnects) and then kept by the calls the live feed (/api/live, "calls" messages) pushes as
 * they change; only while the feed is down is the list read again, every few seconds. A 1 s
 * timer only redraws the waiting times.
 * State lives in window.gd.calls so browser tests can inspect it. */
"use strict";
Object.assign(I18N.uk, {
  "tab.calls": "Дзвінки",
  "calls.incoming": "Вхідні дзвінки", "calls.none": "Дзвінків немає",
  "calls.ringing": "дзвонить", "calls.answered": "на лінії", "calls.ended": "поклав слухавку",
  "calls.waiting": "чекає {w}", "calls.talking": "відповів {op} через {w} · розмова {d}",
  "calls.anon": "номер приховано", "calls.answer": "Відповісти", "calls.mine": "ваш дзвінок",
  "calls.active": "Поточний дзвінок", "calls.line": "лінія {l}",
  "calls.loc": "{kind} · ±{r} м · {t}", "calls.noloc": "Місцеположення абонента невідоме",
  "calls.nearby": "Відкриті події поруч (можливий дублікат)", "calls.nearby.none": "Схожих відкритих подій немає",
  "calls.nearby.samenumber": "той самий номер", "calls.nearby.m": "{m} м",
  "calls.attach": "Додати як ще одного заявника", "calls.attached": "Дзвінок додано до {ref}",
  "calls.outcome": "Чим був дзвінок", "calls.outcome.now": "Результат: {o}",
  "outcome.new_incident": "нова подія", "outcome.additional_caller": "ще один заявник",
  "outcome.information": "довідка", "outcome.prank": "хибний / образливий", "outcome.wrong_number": "помилка номера",
  "outcome.silent": "мовчазний / обірвався", "outcome.transferred": "переадресовано",
  "calls.transfer.to": "Куди переадресовано (напр. 103)", "calls.close": "Закрити дзвінок",
  "calls.close.refused": "Не можна закрити: {d}", "calls.closed": "Дзвінок закрито",
  "calls.finish.first": "Спершу вкажіть результат поточного дзвінка",
  "calls.callbacks": "Передзвонити (пропущені)", "calls.callbacks.none": "Пропущених немає",
  "calls.cb.done": "Додзвонився", "calls.cb.failed": "Не відповідає", "calls.cb.missed": "пропущений о {t}",
  "calls.sms.sent": "SMS надіслано", "calls.sms.skipped": "без SMS: {w}",
});
Object.assign(I18N.en, {
  "tab.calls": "Calls",
  "calls.incoming": "Incoming calls", "calls.none": "No calls",
  "calls.ringing": "ringing", "calls.answered": "on the line", "calls.ended": "hung up",
  "calls.waiting": "waiting {w}", "calls.talking": "answered by {op} after {w} · talking {d}",
  "calls.anon": "number withheld", "calls.answer": "Answer", "calls.mine": "your call",
  "calls.active": "Current call", "calls.line": "line {l}",
  "calls.loc": "{kind} · ±{r} m · {t}", "calls.noloc": "Caller location unknown",
  "calls.nearby": "Open incidents nearby (possible duplicate)", "calls.nearby.none": "No similar open incidents",
  "calls.nearby.samenumber": "same number", "calls.nearby.m": "{m} m",
  "calls.attach": "Attach as additional caller", "calls.attached": "Call attached to {ref}",
  "calls.outcome": "What the call was", "calls.outcome.now": "Outcome: {o}",
  "outcome.new_incident": "new incident", "outcome.additional_caller": "additional caller",
  "outcome.information": "information", "outcome.prank": "prank / abusive", "outcome.wrong_number": "wrong number",
  "outcome.silent": "silent / dropped", "outcome.transferred": "transferred",
  "calls.transfer.to": "Transferred to (e.g. 103)", "calls.close": "Close call",
  "calls.close.refused": "Cannot close: {d}", "calls.closed": "Call closed",
  "calls.finish.first": "Record the outcome of the current call first",
  "calls.callbacks": "Call back (missed)", "calls.callbacks.none": "No missed calls",
  "calls.cb.done": "Reached", "calls.cb.failed": "No answer", "calls.cb.missed": "missed at {t}",
  "calls.sms.sent": "SMS sent", "calls.sms.skipped": "no SMS: {w}",
});
(function () {
  const gd = window.gd;
  const C = (gd.calls = {
    items: [], active: null, callbacks: [], nearby: [], timer: null, ticks: 0, polls: 0, pushes: 0,
    layer: null, amlPoint: null, amlCircle: null, shownLocationId: null, lastError: null,
  });
  const ROLES = ["call_taker", "dispatcher", "supervisor", "admin"];
  // Outcomes with a button of their own; new_incident comes from registering the form,
  // additional_caller from the duplicate list.
  const BUTTONS = ["information", "prank", "wrong_number", "silent", "transferred"];
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const ui = () => gd.ui;
  const esc = (s) => ui().esc(s);
  const secs = (iso) => (Date.now() - Date.parse(iso)) / 1000;
  const mmss = (s) => { s = Math.max(0, Math.round(s)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };

  function start() {
    if (!gd.user || !ROLES.includes(gd.user.role)) return;
    $('[data-tab="calls"]').hidden = false;
    if (gd.user.role === "call_taker") ui().switchTab("calls");
    if (!C.layer) C.layer = L.layerGroup().addTo(gd.map);
    load();
    tick();
  }
  function stop() {
    clearTimeout(C.timer); C.timer = null; C.fed = false;
    C.active = null; C.items = []; C.callbacks = [];
    if (C.layer) C.layer.clearLayers();
  }

  // --- the list: read once, then kept by the live feed's pushes ---------------------------------
  const live = () => gd.ws && gd.ws.readyState === WebSocket.OPEN && C.fed;
  async function load() {
    try {
      const data = await ui().api("GET", "/api/calls?state=ringing,answered,ended&limit=200");
      // A push that raced the read and is newer than what it gave is kept.
      const seen = new Map(C.items.map((c) => [c.id, c]));
      C.items = data.items.map((c) => { const s = seen.get(c.id); return s && s.version > c.version ? s : c; });
      C.polls += 1; C.lastError = null;
      await adoptActive();
      await loadCallbacks();
    } catch (e) { C.lastError = e.message; }
    render();
  }
  // Every second: redraw the waiting times; read the list only while the live feed is down.
  async function tick() {
    clearTimeout(C.timer);
    if (!gd.token) return;
    C.ticks += 1;
    if (!live() && C.ticks % 5 === 0) await load();
    else render();
    C.timer = setTimeout(tick, 1000);
  }
  const LISTED = ["ringing", "answered", "ended"];
  let callbacksDue = null;
  function onPush(calls) {
    C.pushes += 1;
    const byId = new Map(C.items.map((c) => [c.id, c]));
    for (const c of calls) {
      const had = byId.get(c.id);
      if (had && had.version > c.version) continue;
      if (LISTED.includes(c.state)) byId.set(c.id, c); else byId.delete(c.id);
      if (C.active && C.active.id === c.id) {
        if (c.state === "closed") afterChange(c, true);
        else { C.active = c; showLocation(c.location); }
      }
      if (c.state === "abandoned" && !callbacksDue) {  // a new callback, or one just done
        callbacksDue = setTimeout(async () => { callbacksDue = null; await loadCallbacks(); render(); }, 200);
      }
    }
    C.items = Array.from(byId.values()).sort((a, b) => b.id - a.id).slice(0, 200);
    if (!C.active) adoptActive();
    render();
  }
  document.addEventListener("gd:live", (ev) => {
    const msg = ev.detail;
    if (!gd.user || !ROLES.includes(gd.user.role)) return;
    if (msg.type === "snapshot") { C.fed = true; load(); }  // (re)connected: read what was missed
    else if (msg.type === "calls") onPush(msg.calls);
  });
  // The current call is the one this call-taker answered and has not closed: after a reload too.
  async function adoptActive() {
    const mine = C.items.filter((c) => c.operator === gd.user.username && c.state !== "ringing" && !c.outcome);
    if (C.active) {
      // Not in the list any more: closed (the caller hung up after the outcome) or taken over.
      const now = C.items.find((c) => c.id === C.active.id) || await ui().api("GET", "/api/calls/" + C.active.id);
      if (now.state === "closed") { afterChange(now, true); return; }
      C.active = now; showLocation(now.location);
      return;
    }
    if (mine.length) activate(mine[mine.length - 1], false);
  }
  async function loadCallbacks() {
    try { C.callbacks = (await ui().api("GET", "/api/calls/callbacks")).items; } catch (e) { /* kept */ }
  }

  // --- the incoming list -----------------------------------------------------------------------
  function callLi(c) {
    const who = c.caller_phone ? esc(c.caller_phone) : '<span class="muted">' + esc(t("calls.anon")) + "</span>";
    let sub;
    if (c.state === "ringing") sub = '<span class="wait" data-testid="call-wait">' + esc(t("calls.waiting", { w: mmss(secs(c.ring_at)) })) + "</span>";
    else sub = esc(t("calls.talking", { op: c.operator || "?", w: mmss((Date.parse(c.answered_at) - Date.parse(c.ring_at)) / 1000),
                                        d: mmss(secs(c.answered_at)) }));
    const mine = C.active && C.active.id === c.id;
    return '<li class="call call-' + esc(c.state) + (mine ? " mine" : "") + '" data-testid="incoming-call" data-id="' + c.id +
      '" data-state="' + esc(c.state) + '"><span class="title">' + who + '</span> <span class="cst cst-' + esc(c.state) + '">' +
      esc(t("calls." + c.state)) + "</span>" + (c.location ? ' <span class="badge ok" title="' + esc(c.location.kind) + '">' +
      esc(c.location.kind.startsWith("aml") ? "AML" : "PIDF") + "</span>" : "") +
      '<div class="sub">' + esc(t("calls.line", { l: c.line })) + " · " + sub + (mine ? " · " + esc(t("calls.mine")) : "") + "</div>" +
      (c.state === "ringing" ? '<button type="button" class="primary answer" data-testid="call-answer" data-id="' + c.id + '">' +
        esc(t("calls.answer")) + "</button>" : "") + "</li>";
  }
  function render() {
    const ringing = C.items.filter((c) => c.state === "ringing").sort((a, b) => Date.parse(a.ring_at) - Date.parse(b.ring_at));
    const others = C.items.filter((c) => c.state !== "ringing");
    $("#calls-list").innerHTML = ringing.concat(others).map(callLi).join("");
    $("#calls-empty").hidden = C.items.length > 0;
    $("#calls-count").textContent = ringing.length;
    $("#calls-count").classList.toggle("ringing", ringing.length > 0);
    $("#callbacks").innerHTML = C.callbacks.map((cb) => '<li data-testid="callback-item" data-id="' + cb.id + '"><span class="title">' +
      esc(cb.phone || t("calls.anon")) + '</span><div class="sub">' + esc(t("calls.cb.missed", { t: ui().fmtTime(cb.ring_at) })) + " · " +
      esc(cb.sms_id ? t("calls.sms.sent") : t("calls.sms.skipped", { w: cb.sms_skipped || "?" })) + '</div><div class="actions">' +
      '<button type="button" data-cb="done" data-testid="callback-done">' + esc(t("calls.cb.done")) + "</button>" +
      '<button type="button" data-cb="failed" data-testid="callback-failed">' + esc(t("calls.cb.failed")) + "</button></div></li>").join("");
    $("#callbacks-empty").hidden = C.callbacks.length > 0;
    renderActive();
  }

  // --- answering -------------------------------------------------------------------------------
  async function answer(id) {
    if (C.active && !C.active.outcome) { flash(t("calls.finish.first"), "error"); ui().switchTab("newcall"); return; }
    try {
      const call = await ui().api("POST", "/api/calls/" + id + "/answer");
      activate(call, true);
    } catch (e) { $("#calls-error").textContent = t("err.generic", { d: e.message }); }
  }
  function activate(call, fresh) {
    const i = C.items.findIndex((c) => c.id === call.id);
    if (i >= 0) C.items[i] = call;
    C.active = call; C.nearby = []; C.shownLocationId = null; C.formPointFromCall = false; C.categoryTouched = false;
    ui().switchTab("newcall");
    const f = $("#newcall");
    if (fresh) {
      f.reset();
      $("#call-result").textContent = "";
    }
    if (call.caller_phone) f.caller_phone.value = call.caller_phone;
    showLocation(call.location);
    loadNearby();
    render();
  }
  // The caller's newest location: a point, its accuracy circle, its fix time; it prefills the
  // form's place unless the call-taker has put the point elsewhere.
  function showLocation(loc) {
    if (!loc || loc.lat === null || loc.id === C.shownLocationId) return;
    const first = C.shownLocationId === null;
    C.shownLocationId = loc.id;
    C.layer.clearLayers();
    const when = ui().fmtTime(loc.fix_at || loc.received_at);
    const label = t("calls.loc", { kind: loc.kind.toUpperCase(), r: loc.radius_m === null ? "?" : Math.round(loc.radius_m), t: when });
    C.amlCircle = loc.radius_m ? L.circle([loc.lat, loc.lng], { radius: loc.radius_m, color: "#d81b60", weight: 2, fillOpacity: 0.12, interactive: false }).addTo(C.layer) : null;
    C.amlPoint = L.circleMarker([loc.lat, loc.lng], { radius: 6, color: "#fff", weight: 2, fillColor: "#d81b60", fillOpacity: 1 })
      .bindTooltip(esc(label), { permanent: true, direction: "top", offset: [0, -6], className: "aml-label" }).addTo(C.layer);
    C.location = loc;
    const p = gd.callPoint;
    if (first || C.formPointFromCall || !p) {
      ui().setCallPoint(loc.lat, loc.lng);
      C.formPointFromCall = true;
    }
    if (first) {
      if (C.amlCircle) gd.map.fitBounds(C.amlCircle.getBounds(), { maxZoom: 17 });
      else gd.map.setView([loc.lat, loc.lng], Math.max(gd.map.getZoom(), 16));
    }
    if (!first) loadNearby();
  }
  async function loadNearby() {
    const c = C.active;
    if (!c) return;
    const q = new URLSearchParams();
    const p = gd.callPoint;
    if (p) { q.set("lat", p.lat); q.set("lng", p.lng); }
    const cat = $('#newcall [name="category"]').value;
    if (cat && C.categoryTouched) q.set("category", cat);
    try {
      const data = await ui().api("GET", "/api/calls/" + c.id + "/nearby?" + q);
      if (!C.active || C.active.id !== c.id) return;
      C.nearby = data.items;
    } catch (e) { C.nearby = []; }
    renderActive();
  }

  // --- the current call: location, duplicates, outcome, close ----------------------------------
  function renderActive() {
    const box = $("#active-call");
    const c = C.active;
    box.hidden = !c;
    if (!c) return;
    const loc = c.location;
    $("#active-call-head").innerHTML = '<span class="title" data-testid="active-call-phone">' + esc(c.caller_phone || t("calls.anon")) + "</span> " +
      '<span class="cst cst-' + esc(c.state) + '" data-testid="active-call-state">' + esc(t("calls." + (c.state === "closed" ? "ended" : c.state))) + "</span>" +
      '<div class="sub">' + esc(t("calls.line", { l: c.line })) + " · " + esc(ui().fmtTime(c.ring_at)) + "</div>" +
      '<div class="sub" data-testid="active-call-location">' + esc(loc && loc.lat !== null
        ? t("calls.loc", { kind: loc.kind.toUpperCase(), r: loc.radius_m === null ? "?" : Math.round(loc.radius_m), t: ui().fmtTime(loc.fix_at || loc.received_at) })
        : t("calls.noloc")) + "</div>";
    $("#nearby").innerHTML = C.nearby.length ? C.nearby.map((n) => '<li data-testid="nearby-item" data-id="' + n.id + '"><span class="title">' +
      esc(n.reference) + "</span> " + '<span class="st st-' + esc(n.status) + '">' + esc(t("status." + n.status)) + "</span>" +
      '<div class="sub">' + esc(n.category) + " · " + esc(ui().fmtTime(n.received_at)) +
      (n.distance_m !== null ? " · " + esc(t("calls.nearby.m", { m: Math.round(n.distance_m) })) : "") +
      (n.same_number ? ' · <b>' + esc(t("calls.nearby.samenumber")) + "</b>" : "") + (n.address ? "<br>" + esc(n.address) : "") + "</div>" +
      '<button type="button" data-attach="' + n.id + '" data-ref="' + esc(n.reference) + '" data-testid="nearby-attach">' + esc(t("calls.attach")) + "</button></li>").join("")
      : '<li class="muted plain">' + esc(t("calls.nearby.none")) + "</li>";
    $("#outcome-now").textContent = c.outcome ? t("calls.outcome.now", { o: t("outcome." + c.outcome) }) : "";
    $("#outcome-now").dataset.outcome = c.outcome || "";
    $$("#outcome-buttons button").forEach((b) => b.classList.toggle("sel", b.dataset.outcome === c.outcome));
  }
  function flash(text, cls) { const el = $("#outcome-result"); el.textContent = text; el.className = cls || ""; }
  async function setOutcome(outcome, extra) {
    const c = C.active;
    if (!c) return null;
    try {
      const call = await ui().api("POST", "/api/calls/" + c.id + "/outcome", Object.assign({ outcome }, extra || {}));
      flash(t("calls.outcome.now", { o: t("outcome." + outcome) }), "ok");
      afterChange(call);
      return call;
    } catch (e) { flash(t("err.generic", { d: e.message }), "error"); return null; }
  }
  async function closeCall() {
    const c = C.active;
    if (!c) return;
    try {
      const call = await ui().api("POST", "/api/calls/" + c.id + "/close");
      flash(t("calls.closed"), "ok");
      afterChange(call);
    } catch (e) {
      flash(t("calls.close.refused", { d: e.message }), "error");
    }
  }
  // A closed call leaves the screen; one with an outcome but still on the line stays until the
  // caller hangs up (then the phone system's report closes it) or the call-taker closes it.
  function afterChange(call, fromPoll) {
    if (call.state === "closed") {
      C.active = null; C.location = null; C.shownLocationId = null; C.layer.clearLayers();
      C.amlPoint = C.amlCircle = null;
    } else C.active = call;
    if (!fromPoll) {  // this screen's own change: shown now, not when the feed brings it back
      const i = C.items.findIndex((c) => c.id === call.id);
      if (i >= 0) { if (LISTED.includes(call.state)) C.items[i] = call; else C.items.splice(i, 1); }
      render();
    }
  }
  async function attach(id, ref) {
    const call = await setOutcome("additional_caller", { incident_id: id });
    if (!call) return;
    flash(t("calls.attached", { ref }), "ok");
    const f = $("#newcall");
    f.reset(); gd.callPoint = null; if (gd.callMarker) { gd.map.removeLayer(gd.callMarker); gd.callMarker = null; }
    $("#call-where").textContent = t("call.clickmap");
  }
  // Registering the form while a call is on the line is that call's outcome: a new incident.
  async function onRegistered(inc) {
    if (!C.active || C.active.outcome || inc.id === undefined) return;
    await setOutcome("new_incident", { incident_id: inc.id });
  }
  async function callbackDone(id, status) {
    try { await ui().api("POST", "/api/calls/callbacks/" + id, { status }); } catch (e) { $("#calls-error").textContent = t("err.generic", { d: e.message }); }
    await loadCallbacks(); render();
  }

  // --- wiring ----------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", () => {
    $("#outcome-buttons").innerHTML = BUTTONS.map((o) => '<button type="button" data-outcome="' + o + '" data-testid="outcome-' + o + '">' +
      '<span data-i18n="outcome.' + o + '"></span></button>').join("");
    applyI18n($("#active-call"));
    $("#calls-list").onclick = (ev) => {
      const b = ev.target.closest("button.answer");
      if (b) { answer(Number(b.dataset.id)); return; }
      const li = ev.target.closest("li[data-id]");
      if (li && C.active && Number(li.dataset.id) === C.active.id) ui().switchTab("newcall");
    };
    $("#callbacks").onclick = (ev) => {
      const b = ev.target.closest("button[data-cb]");
      const li = ev.target.closest("li[data-id]");
      if (b && li) callbackDone(Number(li.dataset.id), b.dataset.cb);
    };
    $("#nearby").onclick = (ev) => { const b = ev.target.closest("button[data-attach]"); if (b) attach(Number(b.dataset.attach), b.dataset.ref); };
    $("#outcome-buttons").onclick = (ev) => {
      const b = ev.target.closest("button[data-outcome]");
      if (!b) return;
      if (b.dataset.outcome === "transferred") {
        const to = $("#transfer-to").value.trim();
        setOutcome("transferred", to ? { transferred_to: to } : {});
      } else setOutcome(b.dataset.outcome);
    };
    $("#call-close").onclick = closeCall;
    $('#newcall [name="category"]').addEventListener("change", () => { C.categoryTouched = true; loadNearby(); });
  });
  document.addEventListener("gd:call-point", () => { C.formPointFromCall = false; loadNearby(); });
  document.addEventListener("gd:started", start);
  document.addEventListener("gd:logout", stop);
  document.addEventListener("gd:lang", () => { applyI18n($("#active-call")); render(); });
  document.addEventListener("gd:incident-registered", (ev) => onRegistered(ev.detail));
})();
