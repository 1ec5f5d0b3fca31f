// Loaded on every page with widgets, after require.js and before the ipywidgets embed bundle
// (see nb_ipywidgets_js in _config.yml). Three fixes that let widgets and math work offline:
(function () {
  "use strict";

  // (a) The embed bundle defines its AMD modules by name ("@jupyter-widgets/controls", ...) and
  // loads its fonts relative to each module's RequireJS URL. Without these paths RequireJS resolves
  // the names relative to the *page* (book/@jupyter-widgets/...) and every widget font 404s.
  // data-content_root is written by Sphinx >= 7.2 on <html>: the relative path to the site root.
  var root = document.documentElement.getAttribute("data-content_root") || "./";
  var widgets = new URL(root + "_static/widgets", window.location.href).href;
  if (window.require && window.require.config) {
    window.require.config({
      paths: {
        "@jupyter-widgets/html-manager/dist": widgets,
        "@jupyter-widgets": widgets,
      },
    });
  }

  // (b) ipywidgets 8 labels typeset LaTeX through the MathJax 2 API (MathJax.Hub.Queue), but the
  // site serves MathJax 3. MathJax 3 replaces the window.MathJax config object when it loads, so
  // the shim is installed both on the config object (for calls before it loads) and from
  // startup.ready (for calls after).
  function queue(args) {
    var element = args && args[2];
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise && mj.typesetPromise) {
      mj.startup.promise
        .then(function () { return mj.typesetPromise(element ? [element] : undefined); })
        .catch(function (err) { console.warn("MathJax typeset failed", err); });
    }
  }
  var config = (window.MathJax = window.MathJax || {});
  if (!config.version) {
    config.Hub = { Queue: queue };
    config.startup = config.startup || {};
    var previousReady = config.startup.ready;
    config.startup.ready = function () {
      if (previousReady) previousReady(); else window.MathJax.startup.defaultReady();
      window.MathJax.Hub = { Queue: queue };
    };
  } else if (!config.Hub) {
    config.Hub = { Queue: queue };
  }

  // (c) sphinx-book-theme's Font Awesome script swaps <i class="fa ..."> tags for <svg>; the Play
  // widget then throws in updatePlaying and that error also breaks the slider -> Stack link of
  // scrubbers. Stop its DOM watcher before the widgets render (also on "load"; registered first).
  window.addEventListener("load", function () {
    var fa = window.FontAwesome;
    if (fa && fa.dom && fa.dom.unwatch) fa.dom.unwatch();
  });
})();
