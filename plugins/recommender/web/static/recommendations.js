// The recommendations page: a user's (or described interests') recommendations and similar items.
(() => {
  "use strict";
  const { api, el, fmt } = window.Suite;
  const SIGNALS = ["text", "collaborative", "lexical", "popularity", "freshness"];

  const userForm = document.getElementById("user-form");
  const userSelect = document.getElementById("user-select");
  const interestsForm = document.getElementById("interests-form");
  const interests = document.getElementById("interests");
  const k = document.getElementById("k");
  const diversity = document.getElementById("diversity");
  const diversityValue = document.getElementById("diversity-value");
  const results = document.getElementById("results");
  const resultsTitle = document.getElementById("results-title");
  const resultsHelp = document.getElementById("results-help");
  const legend = document.getElementById("legend");
  const similarPanel = document.getElementById("similar-panel");
  const similarTitle = document.getElementById("similar-title");
  const similarList = document.getElementById("similar");
  const itemDetail = document.getElementById("item-detail");
  let lastQuery = null; // re-run when k or diversity change

  function signalBar(signals) {
    const bar = el("div", { class: "signals", title: "share of the score each signal gave" });
    SIGNALS.forEach((name, index) => {
      const share = signals[name] || 0;
      if (share <= 0) return;
      const part = el("span", { class: `s${index}`, title: `${name} ${fmt.percent(share)}` });
      part.style.width = `${Math.round(share * 1000) / 10}%`; // CSSOM: allowed by the page's CSP
      bar.append(part);
    });
    return bar;
  }

  function recommendationItem(rec, { showBecause = true } = {}) {
    const node = el(
      "li",
      { class: "rec", dataset: { item: rec.item } },
      el(
        "header",
        {},
        el("strong", {}, rec.title || rec.item),
        el("span", { class: "muted small" }, `score ${fmt.number(rec.score)}`),
        el("button", { type: "button", class: "small similar-button", onclick: () => openSimilar(rec.item, rec.title, node) }, "Similar items"),
      ),
      showBecause && rec.because && rec.because.length
        ? el(
            "div",
            { class: "because" },
            el("span", { class: "muted" }, "Matched: "),
            el("ul", { class: "plain", "aria-label": "Matched history items" },
              rec.because.map((b) => el("li", { class: "matched" }, b.title || b.item, el("span", { class: "muted" }, ` (${fmt.number(b.similarity)})`)))),
          )
        : null,
      rec.tags && rec.tags.length ? el("div", { class: "tags" }, rec.tags.map((tag) => el("span", { class: "badge muted" }, tag))) : null,
      signalBar(rec.signals || {}),
    );
    return node;
  }

  function showResults(title, recs, emptyMessage) {
    resultsTitle.textContent = title;
    results.replaceChildren(...recs.map((rec) => recommendationItem(rec)));
    resultsHelp.textContent = recs.length ? "" : emptyMessage;
    resultsHelp.hidden = recs.length > 0;
    legend.hidden = recs.length === 0;
  }

  function options() {
    const value = Number(diversity.value);
    return { k: Number(k.value), diversity: value > 0 ? value : null };
  }

  async function recommendForUser(user) {
    lastQuery = () => recommendForUser(user);
    const { k: count, diversity: div } = options();
    const data = await api(`/api/recommender/users/${encodeURIComponent(user)}/recommendations`, { query: { k: count, diversity: div } });
    showResults(`Recommended for ${user}`, data.recommendations, "Nothing left to recommend to this user.");
    const url = new URL(window.location.href);
    url.searchParams.set("user", user);
    url.searchParams.delete("interests");
    history.replaceState(null, "", url);
  }

  async function recommendForInterests(text) {
    lastQuery = () => recommendForInterests(text);
    const { k: count, diversity: div } = options();
    const data = await api("/api/recommender/recommendations", { method: "POST", body: { interests: text, k: count, diversity: div } });
    showResults(`Recommended for “${text}”`, data.recommendations, "No item matches these interests.");
    const url = new URL(window.location.href);
    url.searchParams.set("interests", text);
    url.searchParams.delete("user");
    history.replaceState(null, "", url);
  }

  async function openSimilar(itemId, title, fromNode) {
    for (const node of document.querySelectorAll(".rec.selected")) node.classList.remove("selected");
    if (fromNode) fromNode.classList.add("selected");
    similarPanel.hidden = false;
    similarTitle.textContent = `Similar to ${title || itemId}`;
    similarList.replaceChildren(el("li", { class: "muted" }, "Loading…"));
    try {
      const [item, similar] = await Promise.all([
        api(`/api/recommender/items/${encodeURIComponent(itemId)}`),
        api(`/api/recommender/items/${encodeURIComponent(itemId)}/similar`, { query: { k: 5 } }),
      ]);
      itemDetail.replaceChildren(el("p", {}, item.description || ""));
      similarList.replaceChildren(
        ...(similar.length ? similar.map((rec) => recommendationItem(rec, { showBecause: false })) : [el("li", { class: "muted" }, "No similar items.")]),
      );
    } catch (error) {
      similarList.replaceChildren(el("li", { class: "bad" }, error.message));
    }
    similarPanel.scrollIntoView({ block: "nearest" });
  }

  userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (userSelect.value) recommendForUser(userSelect.value).catch(() => {});
  });
  userSelect.addEventListener("change", () => userSelect.value && recommendForUser(userSelect.value).catch(() => {}));
  interestsForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = interests.value.trim();
    if (text) recommendForInterests(text).catch(() => {});
  });
  const rerun = () => lastQuery && lastQuery().catch(() => {});
  k.addEventListener("change", rerun);
  diversity.addEventListener("input", () => (diversityValue.textContent = diversity.value));
  diversity.addEventListener("change", rerun);

  async function start() {
    const params = new URLSearchParams(window.location.search);
    try {
      const users = await api("/api/recommender/users", { query: { limit: 200 } });
      userSelect.replaceChildren(
        el("option", { value: "" }, users.length ? "Choose a user…" : "No users with history yet"),
        ...users.map((u) => el("option", { value: u.user }, `${u.user} (${u.items} items)`)),
      );
    } catch (_) {
      userSelect.replaceChildren(el("option", { value: "" }, "Users unavailable"));
    }
    if (params.get("user")) {
      userSelect.value = params.get("user");
      recommendForUser(params.get("user")).catch(() => {});
    } else if (params.get("interests")) {
      interests.value = params.get("interests");
      recommendForInterests(params.get("interests")).catch(() => {});
    }
  }

  start();
})();
