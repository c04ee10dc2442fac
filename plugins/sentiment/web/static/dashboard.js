// The monitoring dashboard: watchlist, chart per entity, alerts with evidence and acknowledgement.
(() => {
  "use strict";
  const { api, el, fmt } = window.Suite;
  const REFRESH_MS = 60_000;
  const BY_STORAGE = "suite.sentiment.ackBy";

  const watchlistBody = document.querySelector("#watchlist tbody");
  const alertList = document.getElementById("alerts");
  const showAcknowledged = document.getElementById("show-acknowledged");
  const ackBy = document.getElementById("ack-by");
  const chart = document.getElementById("chart");
  const chartTitle = document.getElementById("chart-title");
  const chartEmpty = document.getElementById("chart-empty");
  const bucket = document.getElementById("chart-bucket");
  const days = document.getElementById("chart-days");
  const lastRun = document.getElementById("last-run");
  let selected = null;
  let chartUrl = null;
  let openAlerts = {}; // entity -> count of open alerts

  ackBy.value = localStorage.getItem(BY_STORAGE) || "";
  ackBy.addEventListener("change", () => localStorage.setItem(BY_STORAGE, ackBy.value.trim()));

  const scoreClass = (value) => (value === null || value === undefined ? "" : value > 0.05 ? "score-pos" : value < -0.05 ? "score-neg" : "");
  const encode = (name) => encodeURIComponent(name);

  // -- watchlist ----------------------------------------------------------------------------
  function entityRow(entity) {
    const current = entity.current || {};
    const baseline = entity.baseline || {};
    const row = el(
      "tr",
      { class: "selectable", tabindex: 0, dataset: { entity: entity.name }, "aria-selected": String(entity.name === selected) },
      el("td", {}, el("strong", {}, entity.name), entity.ticker ? el("span", { class: "muted" }, ` ${entity.ticker}`) : null),
      el("td", { class: "num", title: `baseline ${baseline.volume ?? "–"}` }, String(current.volume ?? 0),
        el("span", { class: "muted small" }, ` / ${baseline.volume ?? "–"}`)),
      el("td", { class: `num ${scoreClass(current.mean_score)}` }, fmt.signed(current.mean_score),
        el("span", { class: "muted small" }, ` (${fmt.signed(entity.score_delta)})`)),
      el("td", { class: "num" }, fmt.percent(current.negative_share),
        el("span", { class: "muted small" }, ` (${entity.negative_share_delta === null || entity.negative_share_delta === undefined ? "–" : `${entity.negative_share_delta > 0 ? "+" : ""}${Math.round(entity.negative_share_delta * 100)} pts`})`)),
      el("td", { class: "num" }, openAlerts[entity.name] ? el("span", { class: "badge warn" }, String(openAlerts[entity.name])) : "0"),
    );
    const choose = () => selectEntity(entity.name);
    row.addEventListener("click", choose);
    row.addEventListener("keydown", (event) => event.key === "Enter" && choose());
    return row;
  }

  async function loadWatchlist() {
    const entities = await api("/api/sentiment/entities");
    if (!entities.length) {
      watchlistBody.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "The watchlist is empty (plugins.sentiment.watchlist).")));
      return;
    }
    watchlistBody.replaceChildren(...entities.map(entityRow));
    if (!selected || !entities.some((e) => e.name === selected)) {
      const alerted = entities.find((e) => openAlerts[e.name]);
      selectEntity((alerted || entities[0]).name);
    }
  }

  // -- chart ------------------------------------------------------------------------------
  async function loadChart() {
    if (!selected) return;
    chartTitle.textContent = `${selected} over time`;
    try {
      const blob = await api(`/api/sentiment/entities/${encode(selected)}/chart.png`, {
        as: "blob",
        query: { bucket: bucket.value, days: days.value },
      });
      if (chartUrl) URL.revokeObjectURL(chartUrl);
      chartUrl = URL.createObjectURL(blob); // fetched with the API key, shown without another request
      chart.src = chartUrl;
      chart.alt = `${selected}: mean sentiment and volume, last ${days.value} days`;
      chart.hidden = false;
      chartEmpty.hidden = true;
    } catch (error) {
      chart.hidden = true;
      chartEmpty.hidden = false;
      chartEmpty.textContent = error.message;
    }
  }

  function selectEntity(name) {
    selected = name;
    for (const row of watchlistBody.querySelectorAll("tr[data-entity]")) {
      row.setAttribute("aria-selected", String(row.dataset.entity === name));
    }
    loadChart();
  }

  bucket.addEventListener("change", loadChart);
  days.addEventListener("change", loadChart);

  // -- alerts -----------------------------------------------------------------------------
  function evidenceItem(item) {
    const internal = !item.url || item.url.startsWith("/");
    const text = el("span", { class: "doc-text", hidden: true });
    const toggle = el("button", { type: "button", class: "link" }, item.title || `document ${item.id}`);
    toggle.addEventListener("click", async () => {
      if (!text.hidden) {
        text.hidden = true;
        return;
      }
      if (!text.textContent) {
        const doc = await api(`/api/sentiment/documents/${item.id}`);
        text.textContent = doc.text || doc.title || "";
      }
      text.hidden = false;
    });
    return el(
      "li",
      {},
      toggle,
      el("span", { class: `muted ${scoreClass(item.score)}` }, ` ${item.label} ${fmt.signed(item.score)}`),
      el("span", { class: "muted" }, ` · ${fmt.time(item.published_at)}`),
      internal ? null : [" · ", el("a", { href: item.url, target: "_blank", rel: "noopener noreferrer" }, "source ↗")],
      text,
    );
  }

  // One badge per sink: sent, queued, retrying (with the next attempt) or given up (with the reason).
  const DELIVERY_BADGE = { sent: ["good", "sent"], pending: ["muted", "queued"], failed: ["warn", "retrying"], given_up: ["bad", "given up"] };

  function deliveryBadge(delivery) {
    const status = delivery.status || (delivery.ok ? "sent" : "failed");
    const [kind, label] = DELIVERY_BADGE[status] || ["muted", status];
    const tries = delivery.attempts > 1 ? ` ×${delivery.attempts}` : "";
    const details = [
      delivery.sent_at ? `sent ${fmt.time(delivery.sent_at)}` : "",
      delivery.next_attempt_at ? `next attempt ${fmt.time(delivery.next_attempt_at)}` : "",
      delivery.error || "",
    ].filter(Boolean).join(" · ");
    return el("span", { class: `badge ${kind} delivery`, title: details, dataset: { status } }, `${delivery.sink}: ${label}${tries}`);
  }

  function alertItem(alert) {
    const state = alert.acknowledged
      ? el("span", { class: "badge good alert-state" }, `Acknowledged${alert.acknowledged_by ? ` by ${alert.acknowledged_by}` : ""}`)
      : el("span", { class: "badge bad alert-state" }, "Open");
    const ack = alert.acknowledged
      ? el("span", { class: "muted small" }, `acknowledged ${fmt.time(alert.acknowledged_at)}`)
      : el("button", { type: "button", class: "primary ack" }, "Acknowledge");
    const node = el(
      "li",
      { class: `alert ${alert.severity} ${alert.acknowledged ? "acknowledged" : "open"}`, dataset: { alertId: alert.id } },
      el(
        "header",
        {},
        el("span", { class: `badge ${alert.severity}` }, alert.severity),
        el("strong", {}, alert.title),
        state,
      ),
      el(
        "div",
        { class: "muted small" },
        [alert.entity, alert.topic, alert.rule, fmt.time(alert.created_at)].filter(Boolean).join(" · "),
        alert.backfill ? " · backfill" : "",
      ),
      el("p", {}, alert.message),
      alert.evidence && alert.evidence.length
        ? el("details", {}, el("summary", { class: "small" }, `Evidence (${alert.evidence.length})`),
          el("ul", { class: "evidence" }, alert.evidence.map(evidenceItem)))
        : null,
      alert.deliveries && alert.deliveries.length
        ? el("div", { class: "row deliveries small" }, el("span", { class: "muted" }, "Delivery:"), alert.deliveries.map(deliveryBadge))
        : null,
      el("div", { class: "row" }, ack),
    );
    if (!alert.acknowledged) {
      ack.addEventListener("click", async () => {
        ack.disabled = true;
        try {
          const by = ackBy.value.trim() || null;
          const updated = await api(`/api/sentiment/alerts/${alert.id}/ack`, { method: "POST", body: { by } });
          node.replaceWith(alertItem(updated)); // stays visible, acknowledged, until the next refresh
          if (alert.entity && openAlerts[alert.entity]) openAlerts[alert.entity] -= 1;
          loadWatchlist().catch(() => {}); // its open-alert counts
        } catch (_) {
          ack.disabled = false;
        }
      });
    }
    return node;
  }

  async function loadAlerts() {
    const alerts = await api("/api/sentiment/alerts", { query: { all: showAcknowledged.checked, limit: 100 } });
    openAlerts = {};
    for (const alert of alerts) {
      if (!alert.acknowledged && alert.entity) openAlerts[alert.entity] = (openAlerts[alert.entity] || 0) + 1;
    }
    alertList.replaceChildren(
      ...(alerts.length ? alerts.map(alertItem) : [el("li", { class: "muted" }, showAcknowledged.checked ? "No alerts." : "No open alerts.")]),
    );
  }

  showAcknowledged.addEventListener("change", () => loadAlerts().catch(() => {}));

  // -- runs -------------------------------------------------------------------------------
  async function loadLastRun() {
    const runs = await api("/api/sentiment/runs", { query: { limit: 1 } });
    if (!runs.length) return;
    const run = runs[0];
    const counts = Object.entries(run.counts || {}).map(([name, count]) => `${count} ${name}`).join(", ");
    lastRun.textContent = `Last run ${fmt.time(run.finished_at || run.started_at)}: ${run.status}${counts ? ` (${counts})` : ""}`;
    lastRun.className = `small ${run.status === "ok" ? "muted" : "bad"}`;
  }

  async function refresh() {
    try {
      await loadAlerts(); // first: the watchlist shows each entity's open alerts
      await Promise.all([loadWatchlist(), loadLastRun()]);
    } catch (_) {
      // shown in the error bar by Suite.api
    }
  }

  document.getElementById("refresh").addEventListener("click", () => refresh().then(loadChart));
  refresh();
  setInterval(() => document.visibilityState === "visible" && refresh(), REFRESH_MS);
})();
