// The home page's status panel: /ready (open without a key) says what is missing.
(() => {
  "use strict";
  const { el, root } = window.Suite;
  const summary = document.getElementById("ready-summary");
  const list = document.getElementById("ready-checks");

  function checkItem(name, check) {
    const items = Object.entries(check.items || {}).map(([sub, item]) =>
      el("li", { class: item.ok ? "ok" : "bad" }, el("code", {}, sub), " ", item.detail),
    );
    return el(
      "li",
      { class: check.ok ? "ok" : check.required === false ? "warn" : "bad" },
      el("strong", {}, name),
      ": ",
      check.detail,
      items.length ? el("ul", { class: "plain nested" }, items) : null,
    );
  }

  fetch(`${root}/ready`, { headers: { Accept: "application/json" } })
    .then((response) => response.json())
    .then((data) => {
      summary.textContent = data.status === "ready" ? "Ready." : data.error ? data.error.message : "Not ready.";
      summary.className = data.status === "ready" ? "ok" : "bad";
      list.replaceChildren(...Object.entries(data.checks || {}).map(([name, check]) => checkItem(name, check)));
    })
    .catch((error) => {
      summary.textContent = `cannot reach the server: ${error.message}`;
      summary.className = "bad";
    });
})();
