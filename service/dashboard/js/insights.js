// The panel the dashboard leads with: GET /analytics/insights with the dashboard's filters, each sentence a
// link to the report behind it (and its Excel download). Figures are written by the service, not here.
import * as api from "./api.js";
import { el } from "./format.js";
import { memberFilters, view } from "./state.js";

// The insights' time parameters from the view: a chosen range is compared with the one before it; without
// one, the window (a week or four weeks) ends on the chosen end day, or on the last complete day with data.
export function insightParams() {
  const params = { ...memberFilters(), period: view.in_period || "month" };
  if (view.start) {
    params.start = view.start;
    if (view.end) params.end = view.end;
  } else if (view.end) {
    params.as_of = view.end;
  }
  return params;
}

function sourceLinks(insight) {
  const excel = el("a", { href: api.reportDownloadUrl(insight.report, insight.params, "xlsx"), download: "",
    class: "cite", title: `Download ${insight.report} as Excel` }, "Excel");
  const more = insight.sources.slice(1).map((source) =>
    el("a", { href: source.link, class: "cite", target: "_blank", rel: "noopener", title: `The ${source.report} report` }, "detail"));
  return [excel, ...more];
}

function item(insight) {
  const headline = el("a", {
    href: insight.link, class: "headline", target: "_blank", rel: "noopener",
    title: `The report behind it: ${insight.report}`, "data-kind": insight.kind,
  }, insight.headline);
  return el("li", {}, headline, " ", sourceLinks(insight));
}

export async function loadInsights() {
  const params = insightParams();
  const answer = await api.insights(params);
  const list = document.getElementById("insights-list");
  const items = answer.insights.map(item);
  list.replaceChildren(...(items.length ? items : [el("li", { class: "note" }, "Nothing stands out in this period.")]));
  const notes = document.getElementById("insights-notes");
  notes.replaceChildren(...answer.notes.map((note) => el("p", { class: "note" }, note)));
  document.getElementById("insights-when").textContent =
    `${answer.current_period[0]} to ${answer.current_period[1]} against ${answer.baseline_period[0]} to ${answer.baseline_period[1]}`;
  return { rows: items.length || 1, downloads: [] };
}
