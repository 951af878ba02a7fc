/* Find any incident from the console: a search box (reference, address, crew call sign, the
 * caller's number for the roles that see it) with filters by status (closed, cancelled and merged
 * included), priority, category, zone and time; a result opens the incident with its history.
 * Everything goes through GET /api/incidents. The "Search" tab is added to the side bar here;
 * state lives in window.gd.search so browser tests can inspect it. */
"use strict";
Object.assign(I18N.uk, {
  "tab.search": "Пошук", "search.q": "Номер, адреса, позивний або телефон", "search.go": "Знайти",
  "search.status": "Статус", "search.status.any": "будь-який", "search.status.open": "відкриті",
  "search.priority": "Пріоритет", "search.priority.any": "будь-який", "search.category": "Категорія",
  "search.category.any": "будь-яка", "search.zone": "Зона (код)", "search.from": "Надійшли з", "search.to": "по",
  "search.count": "Знайдено: {n}", "search.none": "Нічого не знайдено", "search.more": "Показано перші {n}; уточніть пошук",
  "search.failed": "Пошук не вдався: {d}",
});
Object.assign(I18N.en, {
  "tab.search": "Search", "search.q": "Reference, address, call sign or phone", "search.go": "Search",
  "search.status": "Status", "search.status.any": "any", "search.status.open": "open",
  "search.priority": "Priority", "search.priority.any": "any", "search.category": "Category",
  "search.category.any": "any", "search.zone": "Zone (code)", "search.from": "Received from", "search.to": "to",
  "search.count": "Found: {n}", "search.none": "Nothing found", "search.more": "Showing the first {n}; narrow the search",
  "search.failed": "Search failed: {d}",
});
(function () {
  const gd = window.gd;
  const LIMIT = 200;
  const OPEN = "registered,queued,assigned,en_route,on_scene,cleared";
  const S = (gd.search = { items: [], last: null, seq: 0 });
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const ui = () => gd.ui;

  // The tab and its section, added before app.js wires the tabs (on DOMContentLoaded).
  const nav = $(".side .tabs");
  if (nav) {
    const btn = document.createElement("button");
    btn.type = "button"; btn.dataset.tab = "search";
    btn.setAttribute("data-testid", "tab-search");
    btn.addEventListener("click", () => fillCategories());
    btn.innerHTML = '<span data-i18n="tab.search"></span>';
    nav.appendChild(btn);
    const sec = document.createElement("section");
    sec.id = "tab-search"; sec.className = "tab"; sec.hidden = true;
    sec.innerHTML =
      '<form id="search-form" class="search-form" data-testid="search-form" autocomplete="off">' +
      '<div class="row"><input name="q" type="search" data-testid="search-q" data-i18n-placeholder="search.q" maxlength="100">' +
      '<button type="submit" class="primary" data-testid="search-go" data-i18n="search.go"></button></div>' +
      '<label><span data-i18n="search.status"></span><select name="status" data-testid="search-status">' +
      '<option value="" data-i18n="search.status.any"></option><option value="' + OPEN + '" data-i18n="search.status.open"></option>' +
      ["closed", "cancelled", "merged", "registered", "queued", "assigned", "en_route", "on_scene", "cleared"].map((s) =>
        '<option value="' + s + '" data-i18n="status.' + s + '"></option>').join("") + "</select></label>" +
      '<label><span data-i18n="search.priority"></span><select name="priority" data-testid="search-priority">' +
      '<option value="" data-i18n="search.priority.any"></option>' + [1, 2, 3, 4].map((p) => '<option value="' + p + '">' + p + "</option>").join("") + "</select></label>" +
      '<label><span data-i18n="search.category"></span><select name="category" data-testid="search-category">' +
      '<option value="" data-i18n="search.category.any"></option></select></label>' +
      '<label><span data-i18n="search.zone"></span><input name="zone" data-testid="search-zone" maxlength="64"></label>' +
      '<label><span data-i18n="search.from"></span><input name="from" type="datetime-local" data-testid="search-from"></label>' +
      '<label><span data-i18n="search.to"></span><input name="to" type="datetime-local" data-testid="search-to"></label>' +
      "</form>" +
      '<p id="search-result" data-testid="search-result" role="status"></p>' +
      '<ul id="search-items" class="list" data-testid="search-items"></ul>';
    $(".side").appendChild(sec);
  }

  function fillCategories() {
    const sel = $("#search-form [name=category]");
    if (!sel || !gd.categories) return;
    const keep = sel.value;
    sel.innerHTML = '<option value="">' + esc(t("search.category.any")) + "</option>" + gd.categories.map((c) =>
      '<option value="' + esc(c.code) + '">' + esc(c.label) + "</option>").join("");
    sel.value = keep;
  }
  function params(form) {
    const p = new URLSearchParams();
    const v = (n) => (form.elements[n].value || "").trim();
    if (v("q")) p.set("q", v("q"));
    ["status", "priority", "category", "zone"].forEach((n) => { if (v(n)) p.set(n, v(n)); });
    ["from", "to"].forEach((n) => { if (v(n)) p.set(n, new Date(v(n)).toISOString()); });
    p.set("limit", String(LIMIT));
    return p;
  }
  function itemHtml(i) {
    const when = typeof i.received_at === "string" ? Date.parse(i.received_at) / 1000 : i.received_at;
    const day = new Date(when * 1000).toLocaleDateString(LANG === "uk" ? "uk-UA" : "en-GB");
    return '<li data-testid="search-item" data-id="' + esc(i.id) + '" tabindex="0">' + ui().prioBadge(i.priority) +
      ' <span class="title">' + esc(i.reference) + "</span> " + ui().stBadge(i.status) +
      '<div class="sub">' + esc(ui().categoryLabel(i.category)) + " · " + esc(i.address || i.address_resolved || "—") +
      " · " + esc(day) + " " + ui().fmtTime(when) + "</div></li>";
  }
  function render() {
    const out = $("#search-result");
    const ul = $("#search-items");
    if (!out || !ul) return;
    if (S.error) { out.textContent = t("search.failed", { d: S.error }); out.className = "error"; ul.innerHTML = ""; return; }
    out.className = "";
    if (S.last === null) { out.textContent = ""; ul.innerHTML = ""; return; }
    out.textContent = !S.items.length ? t("search.none")
      : S.items.length >= LIMIT ? t("search.more", { n: LIMIT }) : t("search.count", { n: S.items.length });
    ul.innerHTML = S.items.map(itemHtml).join("");
  }
  async function run(ev) {
    if (ev) ev.preventDefault();
    const form = $("#search-form");
    const q = params(form);
    const seq = ++S.seq;
    try {
      const data = await ui().api("GET", "/api/incidents?" + q.toString());
      if (seq !== S.seq) return;
      S.items = data.items || []; S.error = null; S.last = q.toString();
    } catch (e) {
      if (seq !== S.seq) return;
      S.items = []; S.error = e.message;
    }
    render();
  }
  function open(li) {
    if (!li) return;
    ui().showIncident(Number(li.dataset.id));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = $("#search-form");
    if (!form) return;
    form.addEventListener("submit", run);
    form.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => { if (S.last !== null) run(); }));
    const ul = $("#search-items");
    ul.addEventListener("click", (ev) => open(ev.target.closest("li[data-id]")));
    ul.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(ev.target.closest("li[data-id]")); });
  });
  document.addEventListener("gd:lang", () => { applyI18n($("#tab-search")); fillCategories(); render(); });
  document.addEventListener("gd:logout", () => { S.items = []; S.last = null; S.error = null; render(); });
})();
