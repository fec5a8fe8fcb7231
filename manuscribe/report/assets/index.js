// Index of the manuscribe review report: sortable pages, and the lines below a confidence
// threshold. Line text comes from data/lines.js and is only ever set as textContent.
(function () {
  "use strict";
  var KEY = "manuscribe.threshold";
  var PAGE = 200;
  var pages = window.MANUSCRIBE_PAGES || [];
  var lines = window.MANUSCRIBE_LINES || [];
  var threshold = parseFloat(document.body.getAttribute("data-threshold"));
  try {
    var stored = parseFloat(window.localStorage.getItem(KEY));
    if (!isNaN(stored)) threshold = stored;
  } catch (e) { /* storage may be off for file:// pages */ }

  var slider = document.getElementById("threshold");
  var shown = document.getElementById("threshold-value");
  var count = document.getElementById("check-count");
  var list = document.getElementById("check-list");
  var more = document.getElementById("check-more");
  var rowsByHref = {};
  document.querySelectorAll("table.pages tbody tr").forEach(function (tr) {
    rowsByHref[tr.getAttribute("data-page")] = tr;
  });
  var low = [];
  var limit = PAGE;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render() {
    list.textContent = "";
    var fragment = document.createDocumentFragment();
    low.slice(0, limit).forEach(function (line) {
      var page = pages[line[0]];
      var item = el("li", "check-line");
      var link = el("a");
      link.setAttribute("href", page[2] + "#" + line[1]);
      link.appendChild(el("span", "conf", line[2].toFixed(2)));
      link.appendChild(el("span", "where", page[0] + " p." + page[1] + " " + line[1]));
      link.appendChild(el("span", "t", line[3]));
      item.appendChild(link);
      fragment.appendChild(item);
    });
    list.appendChild(fragment);
    more.hidden = low.length <= limit;
  }

  function update() {
    shown.textContent = threshold.toFixed(2);
    if (parseFloat(slider.value) !== threshold) slider.value = threshold;
    var perPage = new Array(pages.length).fill(0);
    low = lines.filter(function (line) { return line[2] < threshold; });
    low.forEach(function (line) { perPage[line[0]] += 1; });
    low.sort(function (a, b) { return a[2] - b[2]; });
    pages.forEach(function (page, index) {
      var tr = rowsByHref[page[2]];
      if (!tr) return;
      var cell = tr.querySelector("td.low");
      cell.textContent = String(perPage[index]);
      cell.setAttribute("data-sort", String(perPage[index]));
    });
    count.textContent = low.length + " of " + lines.length + " lines";
    limit = PAGE;
    render();
  }

  slider.addEventListener("input", function () {
    threshold = parseFloat(slider.value);
    try { window.localStorage.setItem(KEY, String(threshold)); } catch (e) { /* ignore */ }
    update();
  });
  more.addEventListener("click", function () { limit += PAGE; render(); });
  update();

  // sortable columns: numbers by data-sort (or the cell text), text by locale
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("th");
    heads.forEach(function (th, column) {
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (other) { other.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var numeric = th.getAttribute("data-kind") === "num";
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var keyed = rows.map(function (row, index) {
          var cell = row.cells[column];
          var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
          var key = numeric ? parseFloat(raw) : raw.toLowerCase();
          if (numeric && isNaN(key)) key = Infinity;
          return [key, index, row];
        });
        keyed.sort(function (a, b) {
          var order = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
          return ascending ? order : -order;
        });
        var fragment = document.createDocumentFragment();
        keyed.forEach(function (entry) { fragment.appendChild(entry[2]); });
        body.appendChild(fragment);
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
})();
