// The operator page refreshes itself: every refresh it asks the server for the
// panels again (GET api/panels, JSON) and replaces the ones whose HTML changed.
// No full reload, so a folded-out table stays open and the page does not jump.
// When the server stops answering, the header says so (and keeps retrying).
"use strict";
(() => {
  const refreshMs = Number(document.body.dataset.refreshMs) || 2000;
  const live = document.getElementById("live");
  const liveText = live.querySelector(".live-text");
  const shown = new Map();
  let lastSuccess = Date.now();

  const clock = (ms) => new Date(ms).toISOString().slice(11, 19);

  function replace(panel, html) {
    const open = new Set(
      Array.from(panel.querySelectorAll("details[open][data-key]"), (d) => d.dataset.key),
    );
    panel.innerHTML = html;
    for (const details of panel.querySelectorAll("details[data-key]")) {
      if (open.has(details.dataset.key)) details.open = true;
    }
  }

  async function refresh() {
    try {
      const response = await fetch("api/panels", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      for (const [id, html] of Object.entries(data.panels)) {
        const panel = document.getElementById(id);
        if (panel && shown.get(id) !== html) {
          replace(panel, html);
          shown.set(id, html);
        }
      }
      document.title = data.title;
      document.body.dataset.state = data.state;
      lastSuccess = Date.now();
      live.classList.remove("stale", "down");
      liveText.textContent = `live · updated ${clock(data.generated_ts * 1000)} UTC`;
    } catch (error) {
      const silentMs = Date.now() - lastSuccess;
      live.classList.add(silentMs > 3 * refreshMs ? "down" : "stale");
      liveText.textContent =
        `no answer from the page's server since ${clock(lastSuccess)} UTC (${error.message}); retrying`;
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  setTimeout(refresh, refreshMs);
})();
