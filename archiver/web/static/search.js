// Search for the static site: every word typed must occur in a text's title,
// author, URL, date or opening words (window.ARCHIVER_INDEX, written by
// `archiver site`). Results are built with textContent only, never as HTML.
(function () {
  "use strict";
  var index = window.ARCHIVER_INDEX || [];
  var form = document.querySelector("form.search");
  var input = document.getElementById("q");
  var results = document.getElementById("results");
  if (!form || !input || !results) { return; }

  function fold(text) {
    return String(text).normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }
  var haystacks = index.map(function (e) { return fold(e.join(" ")); });

  function show(query) {
    results.textContent = "";
    var words = fold(query).split(/\s+/).filter(Boolean);
    if (!words.length) { return; }
    var found = [];
    for (var i = 0; i < index.length && found.length < 200; i++) {
      var hay = haystacks[i];
      if (words.every(function (w) { return hay.indexOf(w) !== -1; })) { found.push(index[i]); }
    }
    var summary = document.createElement("p");
    summary.className = "summary";
    summary.textContent = found.length ? found.length + (found.length === 200 ? "+" : "") +
      " text" + (found.length === 1 ? "" : "s") + " (titles, authors, addresses and opening words)" :
      "Nothing matches.";
    results.appendChild(summary);
    var list = document.createElement("ol");
    list.className = "hits";
    found.forEach(function (e) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.className = "title";
      link.href = "bags/" + encodeURIComponent(e[0]) + ".html";
      link.textContent = e[1] || "(untitled)";
      item.appendChild(link);
      if (e[2]) {
        var author = document.createElement("span");
        author.className = "author";
        author.textContent = e[2];
        item.appendChild(author);
      }
      var meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = (e[4] || "").slice(0, 10) + " · " + e[3];
      item.appendChild(meta);
      list.appendChild(item);
    });
    results.appendChild(list);
  }

  var params = new URLSearchParams(window.location.search);
  if (params.get("q")) { input.value = params.get("q"); show(input.value); }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    show(input.value);
  });
  input.addEventListener("input", function () { show(input.value); });
})();
