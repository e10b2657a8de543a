/*
 * Certificate renewal with a key made in this browser (WebCrypto), for /ca/pages/renew/...
 *
 * Generates an ECDSA P-256 key pair, builds a PKCS#10 certificate request (RFC 2986) with a
 * minimal DER encoder, signs its CertificationRequestInfo with the new private key
 * (ecdsa-with-SHA256, RFC 5758 §3.2; WebCrypto's raw r||s signature is re-encoded as the DER
 * Ecdsa-Sig-Value of RFC 3279 §2.2.3) and puts only the CSR into the form. The private key
 * never leaves the browser: it is offered as an unencrypted PKCS#8 PEM file to save (WebCrypto
 * cannot encrypt PKCS#8), with a warning, and the form is sent only after it was saved.
 * The page works without this script (CSR upload); the section stays hidden then.
 */
(function () {
  "use strict";

  // ---- minimal DER (X.690) ------------------------------------------------------------

  function concat(parts) {
    var length = parts.reduce(function (sum, p) { return sum + p.length; }, 0);
    var out = new Uint8Array(length);
    var offset = 0;
    parts.forEach(function (p) { out.set(p, offset); offset += p.length; });
    return out;
  }

  function derLength(n) {
    if (n < 0x80) return new Uint8Array([n]);
    var bytes = [];
    while (n > 0) { bytes.unshift(n & 0xff); n = n >>> 8; }
    return new Uint8Array([0x80 | bytes.length].concat(bytes));
  }

  function tlv(tag, content) {
    return concat([new Uint8Array([tag]), derLength(content.length), content]);
  }

  function sequence(items) { return tlv(0x30, concat(items)); }
  function set(items) { return tlv(0x31, concat(items)); }
  function contextConstructed(number, content) { return tlv(0xa0 | number, content); }

  function integer(bytes) {
    // Unsigned big-endian magnitude -> minimal two's complement INTEGER.
    var i = 0;
    while (i < bytes.length - 1 && bytes[i] === 0) i++;
    var trimmed = bytes.slice(i);
    if (trimmed[0] & 0x80) trimmed = concat([new Uint8Array([0]), trimmed]);
    return tlv(0x02, trimmed);
  }

  function oid(dotted) {
    var arcs = dotted.split(".").map(Number);
    var out = [40 * arcs[0] + arcs[1]];
    arcs.slice(2).forEach(function (arc) {
      var chunk = [arc & 0x7f];
      arc = Math.floor(arc / 128);
      while (arc > 0) { chunk.unshift(0x80 | (arc & 0x7f)); arc = Math.floor(arc / 128); }
      out = out.concat(chunk);
    });
    return tlv(0x06, new Uint8Array(out));
  }

  function utf8String(text) { return tlv(0x0c, new TextEncoder().encode(text)); }
  function bitString(bytes) { return tlv(0x03, concat([new Uint8Array([0]), bytes])); }

  // ---- PKCS#10 --------------------------------------------------------------------------

  var OID_COMMON_NAME = "2.5.4.3";
  var OID_ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

  function rawSignatureToDer(raw) {
    var half = raw.length / 2;
    return sequence([integer(raw.slice(0, half)), integer(raw.slice(half))]);
  }

  async function buildCsr(keyPair, commonName) {
    var spki = new Uint8Array(await crypto.subtle.exportKey("spki", keyPair.publicKey));
    // The CA builds the subject from the official's verified data; this one is informative.
    var subject = sequence([set([sequence([oid(OID_COMMON_NAME), utf8String(commonName)])])]);
    var info = sequence([
      integer(new Uint8Array([0])), // version v1(0)
      subject,
      spki,
      contextConstructed(0, new Uint8Array(0)) // attributes: none
    ]);
    var raw = new Uint8Array(
      await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, keyPair.privateKey, info)
    );
    var csr = sequence([
      info,
      sequence([oid(OID_ECDSA_WITH_SHA256)]),
      bitString(rawSignatureToDer(raw))
    ]);
    return { der: csr, spki: spki };
  }

  function base64(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }

  function pem(label, bytes) {
    var lines = base64(bytes).match(/.{1,64}/g) || [];
    return "-----BEGIN " + label + "-----\n" + lines.join("\n") + "\n-----END " + label + "-----\n";
  }

  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }

  // ---- the page -------------------------------------------------------------------------

  function start() {
    var section = document.getElementById("browser-option");
    var form = document.getElementById("browser-form");
    if (!section || !form) return;
    if (!window.crypto || !window.crypto.subtle || !window.isSecureContext) {
      return; // WebCrypto needs https (or the loopback address): the CSR upload remains
    }
    section.hidden = false;
    var generate = document.getElementById("browser-generate");
    var result = document.getElementById("browser-result");
    var error = document.getElementById("browser-error");
    var submit = document.getElementById("browser-submit");
    var download = document.getElementById("browser-key-download");
    var saved = false;
    submit.disabled = true;

    generate.addEventListener("click", async function () {
      generate.disabled = true;
      error.hidden = true;
      try {
        var keyPair = await crypto.subtle.generateKey(
          { name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]
        );
        var csr = await buildCsr(keyPair, form.dataset.commonName || "");
        var pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keyPair.privateKey));
        var fingerprint = hex(new Uint8Array(await crypto.subtle.digest("SHA-256", csr.spki)));
        document.getElementById("browser-csr").value = pem("CERTIFICATE REQUEST", csr.der);
        document.getElementById("browser-fingerprint").textContent = fingerprint;
        var blob = new Blob([pem("PRIVATE KEY", pkcs8)], { type: "application/x-pem-file" });
        download.href = URL.createObjectURL(blob);
        download.download = "private-key-" + fingerprint.slice(0, 16) + ".pem";
        result.hidden = false;
        generate.hidden = true;
        download.focus();
      } catch (e) {
        error.textContent = (e && e.message) || String(e);
        error.hidden = false;
        generate.disabled = false;
      }
    });

    download.addEventListener("click", function () {
      saved = true;
      submit.disabled = false;
    });

    form.addEventListener("submit", function (event) {
      if (!saved || !document.getElementById("browser-csr").value) {
        event.preventDefault();
        download.focus();
        return;
      }
      submit.disabled = true; // one click, one request (the form token covers the rest)
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
