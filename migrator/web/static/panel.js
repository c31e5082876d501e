// Refresh the overview's live part in place; without script the page's <noscript> meta refresh does it.
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Number(live.dataset.every || 2) * 1000;
  async function tick() {
    try {
      const r = await fetch(live.dataset.src, { credentials: "same-origin", cache: "no-store" });
      if (r.ok) {
        live.innerHTML = await r.text();  // rendered by the server with autoescape: no raw data reaches here
        live.classList.remove("stale");
      } else {
        live.classList.add("stale");
      }
    } catch (e) {
      live.classList.add("stale");
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
})();
