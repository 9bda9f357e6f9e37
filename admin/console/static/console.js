// Tollgate admin console: small enhancements only. Every page works
// without this file. No inline script anywhere (the CSP forbids it).
"use strict";
// A page that shows a key or an invite link is sent with no-store, but a
// browser may still restore it from its back-forward cache: blank the
// secrets when that happens, so Back never shows a key again.
window.addEventListener("pageshow", function (ev) {
  if (!ev.persisted) { return; }
  document.querySelectorAll(".secret").forEach(function (el) { el.textContent = "…"; });
});
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: <button data-copy="element-id">.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var el = document.getElementById(btn.getAttribute("data-copy"));
      if (!el || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(el.textContent.trim()).then(function () {
        var label = btn.textContent;
        btn.textContent = btn.getAttribute("data-copied") || "✓";
        setTimeout(function () { btn.textContent = label; }, 1500);
      });
    });
  });
  // Live filter: <input data-filter="table-id" hidden> hides the rows of
  // this page that do not match (the server's search covers all pages).
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) { return; }
    input.hidden = false;
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        tr.hidden = q !== "" && tr.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
});
