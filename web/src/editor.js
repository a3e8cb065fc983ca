// The code editor chunk: turns textarea[data-editor="python"|"json"] into a
// CodeMirror 6 view placed after it. The textarea stays in the form (hidden
// by the class cm-hidden, which console.css styles) and receives the text
// on every change, so a plain submit or an htmx request sends it.
//
// Built from CodeMirror's small pieces, not basicSetup, to stay within the
// page budget. Tab is left to the browser (no indentWithTab), so keyboard
// users can leave the editor. CodeMirror's styles go into a constructed
// stylesheet (adopted-styles.js), which a CSP of style-src 'self' allows.

import "./adopted-styles.js"; // before any view is made
import { EditorState, StateField } from "@codemirror/state";
import {
  EditorView,
  Decoration,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  drawSelection,
} from "@codemirror/view";
import {
  standardKeymap,
  history,
  historyKeymap,
  indentMore,
  indentLess,
  toggleComment,
} from "@codemirror/commands";
import {
  StreamLanguage,
  syntaxHighlighting,
  defaultHighlightStyle,
  indentOnInput,
  bracketMatching,
} from "@codemirror/language";
import { jsonMode } from "./json-mode.js";

// The languages, each resolving to an extension. Python is a chunk of its
// own; JSON's mode is a few hundred bytes and comes with the editor.
const languages = {
  // CodeMirror's stream mode for Python: a tenth the size of the Lezer
  // grammar of @codemirror/lang-python, which would push the heaviest
  // page past its budget.
  python: () => import("@codemirror/legacy-modes/mode/python").then((m) => StreamLanguage.define(m.python)),
  json: () => Promise.resolve(StreamLanguage.define(jsonMode)),
};

// The error line's look when console.css says nothing more specific.
const errorTheme = EditorView.baseTheme({
  ".cm-error-line": { backgroundColor: "#fdecea" },
});

// errorLine marks the line that starts at pos with the class cm-error-line
// and keeps the mark on that line while the text around it changes.
function errorLine(pos) {
  return StateField.define({
    create: () => Decoration.set([Decoration.line({ class: "cm-error-line" }).range(pos)]),
    update: (deco, tr) => deco.map(tr.changes),
    provide: (f) => EditorView.decorations.from(f),
  });
}

// labelOf returns the text of the textarea's label, or its own aria-label.
function labelOf(textarea) {
  const label =
    (textarea.id && document.querySelector(`label[for="${CSS.escape(textarea.id)}"]`)) ||
    textarea.closest("label");
  const text = label ? label.textContent.trim() : "";
  return text || textarea.getAttribute("aria-label") || "Code";
}

// createEditor builds the view and resolves to the function that destroys
// it.
export async function createEditor(textarea) {
  // A page restored from htmx's history cache holds a dead copy of an
  // earlier editor: drop it.
  const stale = textarea.nextElementSibling;
  if (stale && stale.classList.contains("cm-editor")) stale.remove();

  const extensions = [
    lineNumbers(),
    highlightActiveLineGutter(),
    highlightActiveLine(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
    // The standard editing keys, undo/redo, Mod-[ and Mod-] to indent and
    // Mod-/ to comment. Tab is not bound: it moves the focus on.
    keymap.of([
      ...standardKeymap,
      ...historyKeymap,
      { key: "Mod-[", run: indentLess },
      { key: "Mod-]", run: indentMore },
      { key: "Mod-/", run: toggleComment },
    ]),
    errorTheme,
    EditorView.contentAttributes.of({ "aria-label": labelOf(textarea) }),
    EditorView.updateListener.of((u) => {
      if (!u.docChanged) return;
      textarea.value = u.state.doc.toString();
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }),
  ];
  const lang = languages[textarea.getAttribute("data-editor")];
  if (lang) extensions.push(await lang());

  let state = EditorState.create({ doc: textarea.value, extensions });
  let selection;
  const n = parseInt(textarea.getAttribute("data-error-line") || "", 10);
  if (n >= 1) {
    const line = state.doc.line(Math.min(n, state.doc.lines));
    state = EditorState.create({ doc: textarea.value, extensions: [...extensions, errorLine(line.from)] });
    selection = { anchor: line.from };
  }

  const view = new EditorView({ state });
  textarea.after(view.dom);
  textarea.classList.add("cm-hidden");
  if (selection) view.dispatch({ selection, scrollIntoView: true });

  // A click on the label focuses the editor instead of the hidden textarea.
  const label = textarea.id && document.querySelector(`label[for="${CSS.escape(textarea.id)}"]`);
  const focus = (e) => {
    e.preventDefault();
    view.focus();
  };
  if (label) label.addEventListener("click", focus);
  // A form reset empties the textarea; the editor follows.
  const form = textarea.form;
  const reset = () =>
    setTimeout(() => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: textarea.value } }));
  if (form) form.addEventListener("reset", reset);

  return () => {
    if (label) label.removeEventListener("click", focus);
    if (form) form.removeEventListener("reset", reset);
    view.destroy();
  };
}
