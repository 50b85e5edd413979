// Keyboard and focus helpers for the item page; the form works without this script.
(function () {
  "use strict";
  var form = document.getElementById("answer");
  if (!form) { return; }
  var panels = Array.prototype.slice.call(form.querySelectorAll(".panel.map"));
  function rated(panel) { return panel.querySelector(".scale input:checked") !== null; }
  function refresh() {
    var current = panels.filter(function (p) { return !rated(p); })[0];
    panels.forEach(function (p) {
      p.classList.toggle("current", p === current);
      p.classList.toggle("chosen", p.querySelector("label.best input").checked);
    });
    return current;
  }
  form.addEventListener("change", refresh);
  document.addEventListener("keydown", function (event) {
    var typing = event.target.tagName === "TEXTAREA" || event.target.tagName === "SELECT" ||
      ["text", "number", "password"].indexOf(event.target.type) >= 0;
    if (typing || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key;
    form.classList.add("keyboard");
    if (key === "Enter" && event.target.tagName !== "BUTTON" && event.target.tagName !== "A") {
      event.preventDefault();
      if (form.reportValidity()) { form.requestSubmit(); }
      return;
    }
    var best = form.querySelector('label.best input[value="' + key.toUpperCase() + '"]');
    if (key.length === 1 && best) {
      best.checked = true; refresh(); event.preventDefault(); return;
    }
    if (key.length === 1 && key >= "1" && key <= "5") {
      var target = refresh() || (event.target.closest ? event.target.closest(".panel.map") : null);
      if (!target) { return; }
      target.querySelector('.scale input[value="' + key + '"]').checked = true;
      refresh(); event.preventDefault();
    }
  });
  refresh();
}());
