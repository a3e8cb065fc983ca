// The console's script, loaded on every page as an ES module. It enhances
// server-rendered markup that works without it: on load and after every
// htmx swap it looks inside the new content for
//
//   textarea[data-editor]  a code editor (chunk editor.js, loaded on demand)
//   [data-chart]           a line chart (chunk chart.js, loaded on demand)
//   pre[data-tail]         a live log tail over server-sent events
//   form[data-upload]      a <progress> that follows the upload
//   form[data-run]         the playground's interactive run (chunk run.js)
//
// and keeps what a form held when its session expired (drafts.js),
// and handles clicks on [data-copy] buttons anywhere. It never builds
// markup from strings and sets no inline style attribute, so it runs under
// Content-Security-Policy default-src 'self'.

import { startTail } from "./tail.js";
import { watchUpload, copyOnClick } from "./forms.js";
import { onRemoved } from "./lifecycle.js";
import { keepDraft, dropDraft, restoreDrafts } from "./drafts.js";

// htmx's defaults that a strict CSP refuses: an injected <style> for
// indicators, and eval for hx-on / js: attributes. A page can set the same
// through <meta name="htmx-config">; this covers pages that do not, as
// long as htmx.min.js comes before app.js in the document.
if (window.htmx) {
  window.htmx.config.includeIndicatorStyles = false;
  window.htmx.config.allowEval = false;
  window.htmx.config.allowScriptTags = false;
}

const enhanced = new WeakSet();

function once(el) {
  if (enhanced.has(el)) return false;
  enhanced.add(el);
  return true;
}

// failed reports a chunk that did not load or an element it could not
// enhance; the server-rendered element stays as it was.
function failed(el, err) {
  console.error("nimbus console: cannot enhance", el, err);
}

function enhance(root) {
  if (!(root instanceof Element || root instanceof Document)) return;
  const each = (sel, fn) => {
    if (root instanceof Element && root.matches(sel) && once(root)) fn(root);
    for (const el of root.querySelectorAll(sel)) if (once(el)) fn(el);
  };
  each("textarea[data-editor]", (el) => {
    import("./editor.js")
      .then((m) => m.createEditor(el))
      .then((stop) => onRemoved(el, stop))
      .catch((err) => failed(el, err));
  });
  each("[data-chart]", (el) => {
    import("./chart.js")
      .then((m) => onRemoved(el, m.drawChart(el)))
      .catch((err) => failed(el, err));
  });
  each("pre[data-tail]", (el) => onRemoved(el, startTail(el)));
  each("form[data-upload]", watchUpload);
  each("form[data-run]", (el) => {
    import("./run.js")
      .then((m) => onRemoved(el, m.startPlayground(el)))
      .catch((err) => failed(el, err));
  });
}

document.addEventListener("htmx:load", (e) => enhance(e.target));
document.addEventListener("htmx:beforeRequest", keepDraft);
document.addEventListener("htmx:afterRequest", dropDraft);
document.addEventListener("click", copyOnClick);
// A draft goes back into its form before the form's editor is made.
const start = () => {
  restoreDrafts();
  enhance(document);
};
if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
