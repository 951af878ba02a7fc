/* Keyboard shortcuts of the dispatcher console, and a focusable queue.
 *
 *   j / ↓   next incident        k / ↑   previous incident      q   to the queue
 *   a       accept the recommended crew                          o   assign another crew
 *   n       add a note           c   close (with a disposition)  ?   this help (Esc closes)
 *   Ctrl+Enter in an action form: confirm it
 *
 * Nothing fires while typing in an input, a text area or a list box (nor with Ctrl/Alt/Meta),
 * so a "j" in a note is a "j". Queue items take focus (Tab, or j/k), Enter opens one; the focus
 * stays on the item (and in an action form, on the same field) when live updates re-draw them. */
"use strict";
(function () {
  const gd = window.gd;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  Object.assign(I18N.uk, {
    "keys.title": "Клавіші", "keys.next": "Наступна подія", "keys.prev": "Попередня подія", "keys.queue": "До черги",
    "keys.open": "Відкрити подію в черзі", "keys.accept": "Призначити рекомендований екіпаж", "keys.other": "Призначити інший екіпаж",
    "keys.note": "Додати примітку", "keys.close": "Закрити подію (з результатом)", "keys.submit": "Підтвердити форму дії",
    "keys.help": "Ця довідка", "keys.esc": "Закрити довідку", "keys.typing": "Поки ви друкуєте в полі, клавіші не діють.",
    "keys.hint": "? — клавіші",
  });
  Object.assign(I18N.en, {
    "keys.title": "Keyboard shortcuts", "keys.next": "Next incident", "keys.prev": "Previous incident", "keys.queue": "Go to the queue",
    "keys.open": "Open the incident in the queue", "keys.accept": "Assign the recommended crew", "keys.other": "Assign another crew",
    "keys.note": "Add a note", "keys.close": "Close the incident (with a disposition)", "keys.submit": "Confirm an action form",
    "keys.help": "This help", "keys.esc": "Close this help", "keys.typing": "Shortcuts do nothing while you type in a field.",
    "keys.hint": "? — shortcuts",
  });
  const SHORTCUTS = [["j / ↓", "keys.next"], ["k / ↑", "keys.prev"], ["q", "keys.queue"], ["Enter", "keys.open"],
    ["a", "keys.accept"], ["o", "keys.other"], ["n", "keys.note"], ["c", "keys.close"],
    ["Ctrl+Enter", "keys.submit"], ["?", "keys.help"], ["Esc", "keys.esc"]];
  const K = (gd.keysUi = { focusId: null, inList: false, fired: [], formField: null });

  const typing = (el) => !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const items = () => $$("#queue li[data-id], #active li[data-id]");
  function focusItem(li) {
    if (!li) return;
    K.focusId = Number(li.dataset.id);
    li.focus();
    li.scrollIntoView({ block: "nearest" });
  }
  function move(step) {
    const list = items();
    if (!list.length) return;
    if (gd.ui && $("#tab-queue").hidden) gd.ui.switchTab("queue");
    const cur = list.findIndex((li) => Number(li.dataset.id) === (K.focusId !== null ? K.focusId : (gd.selected && gd.selected.id)));
    const next = cur < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, cur + step));
    focusItem(list[next]);
    gd.ui.showIncident(Number(list[next].dataset.id));
  }
  function click(sel) { const el = $(sel); if (el && !el.disabled) { el.click(); return true; } return false; }
  function selectedIncident() { return gd.selected && gd.selected.kind === "incident" ? gd.selected.id : null; }
  function action(name) {
    if (!selectedIncident()) return false;
    const b = $('#incident-actions [data-act="' + name + '"]');
    if (!b) return false;
    // The form toggles: a second press must not close what the first opened.
    if (!(gd.incidentUi.open && gd.incidentUi.open.action === name)) b.click();
    const first = $("#act-form [data-first]") || $("#act-form textarea, #act-form select, #act-form input");
    if (first) first.focus();
    return true;
  }
  const ACTIONS = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    q: () => { gd.ui.switchTab("queue"); const li = items().find((x) => Number(x.dataset.id) === K.focusId) || items()[0]; if (li) focusItem(li); },
    a: () => click("#accept-btn"),
    o: () => { if (!click("#override-btn")) return false; const s = $("#override-unit"); if (s) s.focus(); return true; },
    n: () => action("note"),
    c: () => action("close"),
    "?": () => toggleHelp(true),
  };

  // --- the help overlay ------------------------------------------------------------------------
  function toggleHelp(show) {
    let el = $("#keys-help");
    if (!show) { if (el) { el.hidden = true; if (K.beforeHelp && K.beforeHelp.isConnected) K.beforeHelp.focus(); } return; }
    if (!el) {
      el = document.createElement("div");
      el.id = "keys-help"; el.className = "keys-help"; el.dataset.testid = "keys-help";
      el.setAttribute("role", "dialog"); el.setAttribute("aria-modal", "true"); el.tabIndex = -1;
      document.body.appendChild(el);
      el.addEventListener("click", (ev) => { if (ev.target === el) toggleHelp(false); });
    }
    el.innerHTML = '<div class="card"><h2>' + esc(t("keys.title")) + '</h2><table>' + SHORTCUTS.map(([k, d]) =>
      '<tr data-testid="keys-row"><td><kbd>' + esc(k) + "</kbd></td><td>" + esc(t(d)) + "</td></tr>").join("") +
      '</table><p class="hint">' + esc(t("keys.typing")) + "</p></div>";
    K.beforeHelp = document.activeElement;
    el.hidden = false;
    el.focus();
    return true;
  }

  document.addEventListener("keydown", (ev) => {
    if (!gd.user || $("#console").hidden) return;
    const help = $("#keys-help");
    if (help && !help.hidden) {
      if (ev.key === "Escape" || ev.key === "?") { ev.preventDefault(); toggleHelp(false); }
      return;
    }
    const target = ev.target;
    // Ctrl+Enter confirms the open action form (a note's text area keeps Enter for new lines).
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && target.closest && target.closest("#act-form form")) {
      ev.preventDefault(); target.closest("form").requestSubmit(); return;
    }
    // Enter in the override reason confirms the other crew (it is a plain input, not a form).
    if (ev.key === "Enter" && target.id === "override-reason") { ev.preventDefault(); click("#override-confirm"); return; }
    if (typing(target) || ev.ctrlKey || ev.altKey || ev.metaKey) return;
    if (ev.key === "Enter" && target.matches && target.matches("#queue li[data-id], #active li[data-id]")) {
      ev.preventDefault(); K.focusId = Number(target.dataset.id); gd.ui.showIncident(K.focusId); return;
    }
    // Arrows move through the queue only from within it (elsewhere they scroll or pan the map).
    if ((ev.key === "ArrowDown" || ev.key === "ArrowUp") && !(target.closest && target.closest("#queue, #active"))) return;
    const fn = ACTIONS[ev.key];
    if (!fn) return;
    ev.preventDefault();
    if (fn() !== false) K.fired.push(ev.key);
  });

  // --- focus kept across live re-draws ---------------------------------------------------------
  document.addEventListener("focusin", (ev) => {
    const li = ev.target.closest && ev.target.closest("#queue li[data-id], #active li[data-id]");
    K.inList = !!li;
    if (li) K.focusId = Number(li.dataset.id);
    const form = ev.target.closest && ev.target.closest("#act-form");
    K.formField = form && ev.target.name ? ev.target.name : null;
    K.override = ev.target.id && ev.target.closest && ev.target.closest("#reco") ? ev.target.id : null;
  });
  const lost = () => !document.activeElement || document.activeElement === document.body;
  document.addEventListener("gd:queue-rendered", () => {
    $$("#queue li[data-id], #active li[data-id]").forEach((li) => { li.tabIndex = 0; li.setAttribute("role", "option"); });
    $("#queue").setAttribute("role", "listbox"); $("#active").setAttribute("role", "listbox");
    if (K.inList && K.focusId !== null && lost()) {
      const li = $('#queue li[data-id="' + K.focusId + '"], #active li[data-id="' + K.focusId + '"]');
      if (li) li.focus();
    }
  });
  document.addEventListener("gd:incident-panel", () => {
    // (incident.js re-draws the actions in its own listener, registered before this one)
    if (!lost()) return;
    if (K.formField) { const el = $('#act-form [name="' + K.formField + '"]'); if (el) el.focus(); }
    else if (K.override) { const el = document.getElementById(K.override); if (el) el.focus(); }
  });
  document.addEventListener("gd:started", () => {
    if (!$("#keys-hint")) {
      const b = document.createElement("button");
      b.type = "button"; b.id = "keys-hint"; b.className = "link"; b.dataset.testid = "keys-hint";
      b.dataset.i18n = "keys.hint"; b.textContent = t("keys.hint");
      b.onclick = () => toggleHelp(true);
      $("#whoami").before(b);
    }
  });
})();
