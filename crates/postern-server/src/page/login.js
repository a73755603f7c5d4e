// Postern's sign-in page: passkey registration and login through the
// browser's navigator.credentials API, then a call with the session.
// The session itself is never visible here: in cookie mode it is an
// HttpOnly cookie the browser sends on its own, with the HttpOnly device
// cookie the session is bound to, so no request here sends a device header.
"use strict";

const b64url = {
  encode(buffer) {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  decode(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
  },
};

// A stable id for this browser, sent with a login as its `device` (an
// identity proof would be bound to it); the session itself is bound to the
// device cookie the login sets.
function deviceId() {
  let id = localStorage.getItem("postern.device");
  if (!id) {
    id = b64url.encode(crypto.getRandomValues(new Uint8Array(16)));
    localStorage.setItem("postern.device", id);
  }
  return id;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${response.status} ${json.error || "error"}: ${json.message || ""}`);
  }
  return json;
}

function userName() {
  return document.getElementById("user").value.trim();
}

async function register() {
  const user = userName();
  if (!user) throw new Error("enter a user name first");
  const start = await api("/v1/passkeys/register/start", { user });
  const options = start.options.publicKey;
  options.challenge = b64url.decode(options.challenge);
  options.user.id = b64url.decode(options.user.id);
  for (const c of options.excludeCredentials || []) c.id = b64url.decode(c.id);
  const credential = await navigator.credentials.create({ publicKey: options });
  const response = credential.response;
  const done = await api("/v1/passkeys/register/finish", {
    ceremony_id: start.ceremony_id,
    credential: {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: b64url.encode(response.attestationObject),
        clientDataJSON: b64url.encode(response.clientDataJSON),
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    },
  });
  return `passkey registered for ${done.user}`;
}

async function login(usernameless) {
  const user = usernameless ? undefined : userName();
  if (!usernameless && !user) throw new Error("enter a user name first");
  const start = await api("/v1/passkeys/login/start", user ? { user } : {});
  const options = start.options.publicKey;
  options.challenge = b64url.decode(options.challenge);
  for (const c of options.allowCredentials || []) c.id = b64url.decode(c.id);
  const credential = await navigator.credentials.get({ publicKey: options });
  const response = credential.response;
  const session = await api("/v1/passkeys/login/finish", {
    ceremony_id: start.ceremony_id,
    device: deviceId(),
    credential: {
      id: credential.id,
      rawId: b64url.encode(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: b64url.encode(response.authenticatorData),
        clientDataJSON: b64url.encode(response.clientDataJSON),
        signature: b64url.encode(response.signature),
        userHandle: response.userHandle ? b64url.encode(response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    },
  });
  document.getElementById("user").value = session.user;
  return `signed in as ${session.user}`;
}

async function check() {
  const response = await fetch("/v1/check", { headers: { Accept: "application/json" } });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${json.error || "error"}: not signed in`);
  return `signed in as ${json.user} (session ${json.session_id})`;
}

async function logout() {
  const response = await fetch("/v1/session/logout", { method: "POST" });
  const json = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status} ${json.error || "error"}: ${json.message || ""}`);
  return "signed out";
}

// Runs one action, reporting it in #status (data-action, data-state) so a
// person and the browser test read the same outcome.
function bind(id, action) {
  const status = document.getElementById("status");
  document.getElementById(id).addEventListener("click", async () => {
    status.dataset.action = id;
    status.dataset.state = "pending";
    status.textContent = "…";
    try {
      status.textContent = await action();
      status.dataset.state = "ok";
    } catch (error) {
      status.textContent = error.message || String(error);
      status.dataset.state = "error";
    }
  });
}

bind("register", register);
bind("login", () => login(false));
bind("discover", () => login(true));
bind("check", check);
bind("logout", logout);
