/*
 * Passkeys (WebAuthn) for the login and account pages of commune-sso.
 *
 * A form marked data-passkey="sign-in" or data-passkey="register" is an ordinary POST form
 * with a hidden "credential" field. On submit this script asks the server for the ceremony's
 * options (POST to data-options, with the form's own fields: CSRF token, interaction, name),
 * runs navigator.credentials.get / create, puts the credential (JSON, base64url fields: the
 * shape of WebAuthn Level 3 toJSON()) into the hidden field and submits the form for real.
 * The server checks everything; this script only carries bytes. Without WebAuthn in the
 * browser the forms stay hidden (they carry the "hidden" attribute until this script runs).
 */
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBuffers(descriptors) {
    return (descriptors || []).map(function (d) {
      return Object.assign({}, d, { id: toBuffer(d.id) });
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBuffer(json.user.id) });
    options.excludeCredentials = withBuffers(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBuffer(json.challenge);
    options.allowCredentials = withBuffers(json.allowCredentials);
    return options;
  }

  function registrationJson(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : []
      },
      clientExtensionResults: credential.getClientExtensionResults()
    };
  }

  function assertionJson(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: toBase64url(response.userHandle)
      },
      clientExtensionResults: credential.getClientExtensionResults()
    };
  }

  function showError(form, text) {
    var box = form.querySelector("[data-passkey-error]");
    if (!box) return;
    box.textContent = text || form.getAttribute("data-error-text") || "";
    box.hidden = false;
  }

  async function run(form) {
    var kind = form.getAttribute("data-passkey");
    var fields = new URLSearchParams(new FormData(form));
    fields.delete("credential");
    var answer = await fetch(form.getAttribute("data-options"), {
      method: "POST",
      body: fields,
      credentials: "same-origin",
      headers: { Accept: "application/json" }
    });
    var json = await answer.json();
    if (!answer.ok) {
      showError(form, json.error);
      return;
    }
    var credential;
    try {
      credential = kind === "register"
        ? await navigator.credentials.create({ publicKey: creationOptions(json) })
        : await navigator.credentials.get({ publicKey: requestOptions(json) });
    } catch (error) {
      // Cancelled by the official, timed out, or no matching passkey on this device.
      showError(form, null);
      return;
    }
    var data = kind === "register" ? registrationJson(credential) : assertionJson(credential);
    form.querySelector("input[name=credential]").value = JSON.stringify(data);
    HTMLFormElement.prototype.submit.call(form);
  }

  function start() {
    if (!window.PublicKeyCredential || !navigator.credentials) return;
    document.querySelectorAll("[data-passkey-section]").forEach(function (section) {
      section.hidden = false;
    });
    document.querySelectorAll("form[data-passkey]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var buttons = form.querySelectorAll("button");
        buttons.forEach(function (b) { b.disabled = true; });
        run(form)
          .catch(function () { showError(form, null); })
          .finally(function () { buttons.forEach(function (b) { b.disabled = false; }); });
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
