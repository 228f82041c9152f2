// Passkey ceremonies of the authority console: WebAuthn in the browser, verified by the
// authority. Options arrive as JSON (binary members in base64url) and responses go back
// the same way, with the page's CSRF token in a header.
"use strict";

(function () {
  function toBytes(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "===".slice((b64.length + 3) % 4);
    const raw = atob(padded);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function toB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(answer.error_description || "The authority refused the request.");
    }
    return answer;
  }

  function descriptors(list) {
    return (list || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
  }

  async function create(options) {
    const publicKey = Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      user: Object.assign({}, options.user, { id: toBytes(options.user.id) }),
      excludeCredentials: descriptors(options.excludeCredentials),
    });
    const credential = await navigator.credentials.create({ publicKey });
    const response = credential.response;
    return JSON.stringify({
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: toB64url(response.clientDataJSON),
        attestationObject: toB64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
    });
  }

  async function get(options) {
    const publicKey = Object.assign({}, options, {
      challenge: toBytes(options.challenge),
      allowCredentials: descriptors(options.allowCredentials),
    });
    const credential = await navigator.credentials.get({ publicKey });
    const response = credential.response;
    return JSON.stringify({
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      response: {
        clientDataJSON: toB64url(response.clientDataJSON),
        authenticatorData: toB64url(response.authenticatorData),
        signature: toB64url(response.signature),
        userHandle: response.userHandle ? toB64url(response.userHandle) : undefined,
      },
    });
  }

  function status(text, failed) {
    const box = document.getElementById("passkey-status");
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    box.classList.toggle("error", Boolean(failed));
  }

  async function signIn() {
    status("Waiting for your passkey…");
    const options = await post("/console/sign-in/options", {});
    const credential = await get(options);
    const answer = await post("/console/sign-in", { credential });
    window.location.assign(answer.redirect);
  }

  async function enrol(secret) {
    status("Waiting for your device…");
    const options = await post("/console/enrol/options", { secret });
    const credential = await create(options);
    const answer = await post("/console/enrol", { secret, credential });
    window.location.assign(answer.redirect);
  }

  function wire() {
    const signInButton = document.querySelector('[data-passkey="sign-in"]');
    if (signInButton) {
      signInButton.addEventListener("click", () => {
        signIn().catch((error) => status(error.message || "Sign-in failed.", true));
      });
    }
    const enrolButton = document.querySelector('[data-passkey="enrol"]');
    if (enrolButton) {
      // The link's secret is in the fragment, which no server ever sees; keep it out of
      // the history as soon as it is read.
      const secret = window.location.hash.slice(1);
      if (secret) history.replaceState(null, "", window.location.pathname);
      enrolButton.addEventListener("click", () => {
        if (!secret) {
          status("This page needs the whole enrolment link, as you received it.", true);
          return;
        }
        enrol(secret).catch((error) => status(error.message || "Enrolment failed.", true));
      });
    }
  }

  window.authorityPasskeys = { get, post };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wire);
  } else {
    wire();
  }
})();
