// The suite's page helper: JSON calls with the API key, error display, a tiny DOM builder.
// Pages hold no data: they call the JSON APIs through Suite.api(), which sends the key kept
// in sessionStorage (asked for once, when the server answers 401) and shows JSON errors.
(() => {
  "use strict";

  const KEY_STORAGE = "suite.apiKey";
  const body = document.body;
  const root = body.dataset.root || "";
  const authRequired = body.dataset.authRequired === "true";

  class ApiError extends Error {
    constructor(message, status, type) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.type = type;
    }
  }

  // el("a", {href: "/x", class: "btn", onclick: fn}, "text", childNode) -- text is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // -- errors -----------------------------------------------------------------------------
  const flashBox = document.getElementById("suite-flash");
  const flashText = document.getElementById("suite-flash-text");

  function flash(message) {
    flashText.textContent = message;
    flashBox.hidden = false;
  }

  function clearFlash() {
    flashBox.hidden = true;
    flashText.textContent = "";
  }

  document.getElementById("suite-flash-close").addEventListener("click", clearFlash);

  // -- the API key ------------------------------------------------------------------------
  const dialog = document.getElementById("suite-key-dialog");
  const keyInput = document.getElementById("suite-key-input");
  const keyButton = document.getElementById("suite-key-button");
  let keyWaiters = [];

  const storedKey = () => sessionStorage.getItem(KEY_STORAGE) || "";

  function settleKeyWaiters() {
    const key = storedKey();
    const waiters = keyWaiters;
    keyWaiters = [];
    for (const { resolve, reject } of waiters) {
      if (key) resolve(key);
      else reject(new ApiError("an API key is required", 401, "unauthorized"));
    }
  }

  function askForKey() {
    const waiting = new Promise((resolve, reject) => keyWaiters.push({ resolve, reject }));
    if (!dialog.open) {
      keyInput.value = "";
      dialog.showModal();
    }
    return waiting;
  }

  dialog.addEventListener("close", () => {
    const key = keyInput.value.trim();
    if (dialog.returnValue !== "forget" && key) sessionStorage.setItem(KEY_STORAGE, key);
    keyInput.value = "";
    settleKeyWaiters();
  });
  document.getElementById("suite-key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    keyInput.value = "";
    dialog.close("forget");
  });
  keyButton.hidden = !authRequired;
  keyButton.addEventListener("click", () => {
    keyInput.value = "";
    dialog.showModal();
  });

  // -- requests ---------------------------------------------------------------------------
  function urlFor(path, query) {
    const url = new URL(root + path, window.location.origin);
    for (const [name, value] of Object.entries(query || {})) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item !== null && item !== undefined && item !== "") url.searchParams.append(name, item);
      }
    }
    return url;
  }

  async function errorFrom(response) {
    let message = `HTTP ${response.status} ${response.statusText}`.trim();
    let type = "http";
    try {
      const data = await response.json();
      if (data && data.error) {
        message = data.error.message || message;
        type = data.error.type || type;
      }
    } catch (_) {
      // not a JSON body (a proxy's error page): keep the status line
    }
    return new ApiError(message, response.status, type);
  }

  // Suite.api(path, {method, body, query, as: "json"|"blob", quiet}) -> parsed JSON (or a Blob).
  // Errors are shown in the page's error bar (unless quiet) and thrown as ApiError.
  async function api(path, options = {}) {
    const { method = "GET", body: payload, query, as = "json", quiet = false } = options;
    try {
      for (let attempt = 0; ; attempt += 1) {
        const headers = { Accept: as === "json" ? "application/json" : "*/*" };
        const key = storedKey();
        if (key) headers.Authorization = `Bearer ${key}`;
        const init = { method, headers, credentials: "same-origin" };
        if (payload !== undefined) {
          headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(payload);
        }
        const response = await fetch(urlFor(path, query), init);
        if (response.status === 401 && attempt < 3) {
          if (key) sessionStorage.removeItem(KEY_STORAGE); // a wrong key: ask again
          await askForKey();
          continue;
        }
        if (!response.ok) throw await errorFrom(response);
        return as === "blob" ? await response.blob() : await response.json();
      }
    } catch (error) {
      const failure = error instanceof ApiError ? error : new ApiError(`cannot reach the server: ${error.message}`, 0, "network");
      if (!quiet) flash(failure.message);
      throw failure;
    }
  }

  // -- formatting ---------------------------------------------------------------------------
  const fmt = {
    number: (value, digits = 2) => (value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits)),
    percent: (value) => (value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`),
    signed: (value, digits = 2) => (value === null || value === undefined ? "–" : `${value > 0 ? "+" : ""}${Number(value).toFixed(digits)}`),
    time: (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–"),
  };

  window.Suite = { api, el, flash, clearFlash, fmt, root, authRequired, ApiError };
})();
