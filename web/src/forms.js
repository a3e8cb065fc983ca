// Upload progress for form[data-upload] and the [data-copy] buttons.

// watchUpload shows the form's <progress> while htmx sends it and hides
// it otherwise. htmx reports both upload and download progress as
// htmx:xhr:progress; either moves the bar.
export function watchUpload(form) {
  const bar = form.querySelector("progress");
  if (!bar) return;
  bar.hidden = true;
  form.addEventListener("htmx:xhr:loadstart", () => {
    bar.removeAttribute("value"); // indeterminate until sizes are known
    bar.hidden = false;
  });
  form.addEventListener("htmx:xhr:progress", (e) => {
    const d = e.detail || {};
    bar.hidden = false;
    if (d.lengthComputable && d.total > 0) {
      bar.max = d.total;
      bar.value = d.loaded;
    }
  });
  const hide = () => {
    bar.hidden = true;
  };
  form.addEventListener("htmx:xhr:loadend", hide);
  form.addEventListener("htmx:xhr:abort", hide);
  form.addEventListener("htmx:afterRequest", hide);
}

const copiedFor = 2000; // ms the button says "Copied"
const labels = new WeakMap(); // button -> its own text

// copyOnClick handles a click anywhere: on a [data-copy] button it copies
// the text of the element whose id the attribute names.
export function copyOnClick(e) {
  const button = e.target instanceof Element ? e.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) return;
  e.preventDefault();
  const text = "value" in source && typeof source.value === "string" ? source.value : source.textContent;
  writeClipboard(text, source).then(
    () => flash(button),
    (err) => console.error("nimbus console: copy failed", err),
  );
}

function flash(button) {
  if (!labels.has(button)) labels.set(button, button.textContent);
  button.textContent = "Copied";
  clearTimeout(button._nimbusCopyTimer);
  button._nimbusCopyTimer = setTimeout(() => {
    button.textContent = labels.get(button);
    labels.delete(button);
  }, copiedFor);
}

// writeClipboard uses the Clipboard API where the page is a secure
// context, else selects the source's text and asks for a copy.
function writeClipboard(text, source) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  return new Promise((resolve, reject) => {
    const sel = window.getSelection();
    const range = document.createRange();
    range.selectNodeContents(source);
    sel.removeAllRanges();
    sel.addRange(range);
    const ok = document.execCommand("copy");
    sel.removeAllRanges();
    if (ok) resolve();
    else reject(new Error("copy command refused"));
  });
}
