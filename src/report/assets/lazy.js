// Figures below the fold are <template>s until they come within a screen of the viewport:
// opening a long report then decodes only the pictures in view. Printing, and
// window.clipflowReport.loadAll(), instantiate everything.
(function () {
  "use strict";
  var api = window.clipflowReport = window.clipflowReport || {};
  var hooks = api.loadAllHooks = api.loadAllHooks || [];

  function materialise(box) {
    var template = box.querySelector(":scope > template");
    if (!template) return;
    box.replaceChildren(template.content.cloneNode(true));
    box.classList.remove("lazy");
    box.classList.add("loaded");
    box.removeAttribute("style");
  }

  var boxes = Array.prototype.slice.call(document.querySelectorAll(".lazy"));
  var observer = null;
  if ("IntersectionObserver" in window) {
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (!entry.isIntersecting) return;
        observer.unobserve(entry.target);
        materialise(entry.target);
      });
    }, { rootMargin: "100% 0px 100% 0px" });
    boxes.forEach(function (b) { observer.observe(b); });
  } else {
    boxes.forEach(materialise);
  }

  api.loadAll = function () {
    document.querySelectorAll(".lazy").forEach(function (b) {
      if (observer) observer.unobserve(b);
      materialise(b);
    });
    hooks.forEach(function (hook) { hook(); });
  };
  window.addEventListener("beforeprint", api.loadAll);
})();
