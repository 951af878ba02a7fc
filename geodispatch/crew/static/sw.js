/* Crew terminal service worker: the app shell is served from the cache when the link is down.
   The API is never cached: presses and fixes wait in the page's IndexedDB outbox instead. */
"use strict";
const CACHE = "gd-crew-v4";
const SHELL = ["/crew", "/crew/app.js", "/crew/app.css", "/crew/i18n.js", "/crew/stream.js", "/crew/officer.js", "/crew/officer.css", "/crew/alert.wav", "/crew/manifest.webmanifest",
  "/crew/icon.svg", "/static/vendor/leaflet/leaflet.js", "/static/vendor/leaflet/leaflet.css",
  "/static/vendor/protomaps-leaflet/protomaps-leaflet.js", "/static/basemap.js"];
const TILES = "gd-crew-tiles";  // base-map tiles seen while online, for when the link drops
self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE && k !== TILES).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (url.pathname.startsWith("/tiles/")) {  // network first, the last copy when offline
    e.respondWith(fetch(e.request).then((r) => {
      if (r.ok) { const copy = r.clone(); caches.open(TILES).then((c) => c.put(e.request, copy)); }
      return r;
    }).catch(() => caches.match(e.request, { cacheName: TILES }).then((r) => r || Response.error())));
    return;
  }
  const key = url.pathname === "/crew/" ? "/crew" : url.pathname;
  if (!SHELL.includes(key)) return;
  // Network first (a new version reaches the crew at once), the cached shell when offline.
  e.respondWith(fetch(e.request).then((r) => {
    const copy = r.clone();
    caches.open(CACHE).then((c) => c.put(key, copy));
    return r;
  }).catch(() => caches.match(key)));
});
