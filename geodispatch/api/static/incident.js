/* Every incident action of the dispatcher console, on the incident panel: close with a
 * disposition (the centre's local codes and the APCO ANS 1.111.2 list, from the server), cancel,
 * mark as duplicate of / merge into (with the open incidents nearby as suggestions), reclassify
 * with a mandatory reason, reopen, notes, the lead crew and the per-incident "do not SMS"; and
 * the readable timeline (who, when, from -> to, reason, crew, linked incident; no bare codes).
 * Everything goes through the existing API; app.js renders the panel and fires
 * "gd:incident-panel", this file fills #incident-actions. State: window.gd.incidentUi. */
"use strict";
Object.assign(I18N.uk, {
  "act.title": "Дії", "act.close": "Закрити", "act.cancel": "Скасувати", "act.merge": "Дублікат / об'єднати",
  "act.reclassify": "Змінити категорію", "act.reopen": "Відновити", "act.note": "Примітка",
  "act.lead": "Ведучий екіпаж", "act.sms.off": "Не надсилати SMS", "act.sms.on": "Дозволити SMS",
  "act.sms.is_off": "SMS заявнику вимкнено", "act.confirm": "Підтвердити", "act.back": "Назад",
  "act.reason": "Причина (обов'язково)", "act.reason.optional": "Причина (необов'язково)",
  "act.disposition": "Результат (код закриття)", "act.disposition.local": "Коди центру",
  "act.disposition.apco": "APCO ANS 1.111.2", "act.disposition.pick": "— оберіть результат —",
  "act.closenote": "Примітка до закриття", "act.category": "Нова категорія", "act.priority": "Пріоритет",
  "act.priority.keep": "без змін", "act.merge.into": "Основна подія", "act.merge.ref": "або номер події",
  "act.merge.kind": "Як", "act.merge.duplicate": "дублікат (той самий виклик)", "act.merge.merge": "об'єднати (та сама подія)",
  "act.merge.none": "Відкритих подій поруч немає", "act.merge.samenumber": "той самий номер",
  "act.merge.loading": "Шукаю відкриті події поруч…", "act.note.text": "Текст примітки",
  "act.note.save": "Зберегти примітку", "act.lead.crew": "Екіпаж", "act.lead.none": "На події немає інших екіпажів",
  "act.need.reason": "Вкажіть причину", "act.need.disposition": "Оберіть результат",
  "act.need.target": "Оберіть основну подію або введіть її номер", "act.need.text": "Напишіть текст примітки",
  "act.need.category": "Оберіть іншу категорію або пріоритет",
  "act.done.close": "Закрито: {d}", "act.done.cancel": "Скасовано", "act.done.merge": "Пов'язано з {ref}",
  "act.done.reclassify": "Категорію змінено", "act.done.reopen": "Відновлено", "act.done.note": "Примітку додано",
  "act.done.lead": "Ведучий: {cs}", "act.done.sms.off": "SMS вимкнено", "act.done.sms.on": "SMS увімкнено",
  "act.failed": "Не вдалося: {d}", "act.m": "{m} м", "act.notes": "Примітки",
  "act.linked": "Пов'язано з {ref}", "act.open.linked": "відкрити",
  "ev.registered": "Зареєстровано", "ev.located": "Місце визначено", "ev.rezoned": "Змінено зону",
  "ev.reclassified": "Змінено категорію", "ev.status": "Статус події", "ev.recommended": "Підібрано екіпажі",
  "ev.assigned": "Призначено екіпаж", "ev.crew_status": "Статус екіпажу", "ev.late_crew_status": "Запізнілий статус екіпажу",
  "ev.assignment_sent": "Завдання надіслано екіпажу", "ev.assignment_delivered": "Завдання отримано екіпажем",
  "ev.assignment_acknowledged": "Завдання підтверджено екіпажем", "ev.lead_changed": "Змінено ведучий екіпаж",
  "ev.cancelled": "Скасовано", "ev.duplicate_of": "Позначено дублікатом", "ev.merged": "Об'єднано з іншою подією",
  "ev.absorbed": "Приєднано подію", "ev.closed": "Закрито", "ev.reopened": "Відновлено", "ev.note": "Примітка",
  "ev.sms_disabled": "SMS заявнику вимкнено", "ev.sms_enabled": "SMS заявнику увімкнено",
  "ev.sms_sent": "SMS надіслано", "ev.sms_failed": "SMS не надіслано", "ev.sms_retry": "SMS: повторна спроба",
  "ev.sms_pending": "SMS: повторна спроба", "ev.sms_suppressed": "SMS не надсилалось (відмова)",
  "ev.amended": "Зміна даних", "ev.imported": "Імпортовано", "ev.eido_imported": "Отримано від іншого центру",
  "ev.other": "Подія", "ev.reason": "причина", "ev.by": "хто", "ev.lead": "ведучий",
  "ev.recommended.yes": "рекомендований", "ev.override": "поза рекомендацією", "ev.released": "звільнено екіпажів: {n}",
  "ev.ranked": "{n} екіпаж(ів)", "ev.was": "було: {s}", "ev.sms.tpl.registered": "реєстрація",
  "ev.sms.tpl.assigned": "екіпаж у дорозі", "ev.sms.tpl.arrived": "екіпаж прибув", "ev.sms.tpl.closed": "закриття",
  "ev.sms.tpl.cancelled": "скасування", "ev.sms.tpl.merged": "об'єднання",
  "ev.suppressed": "скасовано повідомлень у черзі: {n}", "ev.new": "новий",
  "actor.system": "система", "actor.sms": "SMS-шлюз", "actor.delivery": "доставка завдань",
  "actor.unit": "екіпаж {cs}", "actor.gps": "GPS", "actor.crewapp": "застосунок екіпажу",
  "actor.terminal": "термінал екіпажу",
});
Object.assign(I18N.en, {
  "act.title": "Actions", "act.close": "Close", "act.cancel": "Cancel", "act.merge": "Duplicate / merge",
  "act.reclassify": "Reclassify", "act.reopen": "Reopen", "act.note": "Note",
  "act.lead": "Lead crew", "act.sms.off": "Do not SMS", "act.sms.on": "Allow SMS",
  "act.sms.is_off": "SMS to the caller is off", "act.confirm": "Confirm", "act.back": "Back",
  "act.reason": "Reason (required)", "act.reason.optional": "Reason (optional)",
  "act.disposition": "Disposition", "act.disposition.local": "Centre's codes",
  "act.disposition.apco": "APCO ANS 1.111.2", "act.disposition.pick": "— choose a disposition —",
  "act.closenote": "Closing note", "act.category": "New category", "act.priority": "Priority",
  "act.priority.keep": "unchanged", "act.merge.into": "Master incident", "act.merge.ref": "or its reference",
  "act.merge.kind": "As", "act.merge.duplicate": "duplicate (same call)", "act.merge.merge": "merge (same event)",
  "act.merge.none": "No open incidents nearby", "act.merge.samenumber": "same number",
  "act.merge.loading": "Looking for open incidents nearby…", "act.note.text": "Note",
  "act.note.save": "Save note", "act.lead.crew": "Crew", "act.lead.none": "No other crew on this incident",
  "act.need.reason": "Give a reason", "act.need.disposition": "Choose a disposition",
  "act.need.target": "Choose the master incident or type its reference", "act.need.text": "Write the note",
  "act.need.category": "Choose another category or priority",
  "act.done.close": "Closed: {d}", "act.done.cancel": "Cancelled", "act.done.merge": "Linked to {ref}",
  "act.done.reclassify": "Reclassified", "act.done.reopen": "Reopened", "act.done.note": "Note added",
  "act.done.lead": "Lead: {cs}", "act.done.sms.off": "SMS off", "act.done.sms.on": "SMS on",
  "act.failed": "Failed: {d}", "act.m": "{m} m", "act.notes": "Notes",
  "act.linked": "Linked to {ref}", "act.open.linked": "open",
  "ev.registered": "Registered", "ev.located": "Location set", "ev.rezoned": "Zone changed",
  "ev.reclassified": "Reclassified", "ev.status": "Incident status", "ev.recommended": "Crews recommended",
  "ev.assigned": "Crew assigned", "ev.crew_status": "Crew status", "ev.late_crew_status": "Late crew status",
  "ev.assignment_sent": "Assignment sent to the crew", "ev.assignment_delivered": "Assignment received by the crew",
  "ev.assignment_acknowledged": "Assignment acknowledged by the crew", "ev.lead_changed": "Lead crew changed",
  "ev.cancelled": "Cancelled", "ev.duplicate_of": "Marked as duplicate", "ev.merged": "Merged into another incident",
  "ev.absorbed": "Incident attached", "ev.closed": "Closed", "ev.reopened": "Reopened", "ev.note": "Note",
  "ev.sms_disabled": "SMS to the caller switched off", "ev.sms_enabled": "SMS to the caller switched on",
  "ev.sms_sent": "SMS sent", "ev.sms_failed": "SMS failed", "ev.sms_retry": "SMS: retrying",
  "ev.sms_pending": "SMS: retrying", "ev.sms_suppressed": "SMS not sent (opted out)",
  "ev.amended": "Data amended", "ev.imported": "Imported", "ev.eido_imported": "Received from another centre",
  "ev.other": "Event", "ev.reason": "reason", "ev.by": "by", "ev.lead": "lead",
  "ev.recommended.yes": "recommended", "ev.override": "override", "ev.released": "crews released: {n}",
  "ev.ranked": "{n} crew(s)", "ev.was": "was: {s}", "ev.sms.tpl.registered": "registration",
  "ev.sms.tpl.assigned": "crew on the way", "ev.sms.tpl.arrived": "crew arrived", "ev.sms.tpl.closed": "closure",
  "ev.sms.tpl.cancelled": "cancellation", "ev.sms.tpl.merged": "merge",
  "ev.suppressed": "queued messages cancelled: {n}", "ev.new": "new",
  "actor.system": "system", "actor.sms": "SMS gateway", "actor.delivery": "assignment delivery",
  "actor.unit": "crew {cs}", "actor.gps": "GPS", "actor.crewapp": "crew app",
  "actor.terminal": "crew terminal",
});
(function () {
  const gd = window.gd;
  const OPEN = ["registered", "queued", "assigned", "en_route", "on_scene", "cleared"];
  const ACTIVE = ["dispatched", "acknowledged", "en_route", "on_scene"];
  const OPS = ["dispatcher", "supervisor", "admin"];
  const INTAKE = ["call_taker", "dispatcher", "supervisor", "admin"];
  const NOTES = ["call_taker", "dispatcher", "supervisor"];
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const ui = () => gd.ui;
  const U = (gd.incidentUi = {
    dispositions: null, // [{code, apco, apco_name, local, label}]
    open: null,         // {id, action, values}: the form being filled, kept across re-renders
    nearby: {},         // incident id -> items
    last: null,         // {id, incident, detail, events} of the rendered panel
    result: null,       // {id, text, ok}
    timeline, actionsFor,
  });

  // --- the readable timeline -------------------------------------------------------------------
  const statusName = (s) => (s ? t("status." + s) : "—");
  const catName = (c) => (c ? ui().categoryLabel(c) : "—");
  function actorName(a) {
    if (!a) return "—";
    if (a.startsWith("unit:")) return t("actor.unit", { cs: a.slice(5) });
    if (a.startsWith("dispatcher:")) return a.slice(11);
    if (a.startsWith("crew:")) return t("actor.crewapp");
    if (a.startsWith("mqtt:")) return t("actor.terminal");
    if (["system", "sms", "delivery", "gps"].includes(a)) return t("actor." + a);
    return a;
  }
  function dispositionText(d) {
    if (!d || !d.disposition) return "";
    const list = U.dispositions || [];
    const local = d.local_disposition && list.find((x) => x.local && x.code === d.local_disposition);
    const apco = list.find((x) => !x.local && x.code === d.disposition);
    const name = d.disposition_name || (apco && apco.apco_name) || "";
    const head = local ? (local.label[LANG] || local.label.en || local.code) + " — " : "";
    return head + "APCO " + d.disposition + (name ? " " + name : "");
  }
  function linkTo(id, ref) {
    if (!id && !ref) return "";
    return '<a href="#" class="inc-link" data-testid="timeline-link" data-id="' + esc(id || "") + '">' + esc(ref || "#" + id) + "</a>";
  }
  function arrow(a, b) { return esc(a) + " → " + esc(b); }
  function describe(e) {
    const d = e.data || {};
    const parts = [];
    const reason = d.reason || d.override_reason || d.cause_reason;
    switch (e.kind) {
      case "registered": if (d.category) parts.push(esc(catName(d.category))); break;
      case "reclassified":
        parts.push(arrow(catName(d.from), catName(d.to)));
        if (d.set && d.set.priority) parts.push(esc(t("inc.priority")) + " " + esc(d.set.priority));
        break;
      case "status": parts.push(arrow(statusName(d.from), statusName(d.to))); break;
      case "assigned":
        parts.push("<b>" + esc(d.call_sign || "#" + d.unit_id) + "</b>");
        parts.push(esc(d.recommended ? t("ev.recommended.yes") : t("ev.override")));
        if (d.lead) parts.push(esc(t("ev.lead")));
        break;
      case "crew_status": case "late_crew_status":
        parts.push("<b>" + esc(d.call_sign || "#" + d.unit_id) + "</b> " +
          (d.from ? arrow(statusName(d.from), statusName(d.to || d.status)) : esc(statusName(d.to || d.status))));
        break;
      case "assignment_sent": case "assignment_delivered": case "assignment_acknowledged":
        if (d.call_sign) parts.push("<b>" + esc(d.call_sign) + "</b>");
        break;
      case "lead_changed":
        parts.push(d.previous_call_sign ? arrow(d.previous_call_sign, d.call_sign) : "<b>" + esc(d.call_sign) + "</b>");
        break;
      case "recommended": if (d.ranked) parts.push(esc(t("ev.ranked", { n: d.ranked.length }))); break;
      case "duplicate_of": case "merged": parts.push(linkTo(d.master_id, d.master_reference)); break;
      case "absorbed": parts.push(linkTo(d.duplicate_id, d.duplicate_reference)); break;
      case "closed":
        parts.push(esc(dispositionText(d)));
        if (d.note) parts.push("«" + esc(d.note) + "»");
        break;
      case "reopened": if (d.previous_status) parts.push(esc(t("ev.was", { s: statusName(d.previous_status) }))); break;
      case "note": parts.push('<span class="note-text">' + esc(d.note || d.text || "") + "</span>"); break;
      case "sms_sent": case "sms_failed": case "sms_suppressed": case "sms_pending": case "sms_retry":
        if (d.template) parts.push(esc(t("ev.sms.tpl." + d.template)));
        break;
      case "sms_disabled": if (d.suppressed) parts.push(esc(t("ev.suppressed", { n: d.suppressed }))); break;
      case "located": if (d.address || d.address_resolved) parts.push(esc(d.address_resolved || d.address)); break;
      default: break;
    }
    if (["cancelled", "duplicate_of", "merged", "closed"].includes(e.kind) && d.released_units && d.released_units.length) {
      parts.push(esc(t("ev.released", { n: d.released_units.length })));
    }
    if (reason && e.kind !== "amended") parts.push(esc(t("ev.reason")) + ": «" + esc(reason) + "»");
    return parts;
  }
  function kindName(kind) {
    const key = "ev." + kind;
    const s = t(key);
    return s === key ? t("ev.other") + " (" + kind.replace(/_/g, " ") + ")" : s;
  }
  function timeline(events) {
    return (events || []).slice().reverse().map((e) => {
      const at = typeof e.at === "string" ? Date.parse(e.at) / 1000 : e.at;
      const parts = describe(e);
      return '<li data-testid="timeline-item" data-kind="' + esc(e.kind) + '"><span class="when">' + ui().fmtTime(at) +
        '</span> <b class="what">' + esc(kindName(e.kind)) + "</b>" + (parts.length ? " · " + parts.join(" · ") : "") +
        ' <span class="who">· ' + esc(actorName(e.actor)) + "</span></li>";
    }).join("");
  }

  // --- the actions -----------------------------------------------------------------------------
  function actionsFor(inc, role) {
    const s = inc.status;
    const out = [];
    const ops = OPS.includes(role);
    if (OPEN.includes(s)) {
      if (ops) out.push("close", "cancel", "merge");
      if (INTAKE.includes(role)) out.push("reclassify");
      if (ops) out.push("lead");
    }
    if (ops && (s === "closed" || s === "cancelled")) out.push("reopen");
    if (NOTES.includes(role)) out.push("note");
    if (INTAKE.includes(role) && (inc.caller_phone || inc.sms_opt_out)) out.push(inc.sms_opt_out ? "sms_on" : "sms_off");
    return out;
  }
  function buttonLabel(a) { return a === "sms_on" ? t("act.sms.on") : a === "sms_off" ? t("act.sms.off") : t("act." + a); }
  function activeCrews(detail) { return ((detail && detail.assignments) || []).filter((a) => ACTIVE.includes(a.status)); }

  function render(ctx) {
    U.last = ctx;
    const box = $("#incident-actions");
    if (!box || !gd.user) return;
    const inc = Object.assign({}, ctx.incident || {}, ctx.detail || {});
    const detail = ctx.detail;
    const acts = detail ? actionsFor(inc, gd.user.role) : [];
    let html = "";
    if (inc.status === "merged" && inc.merged_into_id) {
      const master = gd.incidents[inc.merged_into_id];
      html += '<p class="linked" data-testid="merged-into">' + esc(t("act.linked", { ref: "" })) +
        linkTo(inc.merged_into_id, master && master.reference) + "</p>";
    }
    if (inc.sms_opt_out) html += '<p class="badge warn" data-testid="sms-off">' + esc(t("act.sms.is_off")) + "</p>";
    if (inc.disposition && inc.status === "closed") {
      html += '<p data-testid="incident-disposition">' + esc(t("act.disposition")) + ": " +
        esc(dispositionText({ disposition: inc.disposition, local_disposition: localOf(ctx.events) })) + "</p>";
    }
    if (acts.length) {
      html += "<h3>" + esc(t("act.title")) + '</h3><div class="actions inc-actions">' + acts.map((a) =>
        '<button type="button" data-testid="act-' + a + '" data-act="' + a + '"' +
        (U.open && U.open.id === ctx.id && U.open.action === a ? ' class="primary"' : "") + ">" + esc(buttonLabel(a)) + "</button>").join("") + "</div>";
    }
    html += '<div id="act-form" data-testid="act-form"></div>';
    const res = U.result && U.result.id === ctx.id ? U.result : null;
    html += '<p id="act-result" data-testid="act-result" role="status" class="' + (res && !res.ok ? "error" : "") + '">' + esc(res ? res.text : "") + "</p>";
    const notes = (detail && detail.notes) || [];
    if (notes.length) {
      html += "<h3>" + esc(t("act.notes")) + '</h3><ul class="list notes" data-testid="incident-notes">' + notes.map((n) =>
        "<li>" + '<span class="sub">' + ui().fmtTime(Date.parse(n.at) / 1000) + " · " + esc(actorName(n.actor)) + "</span><div>" + esc(n.text) + "</div></li>").join("") + "</ul>";
    }
    box.innerHTML = html;
    box.querySelectorAll("button[data-act]").forEach((b) => { b.onclick = () => openForm(ctx.id, b.dataset.act); });
    if (U.open && U.open.id === ctx.id && acts.includes(U.open.action)) renderForm();
    else if (U.open && U.open.id !== ctx.id) U.open = null;
  }
  function localOf(events) {
    const closed = (events || []).filter((e) => e.kind === "closed");
    const last = closed[closed.length - 1];
    return last && last.data ? last.data.local_disposition : null;
  }

  function openForm(id, action) {
    U.result = null;
    if (U.open && U.open.id === id && U.open.action === action) { U.open = null; }
    else { U.open = { id, action, values: {} }; }
    if (action === "merge" && U.open) loadNearby(id);
    if (U.last) render(U.last);
    const first = $("#act-form [data-first]");
    if (first) first.focus();
  }
  function field(name, html) { return '<label><span>' + esc(t(name)) + "</span>" + html + "</label>"; }
  function reasonField(optional) {
    return field(optional ? "act.reason.optional" : "act.reason",
      '<textarea data-testid="act-reason" name="reason" rows="2" maxlength="1000"' + (optional ? "" : " data-first") + "></textarea>");
  }
  function dispositionSelect() {
    const list = U.dispositions || [];
    const opt = (d) => '<option value="' + esc(d.code) + '">' + esc(d.local ? (d.label[LANG] || d.label.en || d.code) + " → APCO " + d.apco + " " + d.apco_name
      : d.code + " " + d.apco_name) + "</option>";
    return '<select name="disposition" data-testid="act-disposition" data-first required><option value="">' + esc(t("act.disposition.pick")) + "</option>" +
      '<optgroup label="' + esc(t("act.disposition.local")) + '">' + list.filter((d) => d.local).map(opt).join("") + "</optgroup>" +
      '<optgroup label="' + esc(t("act.disposition.apco")) + '">' + list.filter((d) => !d.local).map(opt).join("") + "</optgroup></select>";
  }
  function nearbyList(id) {
    const items = U.nearby[id];
    if (items === undefined) return '<p class="muted">' + esc(t("act.merge.loading")) + "</p>";
    if (!items.length) return '<p class="muted" data-testid="merge-none">' + esc(t("act.merge.none")) + "</p>";
    return '<ul class="list merge-candidates" data-testid="merge-candidates">' + items.map((n) =>
      '<li><label><input type="radio" name="into" value="' + esc(n.id) + '" data-testid="merge-candidate" data-ref="' + esc(n.reference) + '"> ' +
      ui().prioBadge(n.priority) + " <b>" + esc(n.reference) + "</b> " + ui().stBadge(n.status) + '<div class="sub">' + esc(catName(n.category)) +
      " · " + esc(n.address || "") + (n.distance_m !== null && n.distance_m !== undefined ? " · " + esc(t("act.m", { m: Math.round(n.distance_m) })) : "") +
      (n.same_number ? ' · <span class="badge">' + esc(t("act.merge.samenumber")) + "</span>" : "") + "</div></label></li>").join("") + "</ul>";
  }
  function formHtml(o) {
    const ctx = U.last;
    const inc = Object.assign({}, ctx.incident || {}, ctx.detail || {});
    switch (o.action) {
      case "close":
        return field("act.disposition", dispositionSelect()) +
          field("act.closenote", '<textarea name="note" data-testid="act-closenote" rows="2" maxlength="2000"></textarea>');
      case "cancel": case "reopen": return reasonField(false);
      case "merge":
        return "<h4>" + esc(t("act.merge.into")) + "</h4>" + nearbyList(o.id) +
          field("act.merge.ref", '<input name="into_reference" data-testid="merge-reference" maxlength="32" placeholder="KV-2026-000123">') +
          field("act.merge.kind", '<select name="kind" data-testid="merge-kind"><option value="duplicate">' + esc(t("act.merge.duplicate")) +
            '</option><option value="merge">' + esc(t("act.merge.merge")) + "</option></select>") + reasonField(true);
      case "reclassify":
        return field("act.category", '<select name="category" data-testid="act-category" data-first>' + (gd.categories || []).map((c) =>
          '<option value="' + esc(c.code) + '"' + (c.code === inc.category ? " selected" : "") + ">" + esc(c.label) + (c.priority ? " (" + c.priority + ")" : "") + "</option>").join("") + "</select>") +
          field("act.priority", '<select name="priority" data-testid="act-priority"><option value="">' + esc(t("act.priority.keep")) + "</option>" +
            [1, 2, 3, 4].map((p) => '<option value="' + p + '">' + p + "</option>").join("") + "</select>") + reasonField(false);
      case "note": return field("act.note.text", '<textarea name="text" data-testid="act-text" rows="3" maxlength="2000" data-first></textarea>');
      case "lead": {
        const crews = activeCrews(ctx.detail).filter((a) => !a.is_lead);
        if (!crews.length) return '<p class="muted" data-testid="lead-none">' + esc(t("act.lead.none")) + "</p>";
        return field("act.lead.crew", '<select name="unit_id" data-testid="act-lead-unit" data-first>' + crews.map((a) =>
          '<option value="' + esc(a.unit_id) + '">' + esc(a.call_sign) + " · " + esc(statusName(a.status)) + "</option>").join("") + "</select>");
      }
      case "sms_off": case "sms_on": return reasonField(true);
      default: return "";
    }
  }
  function renderForm() {
    const o = U.open;
    const box = $("#act-form");
    if (!o || !box) return;
    box.innerHTML = '<form class="act-form" data-testid="act-form-' + esc(o.action) + '" novalidate>' + formHtml(o) +
      '<div class="actions"><button type="submit" class="' + (["close", "cancel", "merge"].includes(o.action) ? "danger" : "primary") +
      '" data-testid="act-confirm">' + esc(o.action === "note" ? t("act.note.save") : t("act.confirm")) + '</button>' +
      '<button type="button" data-testid="act-back">' + esc(t("act.back")) + "</button></div></form>";
    const form = box.querySelector("form");
    // Refill what was typed before a live update re-rendered the panel.
    Object.entries(o.values).forEach(([k, v]) => {
      form.querySelectorAll('[name="' + k + '"]').forEach((el) => {
        if (el.type === "radio") el.checked = el.value === v; else el.value = v;
      });
    });
    form.addEventListener("input", () => { o.values = readForm(form); });
    form.addEventListener("change", () => {
      o.values = readForm(form);
      if (o.action === "merge" && o.values.into) form.querySelector('[name="into_reference"]').value = "";
    });
    form.onsubmit = (ev) => { ev.preventDefault(); submit(o, readForm(form)); };
    box.querySelector("[data-testid=act-back]").onclick = () => { U.open = null; render(U.last); };
  }
  function readForm(form) {
    const v = {};
    Array.from(form.elements).forEach((el) => {
      if (!el.name) return;
      if (el.type === "radio") { if (el.checked) v[el.name] = el.value; return; }
      v[el.name] = el.value;
    });
    return v;
  }
  function say(id, text, ok) {
    U.result = { id, text, ok };
    const el = $("#act-result");
    if (el) { el.textContent = text; el.className = ok ? "" : "error"; }
  }
  async function submit(o, v) {
    const id = o.id;
    const api = ui().api;
    const base = "/api/incidents/" + id;
    const reason = (v.reason || "").trim();
    let call = null;
    let done = "";
    switch (o.action) {
      case "close": {
        if (!v.disposition) return say(id, t("act.need.disposition"), false);
        const d = (U.dispositions || []).find((x) => x.code === v.disposition);
        call = () => api("POST", base + "/close", { disposition: v.disposition, note: (v.note || "").trim() });
        done = t("act.done.close", { d: d ? (d.local ? (d.label[LANG] || d.label.en) : d.code + " " + d.apco_name) : v.disposition });
        break;
      }
      case "cancel":
        if (!reason) return say(id, t("act.need.reason"), false);
        call = () => api("POST", base + "/cancel", { reason }); done = t("act.done.cancel"); break;
      case "reopen":
        if (!reason) return say(id, t("act.need.reason"), false);
        call = () => api("POST", base + "/reopen", { reason }); done = t("act.done.reopen"); break;
      case "merge": {
        const ref = (v.into_reference || "").trim();
        if (!v.into && !ref) return say(id, t("act.need.target"), false);
        const body = { duplicate: v.kind !== "merge", reason };
        if (ref) body.into_reference = ref; else body.into_id = Number(v.into);
        const cand = (U.nearby[id] || []).find((n) => String(n.id) === String(v.into));
        call = () => api("POST", base + "/merge", body);
        done = t("act.done.merge", { ref: ref || (cand && cand.reference) || v.into });
        break;
      }
      case "reclassify": {
        const inc = Object.assign({}, U.last.incident || {}, U.last.detail || {});
        if (reason.length < 3) return say(id, t("act.need.reason"), false);
        if (v.category === inc.category && !v.priority) return say(id, t("act.need.category"), false);
        const body = { category: v.category, reason };
        if (v.priority) body.priority = Number(v.priority);
        call = () => api("POST", base + "/reclassify", body); done = t("act.done.reclassify"); break;
      }
      case "note": {
        const text = (v.text || "").trim();
        if (!text) return say(id, t("act.need.text"), false);
        call = () => api("POST", base + "/notes", { text }); done = t("act.done.note"); break;
      }
      case "lead": {
        if (!v.unit_id) return say(id, t("act.lead.none"), false);
        const a = activeCrews(U.last.detail).find((x) => String(x.unit_id) === String(v.unit_id));
        call = () => api("POST", base + "/lead", { unit_id: Number(v.unit_id) }); done = t("act.done.lead", { cs: a ? a.call_sign : v.unit_id }); break;
      }
      case "sms_off": case "sms_on":
        call = () => api("POST", base + "/sms", { enabled: o.action === "sms_on", reason });
        done = t(o.action === "sms_on" ? "act.done.sms.on" : "act.done.sms.off"); break;
      default: return undefined;
    }
    const btn = $("#act-form [data-testid=act-confirm]");
    if (btn) btn.disabled = true;
    try {
      const out = await call();
      U.open = null;
      U.result = { id, text: done, ok: true };
      if (out && out.id === id && out.status) {
        const flat = Object.assign({}, out);
        if (typeof flat.received_at === "string") flat.received_at = Date.parse(flat.received_at) / 1000;
        ui().upsertIncident(Object.assign({}, gd.incidents[id] || {}, flat));
        ui().scheduleRender();
      }
      await ui().loadIncidentDetails(id);
    } catch (e) {
      say(id, t("act.failed", { d: e.message }), false);
      if (btn) btn.disabled = false;
    }
    return undefined;
  }
  async function loadNearby(id) {
    try {
      const data = await ui().api("GET", "/api/incidents/" + id + "/nearby?radius_m=1500");
      U.nearby[id] = data.items || [];
    } catch (e) { U.nearby[id] = []; }
    if (U.open && U.open.id === id && U.open.action === "merge") renderForm();
  }
  async function loadDispositions() {
    try {
      const data = await ui().api("GET", "/api/incidents/dispositions");
      U.dispositions = data.dispositions || [];
    } catch (e) { U.dispositions = []; }
  }

  document.addEventListener("gd:incident-panel", (ev) => {
    if (!U.dispositions) { loadDispositions().then(() => { if (U.last && U.last.id === ev.detail.id) render(U.last); }); }
    render(ev.detail);
  });
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a.inc-link[data-id]");
    if (!a || !a.dataset.id) return;
    ev.preventDefault();
    U.open = null;
    ui().showIncident(Number(a.dataset.id));
  });
})();
