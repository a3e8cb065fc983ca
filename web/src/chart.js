// The chart chunk: draws [data-chart] elements (a <figure>) with uPlot.
// data-chart holds
//   {"x": [unix seconds...],
//    "series": [{"label": "invocations", "values": [number|null...]}, ...],
//    "unit": "ms" | ""}
// and the chart is a line per series, as wide as the element and 180 px
// high, with a legend, redrawn when the element's width changes. When no
// series has a value nothing is drawn (the template's caption says so).

import uPlot from "uplot";

const height = 180; // px

// Line colours, each at least 5:1 against white (WCAG AA for text, so also
// for the legend labels uPlot colours with them).
const colours = ["#0b5cad", "#b34700", "#1a7f37", "#8250df", "#c2185b", "#0f6e6e", "#595959"];

// drawChart draws the chart and returns the function that removes it, or
// undefined when there is nothing to draw.
export function drawChart(el) {
  let spec;
  try {
    spec = JSON.parse(el.getAttribute("data-chart") || "");
  } catch (err) {
    console.error("nimbus console: data-chart is not JSON", el, err);
    return undefined;
  }
  const x = Array.isArray(spec.x) ? spec.x : [];
  const series = (Array.isArray(spec.series) ? spec.series : []).filter((s) => Array.isArray(s.values));
  const hasValue = series.some((s) => s.values.some((v) => typeof v === "number"));
  if (x.length === 0 || !hasValue) return undefined;

  // A page restored from htmx's history cache holds a dead copy of an
  // earlier chart: drop it.
  for (const old of el.querySelectorAll(":scope > .uplot")) old.remove();

  const unit = typeof spec.unit === "string" ? spec.unit : "";
  const withUnit = (v) => (v == null ? "–" : unit ? `${fmt(v)} ${unit}` : fmt(v));
  const opts = {
    width: widthOf(el),
    height,
    series: [
      {},
      ...series.map((s, i) => ({
        label: String(s.label ?? `series ${i + 1}`),
        stroke: colours[i % colours.length],
        width: 2,
        spanGaps: false,
        // A value between gaps (one busy minute) has no line to be part
        // of: draw every value as a point too.
        points: { show: true, size: 5, fill: colours[i % colours.length] },
        value: (u, v) => withUnit(v),
      })),
    ],
    axes: [{}, { values: (u, ticks) => ticks.map((v) => (unit ? `${fmt(v)} ${unit}` : fmt(v))), size: 60 }],
    legend: { show: true },
  };
  const data = [x, ...series.map((s) => s.values.map((v) => (typeof v === "number" ? v : null)))];

  const plot = new uPlot(opts, data, (u, init) => {
    // Before a trailing caption, so the caption stays last.
    const caption = el.lastElementChild && el.lastElementChild.tagName === "FIGCAPTION" ? el.lastElementChild : null;
    el.insertBefore(u.root, caption);
    init();
  });

  let last = opts.width;
  const resized = new ResizeObserver(() => {
    const w = widthOf(el);
    if (w !== last && w > 0) {
      last = w;
      plot.setSize({ width: w, height });
    }
  });
  resized.observe(el);
  return () => {
    resized.disconnect();
    plot.destroy();
  };
}

// widthOf returns the width of el's content box in px.
function widthOf(el) {
  const cs = getComputedStyle(el);
  const pad = (parseFloat(cs.paddingLeft) || 0) + (parseFloat(cs.paddingRight) || 0);
  return Math.max(100, Math.floor(el.clientWidth - pad));
}

function fmt(v) {
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2);
}
