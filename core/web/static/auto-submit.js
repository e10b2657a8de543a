/*
 * Forms marked data-auto-submit (the SAML HTTP-POST binding) are sent as soon as the page has
 * loaded, because the Content Security Policy forbids inline script. Without JavaScript the
 * official presses the form's button.
 */
"use strict";

window.addEventListener("load", function () {
  document.querySelectorAll("form[data-auto-submit]").forEach(function (form) {
    form.submit();
  });
});
