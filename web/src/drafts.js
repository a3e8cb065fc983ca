// Drafts: what a user typed into a form whose sending found the session
// expired. Before htmx sends a form, its fields are kept in
// sessionStorage under the page's path; an answer of 401 (the server then
// sends the browser to sign in, and back to this page) leaves them there,
// and any other answer drops them. When a page loads with a draft for one
// of its forms, the fields are put back (before editors are made from
// them) and the form says so. Secrets (passwords, keys, the CSRF token)
// and files are never kept.

const prefix = "nimbus-draft:";

function kept(el) {
  if (!el.name || el.disabled || el.name === "csrf") return false;
  const type = (el.type || "").toLowerCase();
  return !["hidden", "password", "file", "submit", "button", "reset"].includes(type) && el.autocomplete !== "off";
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage refused: no drafts
  }
}

// keepDraft handles htmx:beforeRequest: it stores the fields of the form
// being sent.
export function keepDraft(e) {
  const form = e.detail && e.detail.elt instanceof HTMLFormElement ? e.detail.elt : null;
  const store = storage();
  if (!form || !store || (form.method || "").toLowerCase() !== "post") return;
  const fields = {};
  for (const el of form.elements) {
    if (!kept(el)) continue;
    fields[el.name] = el.type === "checkbox" || el.type === "radio" ? el.checked : el.value;
  }
  store.setItem(prefix + location.pathname, JSON.stringify({ id: form.id, action: form.getAttribute("action") || "", fields }));
}

// dropDraft handles htmx:afterRequest: any answer but 401 ends the draft.
export function dropDraft(e) {
  const store = storage();
  const xhr = e.detail && e.detail.xhr;
  if (store && xhr && xhr.status !== 401) store.removeItem(prefix + location.pathname);
}

// restoreDrafts puts a draft kept for this page back into its form.
export function restoreDrafts() {
  const store = storage();
  if (!store) return;
  const raw = store.getItem(prefix + location.pathname);
  if (!raw) return;
  store.removeItem(prefix + location.pathname);
  let draft;
  try {
    draft = JSON.parse(raw);
  } catch {
    return;
  }
  // The form by its id, else the first with its action that has a field
  // of the draft (a page may have several forms posting to one path).
  const form =
    (draft.id && document.getElementById(draft.id)) ||
    [...document.querySelectorAll("form[method=post]")].find(
      (f) => (f.getAttribute("action") || "") === draft.action && [...f.elements].some((el) => kept(el) && el.name in draft.fields),
    );
  if (!(form instanceof HTMLFormElement)) return;
  for (const el of form.elements) {
    if (!kept(el) || !(el.name in draft.fields)) continue;
    const v = draft.fields[el.name];
    if (el.type === "checkbox" || el.type === "radio") el.checked = !!v;
    else el.value = v;
  }
  const note = document.createElement("p");
  note.className = "alert notice";
  note.setAttribute("role", "status");
  note.id = "draft-restored";
  note.textContent = "Your session had ended: what you typed is back. Check it and send it again.";
  form.prepend(note);
}
