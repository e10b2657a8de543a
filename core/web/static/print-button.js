/*
 * "Print" buttons (data-print): hidden in the page, shown and wired here, because the Content
 * Security Policy forbids inline script. Without JavaScript the browser's own Print command
 * gives the same page (the print stylesheet keeps only what is worth printing).
 */
"use strict";

document.querySelectorAll("[data-print]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () {
    window.print();
  });
});
