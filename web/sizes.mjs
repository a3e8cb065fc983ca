// Prints the gzipped size of each asset the console serves and of two
// pages: one without editor or charts, and the heaviest (editor with its
// largest language, and charts). Reads esbuild's metafile to find which
// chunks each lazily loaded module pulls in.
//
// usage: node sizes.mjs DIST_DIR METAFILE [CONSOLE_CSS]
// Prints the report on stdout; exits 0 even over budget (says so on stderr).

import { readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { basename, join } from "node:path";

const budget = 150_000; // bytes gzipped, JS + CSS, per page
const [dist, metafile, consoleCSS] = process.argv.slice(2);
const meta = JSON.parse(readFileSync(metafile, "utf8"));

const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const kb = (n) => `${(n / 1000).toFixed(1)} KB`;

// Outputs by their file name in dist/.
const outputs = new Map();
for (const [path, out] of Object.entries(meta.outputs)) {
  if (path.endsWith(".js")) outputs.set(basename(path), out);
}
const sizes = new Map();
const size = (name) => {
  if (!sizes.has(name)) sizes.set(name, gz(join(dist, name)));
  return sizes.get(name);
};
const entryOf = (src) => [...outputs].find(([, o]) => o.entryPoint?.endsWith(src))?.[0];

// load returns the files a browser fetches to run chunk name: its static
// imports, then the heaviest single choice among its dynamic imports (a
// page uses one editor language).
function load(name, have = new Set()) {
  const files = new Set(have);
  const statics = (n) => {
    if (files.has(n)) return;
    files.add(n);
    for (const i of outputs.get(n).imports) if (i.kind === "import-statement") statics(basename(i.path));
  };
  statics(name);
  let best = files;
  for (const i of outputs.get(name).imports) {
    if (i.kind !== "dynamic-import") continue;
    const withIt = load(basename(i.path), files);
    if (total(withIt) > total(best)) best = withIt;
  }
  return best;
}
const total = (files) => [...files].reduce((n, f) => n + size(f), 0);

const base = ["htmx.min.js", "app.js", "uplot.css"];
const rows = base.map((f) => [f, size(f)]);
let css = 0;
if (consoleCSS && existsSync(consoleCSS)) {
  css = gz(consoleCSS);
  rows.push(["console.css", css]);
}
const plain = new Set(base);
const editor = load(entryOf("src/editor.js"), plain);
const heaviest = load(entryOf("src/chart.js"), editor);
rows.push(["editor (chunks, largest language)", total(editor) - total(plain)]);
rows.push(["charts (chunks)", total(load(entryOf("src/chart.js"), plain)) - total(plain)]);

const width = Math.max(...rows.map(([f]) => f.length));
console.log("gzipped sizes:");
for (const [f, n] of rows) console.log(`  ${f.padEnd(width)}  ${kb(n).padStart(9)}`);
const plainTotal = total(plain) + css;
const heavyTotal = total(heaviest) + css;
console.log(`  ${"page without editor or charts".padEnd(width)}  ${kb(plainTotal).padStart(9)}`);
console.log(`  ${"heaviest page (editor + charts)".padEnd(width)}  ${kb(heavyTotal).padStart(9)}  (budget ${kb(budget)})`);
if (!consoleCSS || !existsSync(consoleCSS)) console.log("  (console.css not present: not counted)");
if (heavyTotal > budget) console.error(`ui-vendor: OVER BUDGET: the heaviest page is ${kb(heavyTotal)} gzipped, the budget ${kb(budget)}`);
