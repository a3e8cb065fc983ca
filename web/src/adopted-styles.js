// CodeMirror puts its styles in the page through style-mod, which, for a
// document (as opposed to a shadow root), inserts a <style> element: a CSP
// of style-src 'self' refuses it. Importing this module makes style-mod
// put a document's styles in one constructed stylesheet adopted by the
// document instead (document.adoptedStyleSheets), which CSP does not
// govern. Shadow roots keep style-mod's own handling.
//
// Adopted sheets come after the page's own stylesheets in the cascade, so
// console.css overrides an editor style only with a more specific selector.

import { StyleModule } from "style-mod";

const sheets = new WeakMap(); // document -> {sheet, modules}
const ownMount = StyleModule.mount;

StyleModule.mount = function mount(root, modules, options) {
  if (root.nodeType !== Node.DOCUMENT_NODE || !root.adoptedStyleSheets) {
    return ownMount.call(this, root, modules, options);
  }
  let set = sheets.get(root);
  if (!set) {
    set = { sheet: new root.defaultView.CSSStyleSheet(), modules: [] };
    sheets.set(root, set);
    root.adoptedStyleSheets = [...root.adoptedStyleSheets, set.sheet];
  }
  if (place(set.modules, Array.isArray(modules) ? modules : [modules])) {
    set.sheet.replaceSync(set.modules.map((m) => m.getRules()).join("\n"));
  }
};

// place puts modules into list in their given order (later ones win in the
// cascade), moving a module already in list when the new order needs it
// later, and reports whether list changed.
function place(list, modules) {
  let changed = false;
  let next = 0; // where the following module must be, at the earliest
  for (const mod of modules) {
    let at = list.indexOf(mod);
    if (at > -1 && at < next) {
      list.splice(at, 1);
      next--;
      at = -1;
    }
    if (at === -1) {
      list.splice(next, 0, mod);
      next++;
      changed = true;
    } else {
      next = at + 1;
    }
  }
  return changed;
}
