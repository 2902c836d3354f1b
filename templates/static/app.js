// Live refresh without reloading: pages marked data-live="N" re-fetch themselves every N
// seconds and swap the #live region. Paused while the tab is hidden; stops on sign-out.
(function () {
  "use strict";
  var body = document.body;
  var every = body && Number(body.getAttribute("data-live"));
  if (!every || !window.fetch || !window.DOMParser) return;
  function refresh() {
    if (document.hidden) return;
    // Never swap a form out from under someone filling it in.
    var active = document.activeElement;
    if (active && active.form && document.getElementById("live") && document.getElementById("live").contains(active)) return;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (r) {
        if (r.redirected || !r.ok) throw new Error("stopped");
        return r.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var here = document.getElementById("live");
        if (next && here) here.replaceWith(next);
      })
      .catch(function () { clearInterval(timer); });
  }
  var timer = setInterval(refresh, every * 1000);
})();

// The propose form says how many machines and waves a rollout makes before it is sent, the
// same way the server cuts waves (canary, then each wave `growth` times the one before; a dry
// run asks every machine at once).
(function () {
  "use strict";
  function waves(n, canary, growth) {
    var sizes = [], size = Math.max(1, canary), left = n;
    while (left > 0 && sizes.length < 1000) {
      var w = Math.min(size, left);
      sizes.push(w);
      left -= w;
      size = size * Math.max(1, growth);
    }
    return sizes;
  }
  function update(form) {
    var n = Number(form.getAttribute("data-machines")) || 0;
    var out = form.querySelector("[data-preview]");
    if (!out) return;
    var value = function (name) { var i = form.querySelector("[name=" + name + "]"); return i ? Number(i.value) : 0; };
    var dry = form.querySelector("[name=dry_run]");
    if (dry && dry.checked) {
      out.textContent = n + " machine(s) in one wave: a dry run asks every machine at once and changes nothing.";
      return;
    }
    var s = waves(n, value("canary") || 1, value("growth") || 1);
    out.textContent = n + " machine(s) in " + s.length + " wave(s): " + s.join(", ") +
      "; the rollout halts when a wave has more than " + (value("max_failures") || 0) + " failure(s).";
  }
  // Delegated, so a form swapped in by the live refresh keeps working.
  ["input", "change"].forEach(function (kind) {
    document.addEventListener(kind, function (e) {
      var form = e.target && e.target.form;
      if (form && form.classList.contains("propose")) update(form);
    });
  });
})();
