/* geodispatch crew terminal: an officer's own sign-in, bound to a unit for the shift (the crew
   roster). The officer gives their username, password and the unit's call sign; the server
   records the sign-on in the unit's signed record and answers a shift token, which the app sends
   as X-Crew-Shift instead of the device's headers (app.js headers()). "Sign out" signs the
   officer off the unit; a supervisor's sign-off ends the session at once (the stream's
   `revoked` event, or a 401 on the next request). */
"use strict";
(function () {
  Object.assign(I18N.uk, {
    "login.mode.device": "Пристрій екіпажу", "login.mode.officer": "Поліцейський",
    "login.officer.subtitle": "Увійдіть своїм обліковим записом і вкажіть позивний екіпажу на зміну",
    "login.username": "Ім'я користувача", "login.password": "Пароль", "login.callsign": "Позивний екіпажу",
    "login.officer.failed": "Невірне ім'я, пароль або позивний", "login.officer.forbidden": "Вхід заборонено: {d}",
    "login.signedoff": "Вас знято зі зміни екіпажу: увійдіть знову", "top.officer": "{name}",
  });
  Object.assign(I18N.en, {
    "login.mode.device": "Crew device", "login.mode.officer": "Officer",
    "login.officer.subtitle": "Sign in with your own account and the call sign of your car for the shift",
    "login.username": "Username", "login.password": "Password", "login.callsign": "Unit call sign",
    "login.officer.failed": "Wrong username, password or call sign", "login.officer.forbidden": "Not allowed: {d}",
    "login.signedoff": "You were signed off the unit: sign in again", "top.officer": "{name}",
  });
  const $ = (id) => document.getElementById(id);

  function mode(which) {
    const officer = which === "officer";
    $("login-form").hidden = officer;
    $("officer-form").hidden = !officer;
    document.querySelectorAll("[data-login-mode]").forEach((b) => b.classList.toggle("current", b.dataset.loginMode === which));
    localStorage.setItem("gd.crew.mode", which);
  }

  async function signOn(username, password, callSign) {
    let r;
    try {
      r = await fetch("/api/crew/session", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password, call_sign: callSign }) });
    } catch (e) { $("officer-error").textContent = t("login.offline"); return; }
    if (!r.ok) {
      let d = "";
      try { d = (await r.json()).detail || ""; } catch (e) { /* no body */ }
      $("officer-error").textContent = r.status === 403 ? t("login.officer.forbidden", { d }) : t("login.officer.failed");
      return;
    }
    const j = await r.json();
    $("officer-password").value = "";
    window.gdCrew.begin({ device: j.unit.device_id, shift: j.shift.token, officer: j.shift.full_name || j.shift.username }, j);
  }

  window.gdOfficer = {
    started(creds) {
      const el = $("officer");
      el.hidden = !creds.shift;
      el.textContent = creds.shift ? t("top.officer", { name: creds.officer || "" }) : "";
    },
    // Pressing "sign out" with a shift signs the officer off the unit; a revoked session does not.
    leaving(creds, msg) {
      if (!creds || !creds.shift) return;
      if (msg) { $("officer-error").textContent = msg; return; }
      fetch("/api/crew/sign-off", { method: "POST", headers: { "X-Crew-Shift": creds.shift }, keepalive: true }).catch(() => {});
    },
  };

  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-login-mode]");
    if (b) mode(b.dataset.loginMode);
  });
  $("officer-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signOn($("officer-username").value.trim(), $("officer-password").value, $("officer-callsign").value.trim());
  });
  mode(localStorage.getItem("gd.crew.mode") === "officer" ? "officer" : "device");
})();
