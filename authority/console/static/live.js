// Live containment events: polls a small JSON endpoint and lists what is new, as text.
"use strict";

(function () {
  function wire() {
    const list = document.querySelector("[data-live-events]");
    if (!list) return;
    const url = list.getAttribute("data-live-events");
    const every = Number(list.getAttribute("data-every") || "5") * 1000;
    let after = list.getAttribute("data-after") || "";

    async function poll() {
      try {
        const response = await fetch(url + "?after=" + encodeURIComponent(after), {
          credentials: "same-origin",
        });
        if (!response.ok) return;
        const answer = await response.json();
        (answer.items || []).forEach((item) => {
          const row = document.createElement("li");
          row.textContent = item.time + " · " + item.kind + " · " + item.summary;
          list.prepend(row);
        });
        if (answer.next) after = String(answer.next);
        const empty = document.querySelector("[data-live-empty]");
        if (empty && list.children.length) empty.hidden = true;
      } catch (error) {
        // Offline for a moment: the next poll tries again.
      }
    }
    window.setInterval(poll, every);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
