/* Ukrainian and English strings of the crew terminal. t(key, vars) looks up the current language. */
"use strict";
window.I18N = {
  uk: {
    "lang.switch": "English", "login.title": "Термінал екіпажу",
    "login.subtitle": "Увійдіть даними пристрою вашого екіпажу", "login.device": "Ідентифікатор пристрою",
    "login.token": "Токен пристрою", "login.submit": "Увійти", "login.failed": "Невірний пристрій або токен",
    "login.offline": "Немає зв'язку із сервером",
    "login.revoked": "Доступ пристрою відкликано: увійдіть знову", "top.night": "Ніч", "top.logout": "Вийти",
    "conn.live": "на зв'язку", "conn.connecting": "з'єднання…", "conn.lost": "немає зв'язку",
    "asg.none": "Призначень немає", "asg.new": "Нове призначення: підтвердіть!", "asg.category": "Категорія",
    "asg.address": "Адреса", "asg.notes": "Примітки диспетчера", "asg.crews": "Екіпажі", "asg.route": "Маршрут",
    "asg.lead": "старший", "asg.you": "ви", "asg.noaddress": "адреса невідома", "asg.nonotes": "—",
    "route.eta": "{min} хв, {km} км", "route.straight": "{min} хв, {km} км (по прямій: дорожнього графа немає)",
    "route.nofix": "чекаємо на GPS…", "route.none": "маршрут недоступний",
    "st.acknowledged": "Підтвердити", "st.en_route": "Виїхали", "st.on_scene": "На місці",
    "st.cleared": "Звільнились", "st.available": "Вільні", "st.out_of_service": "Не в строю", "st.break": "Перерва",
    "st.delivered": "Отримано", "st.dispatched": "Призначено", "st.off_duty": "Поза зміною", "st.transporting": "Транспортування",
    "q.title": "У черзі на відправку", "q.fix": "GPS {lat}, {lng}", "q.status": "Статус: {s}",
    "res.applied": "{s}: прийнято", "res.repeated": "{s}: уже було", "res.late": "{s}: запізнилось (записано, не застосовано)",
    "res.duplicate": "{s}: уже надіслано", "res.refused": "{s}: відхилено ({d})",
    "gps.off": "недоступний", "gps.on": "{lat}, {lng} ±{acc} м",
    "cat.other": "інше", "gps.title": "GPS", "status.acknowledged": "Підтверджено",
  },
  en: {
    "lang.switch": "Українська", "login.title": "Crew terminal",
    "login.subtitle": "Sign in with your crew's device credentials", "login.device": "Device id",
    "login.token": "Device token", "login.submit": "Sign in", "login.failed": "Wrong device or token",
    "login.offline": "Cannot reach the server",
    "login.revoked": "This device's access was revoked: sign in again", "top.night": "Night", "top.logout": "Sign out",
    "conn.live": "online", "conn.connecting": "connecting…", "conn.lost": "offline",
    "asg.none": "No assignment", "asg.new": "New assignment: acknowledge!", "asg.category": "Category",
    "asg.address": "Address", "asg.notes": "Dispatcher notes", "asg.crews": "Crews", "asg.route": "Route",
    "asg.lead": "lead", "asg.you": "you", "asg.noaddress": "address unknown", "asg.nonotes": "—",
    "route.eta": "{min} min, {km} km", "route.straight": "{min} min, {km} km (straight line: no road graph)",
    "route.nofix": "waiting for GPS…", "route.none": "no route",
    "st.acknowledged": "Acknowledge", "st.en_route": "En route", "st.on_scene": "On scene",
    "st.cleared": "Cleared", "st.available": "Available", "st.out_of_service": "Out of service", "st.break": "Break",
    "st.delivered": "Received", "st.dispatched": "Dispatched", "st.off_duty": "Off duty", "st.transporting": "Transporting",
    "q.title": "Queued to send", "q.fix": "GPS {lat}, {lng}", "q.status": "Status: {s}",
    "res.applied": "{s}: accepted", "res.repeated": "{s}: already so", "res.late": "{s}: late (recorded, not applied)",
    "res.duplicate": "{s}: already sent", "res.refused": "{s}: refused ({d})",
    "gps.off": "unavailable", "gps.on": "{lat}, {lng} ±{acc} m",
    "cat.other": "other", "gps.title": "GPS", "status.acknowledged": "Acknowledged",
  },
};
window.lang = localStorage.getItem("gd.crew.lang") || ((navigator.language || "uk").startsWith("uk") ? "uk" : "en");
window.t = function (key, vars) {
  let s = (window.I18N[window.lang] || {})[key] ?? window.I18N.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll("{" + k + "}", String(v));
  return s;
};
window.applyI18n = function (root) {
  document.documentElement.lang = window.lang;
  (root || document).querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
};
