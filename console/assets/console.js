// Herald console: a little script where it saves a reload. Everything works
// without it (the server renders every page); it formats times in the page's
// language, asks before destructive actions, copies, fills presets, and sends
// forms marked data-partial in the background, swapping in the new <main>.
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "short" });
  } catch (e) { fmt = null; }

  function init(root) {
    // Times in the reader's locale and time zone.
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (fmt && !isNaN(d)) { t.title = t.textContent; t.textContent = fmt.format(d); }
    });

    // Copy buttons.
    root.querySelectorAll("[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var input = document.getElementById(b.getAttribute("data-copy"));
        if (!input) return;
        // An input's value, or a code block's text (selected as a range).
        var text = "value" in input ? input.value : input.textContent;
        if (input.select) { input.select(); }
        else {
          var range = document.createRange();
          range.selectNodeContents(input);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
        }
        if (navigator.clipboard) { navigator.clipboard.writeText(text).catch(function () {}); }
        else { try { document.execCommand("copy"); } catch (e) {} }
      });
    });

    // Provider presets: fill server, port and encryption; show the provider's advice.
    root.querySelectorAll("select[data-presets]").forEach(function (sel) {
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
    root.querySelectorAll("select[data-auth-method]").forEach(function (sel) {
      var form = sel.form;
      function show() {
        form.querySelectorAll("[data-for-method]").forEach(function (d) {
          d.hidden = d.getAttribute("data-for-method") !== sel.value;
        });
      }
      sel.addEventListener("change", show);
      show();
    });
  }

  // A form marked data-partial is sent in the background; the answer's
  // <main> replaces this one (no reload). Any trouble: the normal submit.
  function partial(form, submitter) {
    var body = new URLSearchParams(new FormData(form, submitter || undefined));
    var main = document.querySelector("main");
    main.setAttribute("aria-busy", "true");
    // getAttribute: a field named "action" would shadow form.action.
    fetch(form.getAttribute("action") || window.location.pathname, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    }).then(function (r) {
      return r.text().then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        if (!fresh) throw new Error("no <main> in the answer");
        main.replaceWith(fresh);
        init(fresh);
        var focus = form.getAttribute("data-partial");
        var target = focus && fresh.querySelector(focus);
        if (target) target.scrollIntoView({ block: "nearest" });
      });
    }).catch(function () {
      main.removeAttribute("aria-busy");
      form.removeAttribute("data-partial");
      if (submitter && submitter.name) {
        var h = document.createElement("input");
        h.type = "hidden"; h.name = submitter.name; h.value = submitter.value;
        form.appendChild(h);
      }
      form.submit();
    });
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var btn = ev.submitter;
    // Confirmation before a form (or a button) marked data-confirm is sent.
    var msg = (btn && btn.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    if (form.hasAttribute("data-busy") && btn) {
      setTimeout(function () { btn.disabled = true; }, 0);
    }
    if (form.hasAttribute("data-partial") && window.fetch && window.DOMParser) {
      ev.preventDefault();
      partial(form, btn);
    }
  });

  init(document);

  // The authorization page: go on to the provider at once.
  var follow = document.querySelector("a[data-follow]");
  if (follow) { window.location.assign(follow.href); }
})();
