/* The queue's order and its overdue marks. Unassigned incidents are sorted by priority, then by
 * how much of their priority's unassigned limit they have used (the limits the supervisor
 * alerts use, from GET /api/dispatch/limits), most used first; each shows its wait against
 * the limit, and one past it is marked overdue, in colour and in words. Waits are counted on the
 * server's clock (the live feed's sent_at gives the offset), re-drawn every 5 s. */
"use strict";
(function () {
  const gd = window.gd;
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  Object.assign(I18N.uk, {
    "q.overdue": "прострочено: чекає {w} (норма {l})", "q.waiting": "чекає {w} з {l}", "q.min": "{m} хв",
  });
  Object.assign(I18N.en, {
    "q.overdue": "overdue: waiting {w} (limit {l})", "q.waiting": "waiting {w} of {l}", "q.min": "{m} min",
  });
  // Until the server's limits arrive (the built-in classification's values).
  const Q = (gd.queueUi = { limits: { 1: 60, 2: 180, 3: 600, 4: 1800 }, skewS: 0, loaded: false });

  const now = () => Date.now() / 1000 + Q.skewS;
  function limitOf(p) {
    const l = Q.limits[p];
    return l !== undefined ? l : Math.max(...Object.values(Q.limits));
  }
  function waited(i) { return i.received_at ? Math.max(0, now() - Number(i.received_at)) : 0; }
  Q.used = (i) => waited(i) / limitOf(Number(i.priority));
  Q.overdue = (i) => waited(i) > limitOf(Number(i.priority));
  // Sorts the unassigned incidents in place (app.js's renderQueue calls it).
  Q.order = (list) => list.sort((a, b) => (Number(a.priority) - Number(b.priority)) || (Q.used(b) - Q.used(a)) || (a.id - b.id));

  function minutes(s) {
    const m = s / 60;
    const nf = new Intl.NumberFormat(LANG === "uk" ? "uk-UA" : "en-GB", { maximumFractionDigits: m < 10 ? 1 : 0 });
    return t("q.min", { m: nf.format(m) });
  }
  function decorate() {
    const ul = $("#queue");
    if (!ul) return;
    ul.querySelectorAll("li[data-id]").forEach((li) => {
      const i = gd.incidents[li.dataset.id];
      if (!i) return;
      const over = Q.overdue(i);
      const f = { w: minutes(waited(i)), l: minutes(limitOf(Number(i.priority))) };
      li.classList.toggle("overdue", over);
      li.dataset.overdue = over ? "1" : "0";
      const old = li.querySelector(".wait");
      if (old) old.remove();
      const el = document.createElement("div");
      el.className = "wait" + (over ? " bad" : "");
      el.dataset.testid = over ? "overdue" : "waiting";
      el.innerHTML = (over ? "⚠ " : "") + esc(t(over ? "q.overdue" : "q.waiting", f));
      li.appendChild(el);
    });
  }
  async function loadLimits() {
    try {
      const data = await gd.ui.api("GET", "/api/dispatch/limits");
      const l = data && data.unassigned_limit_s;
      if (l && typeof l === "object") {
        Q.limits = {};
        Object.entries(l).forEach(([p, s]) => { Q.limits[Number(p)] = Number(s); });
        Q.loaded = true;
      }
    } catch (e) { /* the built-in limits stay */ }
    if (gd.ui.renderQueue) gd.ui.renderQueue();
  }
  document.addEventListener("gd:queue-rendered", decorate);
  document.addEventListener("gd:live", (ev) => {
    const m = ev.detail;
    if (m.type === "units" && m.sent_at) Q.skewS = Number(m.sent_at) - Date.now() / 1000;
  });
  document.addEventListener("gd:started", () => {
    loadLimits();
    clearInterval(Q.timer);
    Q.timer = setInterval(() => { if (gd.ui.renderQueue && gd.token) gd.ui.renderQueue(); }, 5000);
  });
  document.addEventListener("gd:logout", () => clearInterval(Q.timer));
})();
