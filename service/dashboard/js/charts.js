// ECharts set-up shared by the panels: a colour-blind-safe palette (Okabe-Ito), no animation (a chart is
// drawn when its data is set), and charts that follow their box's size (tablets turn).
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
export const SEQUENTIAL = ["#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"];

const charts = new Map();

export function chart(id) {
  if (charts.has(id)) return charts.get(id);
  const box = document.getElementById(id);
  const instance = window.echarts.init(box, null, { renderer: "canvas" });
  new ResizeObserver(() => instance.resize()).observe(box);
  charts.set(id, instance);
  return instance;
}

export function draw(id, option, { onClick } = {}) {
  const instance = chart(id);
  instance.setOption({ color: PALETTE, animation: false, textStyle: { fontFamily: "system-ui, sans-serif" }, ...option }, true);
  instance.off("click");
  if (onClick) instance.on("click", onClick);
  return instance;
}
