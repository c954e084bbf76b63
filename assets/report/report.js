// Click a column header to sort the rows shown (numbers by exact value, missing values last).
document.querySelectorAll("table.data").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.classList.contains("num");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (cell.classList.contains("missing")) return null;
        return numeric ? parseFloat(cell.getAttribute("data-v")) : cell.textContent;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var xMissing = x === null || (numeric && isNaN(x));
        var yMissing = y === null || (numeric && isNaN(y));
        if (xMissing || yMissing) return xMissing - yMissing;
        var order = numeric ? x - y : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
    });
  });
});

// Highlight the contents entry of the section being read.
(function () {
  if (!("IntersectionObserver" in window)) return;
  var links = {};
  document.querySelectorAll(".toc a").forEach(function (a) { links[a.hash.slice(1)] = a; });
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (!entry.isIntersecting || !links[entry.target.id]) return;
      Object.keys(links).forEach(function (id) { links[id].classList.remove("active"); });
      links[entry.target.id].classList.add("active");
    });
  }, { rootMargin: "0px 0px -70% 0px" });
  document.querySelectorAll("main section[id]").forEach(function (s) { observer.observe(s); });
})();

// A printed report shows the configuration too.
window.addEventListener("beforeprint", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
});
