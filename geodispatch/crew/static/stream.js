/* geodispatch crew terminal: the push channel, GET /api/crew/stream (Server-Sent Events).

   Read with fetch() rather than EventSource because a crew authenticates with device headers,
   which EventSource cannot send (a token in the URL would end up in logs). It does what
   EventSource does: parses the event stream, keeps the last event id and sends it back as
   Last-Event-ID when it reconnects after the server's `retry:` delay. A stream that stays silent
   longer than two heartbeats, or a browser that goes offline, is dropped and reconnected. The
   app polls only while the stream is down (opts.onDown / opts.onUp). */
"use strict";
(function () {
  const SILENCE_MS = 35000;  // the server writes at least every 15 s

  window.gdStream = function (opts) {
    let ctrl = null, lastId = null, stopped = false, retryMs = 1000, timer = null, lastByte = 0, up = false;

    function down() {
      if (stopped) return;
      up = false;
      opts.onDown();
      clearTimeout(timer);
      timer = setTimeout(connect, retryMs);
    }

    function handle(block) {
      let ev = "message", id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line[0] === ":") continue;
        const k = line.indexOf(":");
        const f = k < 0 ? line : line.slice(0, k);
        let v = k < 0 ? "" : line.slice(k + 1);
        if (v[0] === " ") v = v.slice(1);
        if (f === "event") ev = v;
        else if (f === "data") data.push(v);
        else if (f === "id") id = v;
        else if (f === "retry" && /^\d+$/.test(v)) retryMs = Number(v);
      }
      if (id !== null) lastId = id;
      if (ev === "assignment") opts.onScreen(JSON.parse(data.join("\n")), id);
      else if (ev === "revoked") { stopped = true; if (ctrl) ctrl.abort(); opts.onRevoked(); }
    }

    async function connect() {
      if (stopped) return;
      clearTimeout(timer);
      ctrl = new AbortController();
      const h = { ...opts.headers(), Accept: "text/event-stream" };
      if (lastId) h["Last-Event-ID"] = lastId;
      let r;
      try {
        r = await fetch("/api/crew/stream", { headers: h, cache: "no-store", signal: ctrl.signal });
      } catch (e) { down(); return; }
      if (r.status === 401) { stopped = true; opts.onRevoked(); return; }
      if (!r.ok || !r.body) { down(); return; }
      up = true; lastByte = Date.now();
      opts.onUp();
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          lastByte = Date.now();
          buf += value.replace(/\r\n?/g, "\n");
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            handle(block);
            if (stopped) return;
          }
        }
      } catch (e) { /* dropped, aborted or offline */ }
      down();
    }

    const watchdog = setInterval(() => {
      if (up && Date.now() - lastByte > SILENCE_MS && ctrl) ctrl.abort();
    }, 5000);
    const offline = () => { if (ctrl) ctrl.abort(); };
    const online = () => { if (!up && !stopped) connect(); };
    window.addEventListener("offline", offline);
    window.addEventListener("online", online);
    connect();
    return {
      stop() {
        stopped = true;
        clearTimeout(timer); clearInterval(watchdog);
        window.removeEventListener("offline", offline);
        window.removeEventListener("online", online);
        if (ctrl) ctrl.abort();
      },
      get up() { return up; },
      get lastId() { return lastId; },
    };
  };
})();
