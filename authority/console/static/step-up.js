// Step-up: a form marked data-step-up="<action>" data-target="<id>" is sent only with a
// fresh passkey assertion for exactly that action, asked for when the person submits it.
// Without this script the form still posts, and the authority refuses it (403).
"use strict";

(function () {
  function wire() {
    document.querySelectorAll("form[data-step-up]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        const field = form.querySelector('input[name="passkey"]');
        if (!field || field.value) return; // confirmed: let it go
        event.preventDefault();
        const box = form.querySelector("[data-step-up-status]");
        const say = (text, failed) => {
          if (!box) return;
          box.textContent = text;
          box.hidden = false;
          box.classList.toggle("error", Boolean(failed));
        };
        say("Confirm with your passkey…");
        const passkeys = window.authorityPasskeys;
        passkeys
          .post("/console/step-up", {
            action: form.dataset.stepUp,
            target: form.dataset.target,
          })
          .then((options) => passkeys.get(options))
          .then((assertion) => {
            field.value = assertion;
            form.submit();
          })
          .catch((error) => say(error.message || "Not confirmed.", true));
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
