// Live refresh without reloading: pages marked data-live="N" re-fetch themselves every N
// seconds and swap the #live region. Paused while the tab is hidden; stops on sign-out.
(function () {
  "use strict";
  var body = document.body;
  var every = body && Number(body.getAttribute("data-live"));
  if (!every || !window.fetch || !window.DOMParser) return;
  function refresh() {
    if (document.hidden) return;
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
