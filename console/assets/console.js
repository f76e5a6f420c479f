// Herald console: a little script where it saves a reload. Everything works
// without it (the server renders every page); it formats times in the page's
// language, asks before destructive actions, copies, and fills presets.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";

  // Times in the reader's locale and time zone.
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
  } catch (e) { fmt = null; }
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (fmt && !isNaN(d)) { t.title = t.textContent; t.textContent = fmt.format(d); }
  });

  // Confirmation before a form marked data-confirm (or a button marked so) is sent.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var btn = ev.submitter;
    var msg = (btn && btn.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    if (form.hasAttribute("data-busy") && btn) {
      setTimeout(function () { btn.disabled = true; }, 0);
    }
  });

  // Copy buttons.
  document.querySelectorAll("[data-copy]").forEach(function (b) {
    b.addEventListener("click", function () {
      var input = document.getElementById(b.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value).catch(function () {}); }
      else { try { document.execCommand("copy"); } catch (e) {} }
    });
  });

  // Provider presets: fill server, port and encryption; show the provider's advice.
  document.querySelectorAll("select[data-presets]").forEach(function (sel) {
    var form = sel.form;
    function field(name) { return form.querySelector("[name=" + name + "]"); }
    function showAdvice() {
      form.querySelectorAll("[data-advice-for]").forEach(function (p) {
        p.hidden = p.getAttribute("data-advice-for") !== sel.value;
      });
    }
    sel.addEventListener("change", function () {
      var o = sel.options[sel.selectedIndex];
      var map = { host: "data-host", port: "data-port", security: "data-security" };
      Object.keys(map).forEach(function (k) {
        var f = field(k);
        if (f) f.value = o.getAttribute(map[k]) || "";
      });
      var u = o.getAttribute("data-username");
      if (u && field("username")) field("username").value = u;
      showAdvice();
    });
    showAdvice();
  });

  // Password or OAuth2: show the fields of the chosen sign-in method.
  document.querySelectorAll("select[data-auth-method]").forEach(function (sel) {
    var form = sel.form;
    function show() {
      form.querySelectorAll("[data-for-method]").forEach(function (d) {
        d.hidden = d.getAttribute("data-for-method") !== sel.value;
      });
    }
    sel.addEventListener("change", show);
    show();
  });

  // The authorization page: go on to the provider at once.
  var follow = document.querySelector("a[data-follow]");
  if (follow) { window.location.assign(follow.href); }
})();
