// Page view of the manuscribe review report: link each line's box and text, keyboard moves.
// Text is never parsed as HTML here: the page only toggles classes and follows links.
(function () {
  "use strict";
  var body = document.body;
  var KEY = "manuscribe.threshold";
  var threshold = parseFloat(body.getAttribute("data-threshold"));
  try {
    var stored = parseFloat(window.localStorage.getItem(KEY));
    if (!isNaN(stored)) threshold = stored;
  } catch (e) { /* storage may be off for file:// pages */ }

  var byLine = {};
  document.querySelectorAll("[data-line]").forEach(function (el) {
    var id = el.getAttribute("data-line");
    (byLine[id] = byLine[id] || []).push(el);
  });
  var textLines = Array.prototype.slice.call(document.querySelectorAll("li.line"));
  var selected = null;

  function mark(id, cls, on) {
    (byLine[id] || []).forEach(function (el) { el.classList.toggle(cls, on); });
  }
  function textOf(id) { return document.getElementById(id); }
  function boxOf(id) { return (byLine[id] || []).filter(function (el) { return el.classList.contains("box"); })[0]; }

  function select(id, scroll) {
    if (selected) mark(selected, "sel", false);
    selected = id;
    if (!id) return;
    mark(id, "sel", true);
    if (scroll) {
      var text = textOf(id), box = boxOf(id);
      if (text) text.scrollIntoView({ block: "nearest" });
      if (box) box.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    if (window.history && history.replaceState) history.replaceState(null, "", "#" + id);
  }

  Object.keys(byLine).forEach(function (id) {
    byLine[id].forEach(function (el) {
      el.addEventListener("mouseenter", function () { mark(id, "hl", true); });
      el.addEventListener("mouseleave", function () { mark(id, "hl", false); });
      el.addEventListener("click", function () { select(id, true); });
      el.addEventListener("focus", function () { if (selected !== id) select(id, true); });
    });
  });

  // ground-truth rows and their dashed boxes
  document.querySelectorAll("tr[data-gt]").forEach(function (row) {
    var box = document.querySelector('rect[data-gt="' + row.getAttribute("data-gt") + '"]');
    if (!box) return;
    row.addEventListener("mouseenter", function () { box.classList.add("hl"); row.classList.add("hl"); });
    row.addEventListener("mouseleave", function () { box.classList.remove("hl"); row.classList.remove("hl"); });
  });
  var cerToggle = document.getElementById("by-cer");
  if (cerToggle) {
    cerToggle.addEventListener("change", function () { body.classList.toggle("by-cer", cerToggle.checked); });
    body.classList.toggle("by-cer", cerToggle.checked);
  }

  function applyThreshold() {
    textLines.forEach(function (li) {
      var low = parseFloat(li.getAttribute("data-conf")) < threshold;
      mark(li.id, "low", low);
    });
    var input = document.getElementById("threshold");
    if (input && parseFloat(input.value) !== threshold) input.value = threshold.toFixed(2);
  }
  var input = document.getElementById("threshold");
  if (input) {
    input.addEventListener("input", function () {
      var value = parseFloat(input.value);
      if (isNaN(value)) return;
      threshold = value;
      try { window.localStorage.setItem(KEY, String(value)); } catch (e) { /* ignore */ }
      applyThreshold();
    });
  }
  applyThreshold();

  // previous / next page across documents, from data/order.js when it is there
  var order = window.MANUSCRIBE_ORDER || [];
  var parts = window.location.pathname.split("/");
  var here = parts.slice(-3).join("/");
  var position = order.indexOf(decodeURIComponent(here));
  if (position >= 0) {
    var root = "../../";
    var prev = document.getElementById("prev"), next = document.getElementById("next");
    if (prev && position > 0) prev.setAttribute("href", root + order[position - 1]);
    if (next && position < order.length - 1) next.setAttribute("href", root + order[position + 1]);
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link && link.getAttribute("href")) window.location.href = link.getAttribute("href");
  }
  function nextLow(step) {
    var low = textLines.filter(function (li) { return li.classList.contains("low"); });
    if (!low.length) return;
    var at = low.map(function (li) { return li.id; }).indexOf(selected);
    var index = at < 0 ? (step > 0 ? 0 : low.length - 1) : (at + step + low.length) % low.length;
    select(low[index].id, true);
  }
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea") return;
    var key = event.key;
    if (key === "ArrowRight" || key === "n") { follow("next"); }
    else if (key === "ArrowLeft" || key === "p") { follow("prev"); }
    else if (key === "j") { nextLow(1); }
    else if (key === "k") { nextLow(-1); }
    else if (key === "Escape") { select(null); }
    else return;
    event.preventDefault();
  });

  var hash = decodeURIComponent(window.location.hash.slice(1));
  if (hash && byLine[hash]) select(hash, true);
})();
