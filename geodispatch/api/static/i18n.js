/* Ukrainian and English strings of the dispatcher console. t(key) looks up the current language. */
"use strict";
window.I18N = {
  uk: {
    "login.subtitle": "Консоль диспетчера поліції",
    "login.username": "Користувач", "login.password": "Пароль", "login.submit": "Увійти",
    "login.failed": "Невірний користувач або пароль", "login.ratelimited": "Забагато спроб; спробуйте за {s} с",
    "top.logout": "Вийти", "lang.switch": "English",
    "conn.live": "наживо", "conn.connecting": "з'єднання…", "conn.lost": "немає зв'язку",
    "conn.forbidden": "жива карта недоступна для вашої ролі",
    "map.offline": "офлайн-карта", "map.roads": "Дороги", "map.zones": "Зони", "map.crews": "Екіпажі",
    "map.incidents": "Події", "map.newcall": "Нове звернення",
    "tab.queue": "Черга", "tab.crews": "Екіпажі", "tab.newcall": "Нове звернення",
    "queue.empty": "Непризначених подій немає", "queue.active": "Події в роботі", "queue.alerts": "Попередження",
    "crews.filter": "Фільтр за позивним…",
    "call.phone": "Телефон заявника", "call.address": "Адреса", "call.find": "Знайти",
    "call.clickmap": "Клацніть на карті, щоб позначити місце", "call.at": "Місце: {p}",
    "call.category": "Категорія", "call.priority": "Пріоритет", "call.description": "Опис",
    "call.lang": "Мова SMS", "call.submit": "Зареєструвати", "call.needplace": "Позначте місце на карті або знайдіть адресу",
    "call.done": "Зареєстровано: {ref}", "call.nohits": "Нічого не знайдено",
    "prec.house": "будинок", "prec.interpolated": "будинок (оцінка)", "prec.street": "лише вулиця",
    "prec.area": "район", "prec.intersection": "перехрестя", "prec.point": "точка",
    "inc.resolved": "Знайдено", "inc.precision": "Точність",
    "call.needsomething": "Вкажіть телефон, опис, адресу або місце на карті", "call.sending": "Реєстрація…",
    "call.warnings": "Увага: {w}", "inc.unknown": "місце невідоме", "inc.place": "Позначити на карті",
    "inc.placehint": "Клацніть на карті місце події", "inc.placed": "Місце позначено",
    "inc.title": "Подія", "inc.status": "Статус", "inc.priority": "Пріоритет", "inc.category": "Категорія",
    "inc.address": "Адреса", "inc.received": "Надійшла", "inc.phone": "Телефон", "inc.description": "Опис",
    "inc.timeline": "Хронологія", "inc.reco": "Рекомендовані екіпажі", "inc.recommend": "Підібрати екіпаж",
    "inc.noreco": "Немає доступних екіпажів", "inc.straight": "Без дорожнього графа: відстань по прямій",
    "inc.accept": "Призначити {cs}", "inc.override": "Інший екіпаж…", "inc.override.unit": "Екіпаж",
    "inc.override.reason": "Причина (обов'язково)", "inc.override.confirm": "Призначити з причиною",
    "inc.assigned": "Призначено {cs}", "inc.assignments": "Призначення", "inc.excluded": "Виключені",
    "crew.title": "Екіпаж", "crew.kind": "Тип", "crew.status": "Статус", "crew.caps": "Можливості",
    "crew.fix": "Остання позиція", "crew.speed": "Швидкість", "crew.timeline": "Хронологія",
    "crew.stale": "застаріла позиція", "crew.region": "Регіон", "crew.track": "Маршрут за годину: {n} позицій", "crew.set": "Змінити статус",
    "col.crew": "Екіпаж", "col.eta": "Час", "col.dist": "Відст.", "col.status": "Статус",
    "err.generic": "Помилка: {d}",
    "status.available": "вільний", "status.dispatched": "призначений", "status.en_route": "в дорозі",
    "status.on_scene": "на місці", "status.transporting": "транспортує", "status.cleared": "звільнився",
    "status.off_duty": "не на зміні", "status.out_of_service": "не в строю", "status.break": "перерва",
    "status.registered": "зареєстровано", "status.queued": "в черзі", "status.assigned": "призначено",
    "status.closed": "закрито", "status.cancelled": "скасовано", "status.merged": "об'єднано",
  },
  en: {
    "login.subtitle": "Police dispatcher console",
    "login.username": "Username", "login.password": "Password", "login.submit": "Log in",
    "login.failed": "Wrong username or password", "login.ratelimited": "Too many attempts; retry in {s} s",
    "top.logout": "Log out", "lang.switch": "Українська",
    "conn.live": "live", "conn.connecting": "connecting…", "conn.lost": "disconnected",
    "conn.forbidden": "no live map for your role",
    "map.offline": "offline map", "map.roads": "Roads", "map.zones": "Zones", "map.crews": "Crews",
    "map.incidents": "Incidents", "map.newcall": "New call",
    "tab.queue": "Queue", "tab.crews": "Crews", "tab.newcall": "New call",
    "queue.empty": "No unassigned incidents", "queue.active": "Incidents in progress", "queue.alerts": "Alerts",
    "crews.filter": "Filter by call sign…",
    "call.phone": "Caller phone", "call.address": "Address", "call.find": "Find",
    "call.clickmap": "Click the map to place the call", "call.at": "Location: {p}",
    "call.category": "Category", "call.priority": "Priority", "call.description": "Description",
    "call.lang": "SMS language", "call.submit": "Register", "call.needplace": "Click the map or find an address first",
    "call.done": "Registered: {ref}", "call.nohits": "Nothing found",
    "prec.house": "house", "prec.interpolated": "house (estimated)", "prec.street": "street only",
    "prec.area": "area", "prec.intersection": "intersection", "prec.point": "point",
    "inc.resolved": "Found", "inc.precision": "Precision",
    "call.needsomething": "Give a phone number, a description, an address or a point", "call.sending": "Registering…",
    "call.warnings": "Note: {w}", "inc.unknown": "location unknown", "inc.place": "Place on map",
    "inc.placehint": "Click the map where the incident is", "inc.placed": "Placed on the map",
    "inc.title": "Incident", "inc.status": "Status", "inc.priority": "Priority", "inc.category": "Category",
    "inc.address": "Address", "inc.received": "Received", "inc.phone": "Phone", "inc.description": "Description",
    "inc.timeline": "Timeline", "inc.reco": "Recommended crews", "inc.recommend": "Recommend crews",
    "inc.noreco": "No crew available", "inc.straight": "No road graph: straight-line distance",
    "inc.accept": "Assign {cs}", "inc.override": "Another crew…", "inc.override.unit": "Crew",
    "inc.override.reason": "Reason (required)", "inc.override.confirm": "Assign with reason",
    "inc.assigned": "Assigned {cs}", "inc.assignments": "Assignments", "inc.excluded": "Excluded",
    "crew.title": "Crew", "crew.kind": "Kind", "crew.status": "Status", "crew.caps": "Capabilities",
    "crew.fix": "Last fix", "crew.speed": "Speed", "crew.timeline": "Timeline",
    "crew.stale": "stale position", "crew.region": "Region", "crew.track": "Last hour: {n} fixes", "crew.set": "Set status",
    "col.crew": "Crew", "col.eta": "ETA", "col.dist": "Dist.", "col.status": "Status",
    "err.generic": "Error: {d}",
    "status.available": "available", "status.dispatched": "dispatched", "status.en_route": "en route",
    "status.on_scene": "on scene", "status.transporting": "transporting", "status.cleared": "cleared",
    "status.off_duty": "off duty", "status.out_of_service": "out of service", "status.break": "break",
    "status.registered": "registered", "status.queued": "queued", "status.assigned": "assigned",
    "status.closed": "closed", "status.cancelled": "cancelled", "status.merged": "merged",
  },
};
window.LANG = localStorage.getItem("gd.lang") || "uk";
window.t = function (key, vars) {
  const table = window.I18N[window.LANG] || window.I18N.uk;
  let s = table[key] !== undefined ? table[key] : (window.I18N.en[key] !== undefined ? window.I18N.en[key] : key);
  if (vars) for (const k of Object.keys(vars)) s = s.replace("{" + k + "}", vars[k]);
  return s;
};
window.applyI18n = function (root) {
  (root || document).querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  (root || document).querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  document.querySelectorAll(".lang-toggle").forEach((el) => { el.textContent = t("lang.switch"); });
  document.documentElement.lang = window.LANG;
};
