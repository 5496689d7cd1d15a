// The trace page's behaviour, served as a file so that the page's CSP allows no inline script.
//
// Score bars take their width from data-value (a style attribute would need 'unsafe-inline'
// styles). Live updates: while the job runs, progress events re-render the page body from the
// server (debounced), so the browser shows exactly what the trace holds. The event names are the
// graph's progress events plus the service's "state" and "status" events.
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const sizeBars = () => {
    root.querySelectorAll(".bar > span[data-value]").forEach((bar) => {
      const value = Math.max(0, Math.min(100, Number(bar.dataset.value) || 0));
      bar.style.width = value + "%";
    });
  };
  sizeBars();
  if (root.dataset.live !== "true" || !window.EventSource) return;
  const source = new EventSource(root.dataset.eventsUrl);
  const terminal = ["completed", "failed", "cancelled"];
  let timer = null;
  const refresh = () => {
    timer = null;
    fetch(location.pathname + "?fragment=true", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.text() : null))
      .then((html) => {
        if (html !== null) {
          root.innerHTML = html;
          sizeBars();
        }
      });
  };
  const schedule = () => { if (!timer) timer = setTimeout(refresh, 400); };
  JSON.parse(root.dataset.eventNames).forEach((name) => source.addEventListener(name, schedule));
  source.addEventListener("status", (e) => {
    schedule();
    try { if (terminal.includes(JSON.parse(e.data).status)) { source.close(); setTimeout(refresh, 50); } } catch (_) {}
  });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) refresh(); };
})();
