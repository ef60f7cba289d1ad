// The explorer: measures × a row dimension × a column dimension (or the time grain) over the query layer,
// with the dashboard's filters; a pivot table and a chart, downloadable as CSV or Excel.
import * as api from "./api.js";
import { draw } from "./charts.js";
import { byFormat, el, isNumeric } from "./format.js";
import { queryDateRange, queryFilters } from "./state.js";

const PERIOD = "period"; // the query layer's time bucket column
const form = () => document.getElementById("explorer-form");
let measureFormats = {};
let lastBody = null;

export function setUpExplorer(meta) {
  measureFormats = Object.fromEntries(meta.measures.map((m) => [m.name, m.format]));
  const usable = (m) => !m.unavailable && m.format !== "date";
  document.getElementById("ex-measures").replaceChildren(...meta.measures.filter(usable).map((m) =>
    el("option", { value: m.name, title: m.description, ...(m.name === "revenue" ? { selected: "" } : {}) }, m.name)));
  const dimensions = meta.dimensions.filter((d) => !d.unavailable && d.name !== "customer");
  const choice = (d) => el("option", { value: d.name, title: d.description }, d.name);
  document.getElementById("ex-rows").replaceChildren(...dimensions.map(choice));
  document.getElementById("ex-rows").value = "region";
  document.getElementById("ex-cols").replaceChildren(el("option", { value: PERIOD }, "time (grain)"),
    el("option", { value: "" }, "measures"), ...dimensions.map(choice));
  form().addEventListener("submit", (event) => {
    event.preventDefault();
    runExplorerNow();
  });
  document.getElementById("ex-csv").addEventListener("click", () => api.downloadQuery(lastBody || explorerQuery(), "csv"));
  document.getElementById("ex-xlsx").addEventListener("click", () => api.downloadQuery(lastBody || explorerQuery(), "xlsx"));
}

export function explorerQuery() {
  const measures = [...document.getElementById("ex-measures").selectedOptions].map((o) => o.value);
  const rowsBy = document.getElementById("ex-rows").value;
  const colsBy = document.getElementById("ex-cols").value;
  const grain = document.getElementById("ex-grain").value;
  const dimensions = [rowsBy, ...(colsBy && colsBy !== PERIOD && colsBy !== rowsBy ? [colsBy] : [])];
  const time = { date_range: queryDateRange(), ...(colsBy === PERIOD && grain ? { grain } : {}) };
  return {
    measures: measures.length ? measures : ["revenue"],
    dimensions,
    time_dimension: time,
    filters: queryFilters(),
    order: [{ member: measures[0] || "revenue", direction: "desc" }],
    limit: 5000,
  };
}

async function runExplorerNow() {
  const box = document.getElementById("panel-explorer");
  box.dataset.state = "loading";
  try {
    const { rows } = await runExplorer();
    box.dataset.rows = String(rows);
    box.dataset.state = rows > 0 ? "ready" : "empty";
  } catch (error) {
    box.dataset.state = "error";
    document.getElementById("explorer-pivot").replaceChildren(el("p", { class: "error" }, error.message));
  }
}

export async function runExplorer() {
  const body = explorerQuery();
  const result = await api.query(body);
  lastBody = body;
  const rowsBy = body.dimensions[0];
  const colsBy = body.dimensions[1] || (body.time_dimension.grain ? PERIOD : null);
  const pivot = colsBy ? pivotBy(result.rows, rowsBy, colsBy, body.measures[0]) : pivotMeasures(result.rows, rowsBy, body.measures);
  const format = (column) => (colsBy ? measureFormats[body.measures[0]] : measureFormats[column]);
  document.getElementById("explorer-pivot").replaceChildren(pivotTable(pivot, rowsBy, format));
  drawExplorerChart(pivot, colsBy, body.measures[0]);
  return { rows: result.rows.length, downloads: [] };
}

// { rowKeys, columnKeys, cell(row, column) }: one measure spread over a second dimension or time.
function pivotBy(rows, rowsBy, colsBy, measure) {
  const rowKeys = [...new Set(rows.map((r) => String(r[rowsBy])))];
  const columnKeys = [...new Set(rows.map((r) => String(r[colsBy])))].sort();
  const cells = new Map(rows.map((r) => [`${r[rowsBy]}\u0000${r[colsBy]}`, r[measure]]));
  return { rowKeys, columnKeys, cell: (row, column) => cells.get(`${row}\u0000${column}`) ?? null };
}

function pivotMeasures(rows, rowsBy, measures) {
  const byRow = new Map(rows.map((r) => [String(r[rowsBy]), r]));
  return { rowKeys: [...byRow.keys()], columnKeys: measures, cell: (row, column) => byRow.get(row)?.[column] ?? null };
}

function pivotTable(pivot, rowsBy, format) {
  const head = el("tr", {}, el("th", {}, rowsBy), pivot.columnKeys.map((c) => el("th", { class: "num" }, c)));
  const body = pivot.rowKeys.slice(0, 500).map((row) => el("tr", {}, el("th", {}, row),
    pivot.columnKeys.map((c) => el("td", { class: isNumeric(format(c)) ? "num" : "" }, byFormat(pivot.cell(row, c), format(c))))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

function drawExplorerChart(pivot, colsBy, measure) {
  const rowKeys = pivot.rowKeys.slice(0, 8); // a readable chart: the first 8 rows (most of the measure first)
  if (colsBy === PERIOD) {
    draw("chart-explorer", {
      tooltip: { trigger: "axis" }, legend: { type: "scroll", top: 0 }, grid: { left: 70, right: 20, top: 35, bottom: 30 },
      xAxis: { type: "category", data: pivot.columnKeys }, yAxis: { type: "value" },
      series: rowKeys.map((row) => ({ name: row, type: "line", data: pivot.columnKeys.map((c) => pivot.cell(row, c)) })),
    });
    return;
  }
  const columns = pivot.columnKeys.slice(0, 8);
  draw("chart-explorer", {
    tooltip: { trigger: "axis" }, legend: { type: "scroll", top: 0 }, grid: { left: 70, right: 20, top: 35, bottom: 60 },
    xAxis: { type: "category", data: rowKeys, axisLabel: { rotate: rowKeys.length > 5 ? 30 : 0 } }, yAxis: { type: "value", name: colsBy ? measure : "" },
    series: columns.map((c) => ({ name: c, type: "bar", stack: colsBy ? "all" : undefined, data: rowKeys.map((row) => pivot.cell(row, c)) })),
  });
}
