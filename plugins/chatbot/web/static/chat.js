// The chat page: sends messages to /api/chatbot/ask, shows each answer's source, rates answers.
(() => {
  "use strict";
  const { api, el, fmt } = window.Suite;

  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const send = document.getElementById("chat-send");
  const intentList = document.getElementById("intent-list");
  const welcome = document.getElementById("chat-welcome");
  let conversationId = null;
  let titles = {}; // intent name -> title, for clarifying questions

  const scrollDown = () => log.lastElementChild && log.lastElementChild.scrollIntoView({ block: "nearest" });

  function citationItem(citation) {
    const title = citation.url
      ? el("a", { href: citation.url, target: "_blank", rel: "noopener noreferrer" }, citation.title)
      : el("strong", {}, citation.title);
    return el(
      "li",
      { class: "citation" },
      title,
      el("span", { class: "muted" }, ` — ${citation.doc} · similarity ${fmt.number(citation.score)}`),
      el("span", { class: "snippet" }, citation.snippet),
    );
  }

  // A thumb drawn inline (no emoji font needed); the outline is Feather's "thumbs-up" (MIT).
  const SVG = "http://www.w3.org/2000/svg";
  function thumb(direction) {
    const svg = document.createElementNS(SVG, "svg");
    for (const [name, value] of Object.entries({ viewBox: "0 0 24 24", width: 16, height: 16, "aria-hidden": "true", class: `thumb ${direction}` })) {
      svg.setAttribute(name, value);
    }
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3");
    svg.append(path);
    return svg;
  }

  function ratingButtons(exchangeId) {
    const status = el("span", { class: "muted small", "aria-live": "polite" });
    const buttons = [];
    async function rate(rating, button) {
      if (button.getAttribute("aria-pressed") === "true") return; // already recorded; the other button changes it
      buttons.forEach((b) => (b.disabled = true));
      try {
        const saved = await api("/api/chatbot/feedback", { method: "POST", body: { exchange_id: exchangeId, rating } });
        buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.rating === saved.rating)));
        status.textContent = "Thanks for the feedback";
      } catch (_) {
        status.textContent = "not saved";
      } finally {
        buttons.forEach((b) => (b.disabled = false));
      }
    }
    for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
      const button = el("button", { type: "button", "aria-label": label, title: label, "aria-pressed": "false", dataset: { rating } }, thumb(rating));
      button.addEventListener("click", () => rate(rating, button));
      buttons.push(button);
    }
    return el("span", { class: "rating" }, status, buttons);
  }

  // The intent behind a template answer; for the others, the model's best guess that was not used.
  function intentLabel(reply) {
    const name = titles[reply.intent] || reply.intent.replaceAll("_", " ");
    const sure = reply.confidence === null || reply.confidence === undefined ? "" : ` (${fmt.percent(reply.confidence)})`;
    return reply.source === "template" || reply.source === "clarify" ? `intent: ${name}${sure}` : `best guess: ${name}${sure}`;
  }

  function botTurn(reply) {
    const meta = el(
      "div",
      { class: "meta" },
      el("span", { class: `badge source ${reply.source}`, title: "where the answer came from" }, reply.source),
      reply.intent ? el("span", { class: "intent" }, intentLabel(reply)) : null,
      reply.awaiting_slot ? el("span", {}, `waiting for: ${reply.awaiting_slot.replaceAll("_", " ")}`) : null,
      reply.exchange_id !== null && reply.exchange_id !== undefined ? ratingButtons(reply.exchange_id) : null,
    );
    const choices = (reply.clarify || []).map((intent) => {
      const label = titles[intent] || intent.replaceAll("_", " ");
      return el("button", { type: "button", class: "choice", onclick: () => ask(label) }, label);
    });
    return el(
      "li",
      { class: `turn bot source-${reply.source}`, dataset: { exchangeId: reply.exchange_id ?? "" } },
      el("div", { class: "answer" }, reply.answer),
      reply.citations && reply.citations.length
        ? el("ol", { class: "citations", "aria-label": "Sources" }, reply.citations.map(citationItem))
        : null,
      reply.source === "handoff"
        ? el("div", { class: "handoff" }, `Handed off to an agent${reply.handoff_reason ? `: ${reply.handoff_reason}` : ""}`)
        : null,
      choices.length ? el("div", { class: "choices" }, choices) : null,
      meta,
    );
  }

  async function ask(message) {
    const text = message.trim();
    if (!text) return;
    log.append(el("li", { class: "turn user" }, text));
    const pending = el("li", { class: "turn bot pending" }, "…");
    log.append(pending);
    scrollDown();
    input.value = "";
    input.disabled = send.disabled = true;
    try {
      const reply = await api("/api/chatbot/ask", { method: "POST", body: { message: text, conversation_id: conversationId } });
      conversationId = reply.conversation_id;
      pending.replaceWith(botTurn(reply));
    } catch (error) {
      pending.replaceWith(el("li", { class: "turn bot error bad" }, `Error: ${error.message}`));
    } finally {
      input.disabled = send.disabled = false;
      input.focus();
      scrollDown();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(input.value);
  });

  document.getElementById("new-conversation").addEventListener("click", () => {
    conversationId = null;
    log.replaceChildren(welcome);
    input.focus();
  });

  api("/api/chatbot/intents", { quiet: true })
    .then((intents) => {
      titles = Object.fromEntries(intents.map((intent) => [intent.name, intent.title]));
      const shown = intents.filter((intent) => intent.has_template || intent.handoff);
      intentList.replaceChildren(
        ...shown.map((intent) =>
          el("li", {}, intent.title, intent.handoff ? el("span", { class: "muted" }, " (an agent takes over)") : null),
        ),
      );
    })
    .catch((error) => intentList.replaceChildren(el("li", { class: "muted" }, error.message)));
  input.focus();
})();
