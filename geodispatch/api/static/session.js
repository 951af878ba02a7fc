/* Shift-long sessions: the console renews its token (POST /api/auth/refresh) at 70 % of its
 * lifetime, and hands the new one to the open live feed, which goes on without a reconnect (no
 * event lost). The lifetime is the token's own exp - iat, counted from when it was received, so
 * a browser clock that is off does not matter. A refusal (401) logs out, as any request does. */
"use strict";
(function () {
  const gd = window.gd;
  const S = (gd.sessionUi = { timer: null, refreshes: 0, renewedAt: null, failures: 0 });

  function claims(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) { return null; }
  }
  function lifetime(token) {
    const c = claims(token);
    return c && c.exp ? Math.max(1, Number(c.exp) - Number(c.iat || c.exp - 1)) : null;
  }
  function schedule(delayS) {
    clearTimeout(S.timer);
    S.timer = setTimeout(refresh, Math.max(0.5, delayS) * 1000);
  }
  function scheduleFor(token, receivedAt) {
    const life = lifetime(token);
    if (!life) return;
    // At 70 % of the lifetime: a 12 h token at 8.4 h; a retry still has 30 % left.
    S.expiresAt = receivedAt + life * 1000;
    schedule((S.expiresAt - life * 300 - Date.now()) / 1000);
  }
  async function refresh() {
    if (!gd.token) return;
    try {
      const tok = await gd.ui.api("POST", "/api/auth/refresh");
      if (!gd.token) return;  // logged out meanwhile
      gd.token = tok.access_token;
      sessionStorage.setItem("gd.token", gd.token);
      S.refreshes += 1; S.renewedAt = Date.now(); S.failures = 0;
      // The open feed takes the new token on the same socket; a feed (re)connecting sends
      // gd.token, which is already the new one.
      if (gd.ws && gd.ws.readyState === WebSocket.OPEN) gd.ws.send(JSON.stringify({ token: gd.token }));
      scheduleFor(gd.token, Date.now());
    } catch (e) {
      if (!gd.token || e.status === 401) return;  // api() has logged out
      // The server or the network is down: try again while the token still lasts.
      S.failures += 1;
      const left = ((S.expiresAt || Date.now()) - Date.now()) / 1000;
      schedule(Math.min(30, Math.max(1, left / 4)));
    }
  }
  S.refresh = refresh;
  document.addEventListener("gd:started", () => {
    if (!gd.token) return;
    // A token from this login is fresh; one kept across a page reload (or issued by a server
    // whose clock differs by more than a minute) is renewed at once, so its age is known.
    const c = claims(gd.token);
    if (c && c.iat && Math.abs(Date.now() / 1000 - c.iat) < 60) scheduleFor(gd.token, Date.now());
    else refresh();
  });
  document.addEventListener("gd:logout", () => { clearTimeout(S.timer); S.timer = null; });
})();
