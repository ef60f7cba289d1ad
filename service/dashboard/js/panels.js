// The dashboard's panels. Each has an id (its <section id="panel-<id>">) and load(), which fetches from the
// public endpoints with the current filters, draws, and returns { rows, downloads }: how many data rows it
// drew (the browser test checks there are some) and the reports or queries behind it (CSV/Excel links).
import * as api from "./api.js";
import { draw, PALETTE, SEQUENTIAL } from "./charts.js";
import { loadUsMap, registerStateMap } from "./geo.js";
import { addDays, byFormat, daysBetween, el, money, moneyShort, num, pct, table } from "./format.js";
import { loadInsights } from "./insights.js";
import { asOfParams, dataSpan, memberFilters, period, queryDateRange, queryFilters, rangeParams, view } from "./state.js";

const reportDownload = (name, params, label = name) => ({ label, report: name, params });
const queryDownload = (body, label) => ({ label, query: body });
const rowsOf = (result) => result.rows || [];
const lastPeriodRows = (rows) => {
  const latest = rows.reduce((max, row) => (row.period > max ? row.period : max), "");
  return rows.filter((row) => row.period === latest);
};

// forecastChoicesLoaded: the series lists the forecast panel picks from (a promise).
export function createPanels({ drill, forecastChoicesLoaded }) {
  return [
    { id: "insights", load: loadInsights },
    { id: "kpis", load: loadKpis },
    { id: "category-trend", load: () => loadCategoryTrend(drill) },
    { id: "category-bars", load: () => loadCategoryBars(drill) },
    { id: "top-products", load: () => loadTopProducts(drill) },
    { id: "quarter-gauge", load: loadQuarterGauge },
    { id: "map", load: () => loadMap(drill) },
    { id: "goal-regions", load: () => loadGoalRegions(drill) },
    { id: "goal-salesmen", load: () => loadGoalSalesmen(drill) },
    { id: "opportunities", load: () => loadOpportunities(drill) },
    { id: "top-bottom", load: () => loadTopBottom(drill) },
    { id: "slow-movers", load: () => loadSlowMovers(drill) },
    { id: "segments", load: loadSegments },
    { id: "churn", load: loadChurn },
    { id: "forecast", load: async () => { await forecastChoicesLoaded(); return loadForecast(); } },
  ];
}

// ------------------------------------------------------------------------------------------ KPI cards

function kpiCard(label, value, change, direction, title) {
  const changeClass = direction > 0 ? "change up" : direction < 0 ? "change down" : "change";
  return el("div", { class: "kpi", title: title || "" },
    el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: changeClass }, change));
}

const first = (result) => rowsOf(result)[0] || {};
const sign = (value) => (value > 0 ? 1 : value < 0 ? -1 : 0);
const changePct = (now, before) => (before ? ((now - before) / Math.abs(before)) * 100 : null);

async function loadKpis() {
  const { start, end } = period();
  const monthBefore = addDays(`${end.slice(0, 8)}01`, -1); // the last day of the month before
  const totalsQuery = {
    measures: ["revenue", "average_order_value"],
    filters: queryFilters(),
    time_dimension: { date_range: [start, end] },
    compare: "previous_period",
  };
  const [totals, mom, retention, retentionBefore, runRate, runRateBefore, active, activeBefore, mover] =
    await Promise.all([
      api.query(totalsQuery),
      api.report("kpi-mom-growth", asOfParams()),
      api.report("kpi-retention-rate", asOfParams()),
      api.report("kpi-retention-rate", asOfParams({ as_of: monthBefore })),
      api.report("kpi-revenue-run-rate", asOfParams()),
      api.report("kpi-revenue-run-rate", asOfParams({ as_of: monthBefore })),
      api.report("kpi-active-salesmen", asOfParams()),
      api.report("kpi-active-salesmen", asOfParams({ as_of: addDays(end, -7) })),
      api.report("kpi-top-product-mover", asOfParams({ n: 1 })),
    ]);
  const t = first(totals);
  const m = first(mom);
  const r = first(retention);
  const rBefore = first(retentionBefore);
  const rr = first(runRate);
  const rrBefore = first(runRateBefore);
  const a = first(active);
  const aBefore = first(activeBefore);
  const mv = first(mover);
  const retentionDelta = r.retention_rate_pct - rBefore.retention_rate_pct;
  const runRateChange = changePct(rr.run_rate, rrBefore.run_rate);
  const activeDelta = a.active_salesmen - aBefore.active_salesmen;
  const cards = [
    kpiCard("Total revenue", moneyShort(t.revenue), `${pct(t.revenue_change_pct)} vs previous period`,
      sign(t.revenue_change_pct), `${start} to ${end}, against the ${daysBetween(start, end) + 1} days before`),
    kpiCard("Month-over-month growth", pct(m.growth_pct),
      `${moneyShort(m.revenue)} vs ${moneyShort(m.revenue_previous)} per same selling days`, sign(m.growth_pct)),
    kpiCard("Average order value", money(t.average_order_value),
      `${pct(t.average_order_value_change_pct)} vs previous period`, sign(t.average_order_value_change_pct)),
    kpiCard("Customer retention", pct(r.retention_rate_pct),
      `${num(retentionDelta)} pts vs a month before`, sign(retentionDelta)),
    kpiCard("Revenue run rate", moneyShort(rr.run_rate), `${pct(runRateChange)} vs last month`, sign(runRateChange),
      "This month's revenue per selling day so far, times the month's selling days"),
    kpiCard("Active salesmen", `${num(a.active_salesmen)} of ${num(a.salesmen)}`,
      `${activeDelta >= 0 ? "+" : ""}${num(activeDelta)} vs a week before`, sign(activeDelta)),
    kpiCard("Top product mover", el("span", { class: "text" }, mv.product_name || "–"), `${pct(mv.velocity_change_pct)} units per day`,
      sign(mv.velocity_change_pct), mv.product || ""),
  ];
  document.getElementById("kpi-grid").replaceChildren(...cards);
  return {
    rows: cards.length,
    downloads: [
      queryDownload(totalsQuery, "revenue"),
      reportDownload("kpi-mom-growth", asOfParams(), "growth"),
      reportDownload("kpi-retention-rate", asOfParams(), "retention"),
      reportDownload("kpi-revenue-run-rate", asOfParams(), "run rate"),
      reportDownload("kpi-active-salesmen", asOfParams(), "salesmen"),
      reportDownload("kpi-top-product-mover", asOfParams({ n: 5 }), "movers"),
    ],
  };
}

// ------------------------------------------------------------------------------------------ sales charts

function byCategory(rows, valueOf = (row) => row.revenue) {
  const categories = [...new Set(rows.map((row) => row.category))].sort();
  const periods = [...new Set(rows.map((row) => row.period))].sort();
  const series = categories.map((category) => {
    const values = new Map(rows.filter((row) => row.category === category).map((row) => [row.period, valueOf(row)]));
    return { name: category, type: "line", showSymbol: periods.length < 60, data: periods.map((p) => [p, values.get(p) ?? 0]) };
  });
  return { categories, series };
}

async function loadCategoryTrend(drill) {
  const name = `sales-by-category-${view.grain}`;
  const params = rangeParams();
  const result = await api.report(name, params);
  const { series } = byCategory(rowsOf(result));
  draw("chart-category-trend", {
    tooltip: { trigger: "axis", valueFormatter: money },
    legend: { top: 0 },
    grid: { left: 70, right: 20, top: 30, bottom: 30 },
    xAxis: { type: "time" },
    yAxis: { type: "value", axisLabel: { formatter: moneyShort } },
    series,
  }, { onClick: (event) => drill({ category: event.seriesName }) });
  return { rows: rowsOf(result).length, downloads: [reportDownload(name, params)] };
}

async function loadCategoryBars(drill) {
  const body = { measures: ["revenue", "units"], dimensions: ["category"], filters: queryFilters(),
    time_dimension: { date_range: queryDateRange() }, order: [{ member: "revenue", direction: "desc" }] };
  const rows = rowsOf(await api.query(body));
  draw("chart-category-bars", {
    tooltip: { trigger: "axis", valueFormatter: money },
    grid: { left: 110, right: 30, top: 10, bottom: 30 },
    xAxis: { type: "value", axisLabel: { formatter: moneyShort } },
    yAxis: { type: "category", inverse: true, data: rows.map((row) => row.category) },
    series: [{ type: "bar", data: rows.map((row, i) => ({ value: row.revenue, itemStyle: { color: PALETTE[i % PALETTE.length] } })),
      label: { show: true, position: "insideRight", color: "#fff", formatter: (p) => moneyShort(p.value) } }],
  }, { onClick: (event) => drill({ category: event.name }) });
  return { rows: rows.length, downloads: [queryDownload(body, "categories")] };
}

async function loadTopProducts(drill) {
  const params = rangeParams({ n: 8 });
  const rows = rowsOf(await api.report("top-products", params));
  draw("chart-top-products", {
    tooltip: { trigger: "item", formatter: (p) => `${p.name}<br>${money(p.value)} (${p.percent}% of the top 8)` },
    series: [{
      type: "pie", radius: ["42%", "70%"], center: ["50%", "52%"], avoidLabelOverlap: true,
      label: { formatter: (p) => p.name.length > 18 ? `${p.name.slice(0, 17)}…` : p.name, fontSize: 11 },
      data: rows.map((row) => ({ name: row.product_name || row.product, value: row.revenue, product: row.product })),
    }],
  }, { onClick: (event) => drill({ product: event.data.product }) });
  return { rows: rows.length, downloads: [reportDownload("top-products", params)] };
}

function quarterOf(day) {
  const month = Number(day.slice(5, 7));
  const firstMonth = month - ((month - 1) % 3);
  const start = `${day.slice(0, 4)}-${String(firstMonth).padStart(2, "0")}-01`;
  const next = firstMonth === 10 ? `${Number(day.slice(0, 4)) + 1}-01-01` : `${day.slice(0, 4)}-${String(firstMonth + 3).padStart(2, "0")}-01`;
  return { start, end: addDays(next, -1), label: `Q${(firstMonth + 2) / 3} ${day.slice(0, 4)}` };
}

async function loadQuarterGauge() {
  const { end } = period();
  const quarter = quarterOf(end);
  const toDate = { measures: ["revenue"], filters: queryFilters(), time_dimension: { date_range: [quarter.start, end] } };
  // (revenue rides along: a query of the goal alone fails in the query layer today)
  const plan = { measures: ["revenue", "goal"], filters: queryFilters(), time_dimension: { date_range: [quarter.start, quarter.end] } };
  // The goal plans are by region and salesman, or by category: other filters have no goal to compare with
  // (the API refuses them), so the gauge does not ask.
  const filtered = Object.keys(memberFilters());
  const planned = filtered.every((name) => ["region", "salesman"].includes(name))
    || (filtered.length === 1 && filtered[0] === "category");
  const [actual, goal] = await Promise.all([api.query(toDate), planned ? api.query(plan) : { rows: [] }]);
  const revenue = first(actual).revenue || 0;
  const target = first(goal).goal;
  const share = target ? (revenue / target) * 100 : null;
  const elapsed = ((daysBetween(quarter.start, end) + 1) / (daysBetween(quarter.start, quarter.end) + 1)) * 100;
  draw("chart-quarter-gauge", {
    series: [{
      type: "gauge", min: 0, max: 120, startAngle: 200, endAngle: -20, radius: "95%", center: ["50%", "60%"],
      progress: { show: true, width: 16, itemStyle: { color: PALETTE[0] } },
      axisLine: { lineStyle: { width: 16, color: [[elapsed / 120, "#c6dbef"], [1, "#eef2f6"]] } },
      axisTick: { show: false }, splitLine: { length: 8, lineStyle: { color: "#888" } },
      axisLabel: { distance: 20, formatter: (v) => `${v}%`, fontSize: 10 },
      pointer: { show: false },
      title: { offsetCenter: [0, "62%"], fontSize: 12, color: "#5b6675" },
      detail: { offsetCenter: [0, "5%"], fontSize: 22, fontWeight: 700, formatter: () => (share === null ? money(revenue) : pct(share)) },
      data: [{
        value: share === null ? 0 : Math.min(share, 120),
        name: target ? `${quarter.label}: ${moneyShort(revenue)} of ${moneyShort(target)} goal\n(${pct(elapsed)} of the quarter gone)` : `${quarter.label}: no goal for this selection`,
      }],
    }],
  });
  return { rows: 1, downloads: [queryDownload(toDate, "to date"), queryDownload(plan, "goal")] };
}

// ------------------------------------------------------------------------------------------ map

async function loadMap(drill) {
  const map = await loadUsMap();
  return view.state ? loadStateDrill(map, drill) : loadUsStates(map, drill);
}

function distributorPoints(rows) {
  const top = Math.max(1, ...rows.map((row) => row.revenue || 0));
  // Distributors that sold nothing under the filters are listed by the report (revenue 0) but not drawn.
  return rows.filter((row) => row.revenue > 0 && row.longitude !== null && row.latitude !== null).map((row) => ({
    name: row.distributor_name || row.distributor,
    value: [row.longitude, row.latitude, row.revenue],
    symbolSize: 5 + 14 * Math.sqrt((row.revenue || 0) / top),
    detail: `${row.city}, ${row.state} ${row.zip}`,
  }));
}

const pointTooltip = (p) => `${p.name}<br>${p.data.detail}<br>${money(p.value[2])}`;

async function loadUsStates(map, drill) {
  const stateParams = rangeParams();
  const distributorParams = rangeParams({ n: 500 });
  const [states, distributors] = await Promise.all([
    api.report("sales-by-state", stateParams), api.report("distributor-locations", distributorParams),
  ]);
  const rows = rowsOf(states);
  const onMap = rows.filter((row) => map.codes.has(row.state));
  const elsewhere = rows.filter((row) => !map.codes.has(row.state));
  const figures = new Map(rows.map((row) => [row.state, row]));
  draw("chart-map", {
    tooltip: {
      trigger: "item",
      formatter: (p) => {
        if (p.seriesType === "scatter") return pointTooltip(p);
        const row = figures.get(p.name);
        return row ? `${p.name}<br>${money(row.revenue)}<br>${num(row.orders)} orders, ${num(row.units)} units` : `${p.name}: no sales`;
      },
    },
    visualMap: { min: 0, max: Math.max(1, ...onMap.map((row) => row.revenue)), inRange: { color: SEQUENTIAL },
      left: 10, bottom: 10, calculable: false, text: ["more", "less"], formatter: moneyShort, seriesIndex: 0 },
    geo: { map: "usa", roam: true, itemStyle: { borderColor: "#fff" }, emphasis: { itemStyle: { areaColor: "#E69F00" }, label: { show: false } } },
    series: [
      { type: "map", geoIndex: 0, data: onMap.map((row) => ({ name: row.state, value: row.revenue })) },
      { type: "scatter", coordinateSystem: "geo", name: "Distributors", data: distributorPoints(rowsOf(distributors)),
        itemStyle: { color: "#D55E00", borderColor: "#fff", borderWidth: 1 } },
    ],
  }, { onClick: (event) => { if (event.componentType === "geo" || event.seriesType === "map") drill({ state: event.name }); } });

  const side = [table([["state", "State", "text"], ["revenue", "Revenue", "currency"], ["orders", "Orders", "integer"]],
    rows.slice(0, 15), { caption: "Top states", onRow: (row) => drill({ state: row.state }) })];
  if (elsewhere.length) {
    side.push(table([["state", "Outside the US map", "text"], ["revenue", "Revenue", "currency"]], elsewhere, { caption: "Other places" }));
  }
  document.getElementById("map-side").replaceChildren(...side);
  return { rows: rows.length, downloads: [reportDownload("sales-by-state", stateParams), reportDownload("distributor-locations", distributorParams, "distributors")] };
}

async function loadStateDrill(map, drill) {
  const zipParams = rangeParams();
  const customerParams = rangeParams({ n: 400 });
  const distributorParams = rangeParams({ n: 500 });
  const [zips, customers, distributors] = await Promise.all([
    api.report("sales-by-state-zip", zipParams),
    api.report("customer-locations", customerParams),
    api.report("distributor-locations", distributorParams),
  ]);
  const outline = registerStateMap(view.state);
  const customerPoints = rowsOf(customers).filter((row) => row.longitude !== null).map((row) => ({
    name: row.customer_name || row.customer, value: [row.longitude, row.latitude, row.revenue],
    detail: `${row.city || ""} ${row.zip || ""}`,
  }));
  const top = Math.max(1, ...customerPoints.map((p) => p.value[2]));
  draw("chart-map", {
    title: { text: outline ? `${outline.title}: customers by zip, distributors` : view.state, left: "center", textStyle: { fontSize: 13 } },
    tooltip: { trigger: "item", formatter: (p) => (p.seriesType === "scatter" ? pointTooltip(p) : p.name) },
    legend: { bottom: 0 },
    geo: outline ? { map: outline.name, roam: true, itemStyle: { areaColor: "#eef2f6", borderColor: "#8a96a3" }, emphasis: { disabled: true } } : undefined,
    series: outline ? [
      { type: "scatter", coordinateSystem: "geo", name: "Customers", data: customerPoints,
        symbolSize: (value) => 4 + 12 * Math.sqrt(value[2] / top), itemStyle: { color: "#0072B2", opacity: 0.7 } },
      { type: "scatter", coordinateSystem: "geo", name: "Distributors", data: distributorPoints(rowsOf(distributors)),
        symbol: "diamond", itemStyle: { color: "#D55E00", borderColor: "#fff" } },
    ] : [],
  });
  const back = el("button", { type: "button", onclick: () => drill({ state: "" }) }, "← All states");
  const zipRows = rowsOf(zips);
  document.getElementById("map-side").replaceChildren(back,
    table([["zip", "Zip", "text"], ["revenue", "Revenue", "currency"], ["orders", "Orders", "integer"]], zipRows.slice(0, 40),
      { caption: `Sales by zip code in ${view.state} (${zipRows.length} zips)` }));
  return {
    rows: zipRows.length,
    downloads: [reportDownload("sales-by-state-zip", zipParams, "zips"), reportDownload("customer-locations", customerParams, "customers")],
  };
}

// ------------------------------------------------------------------------------------------ goals and tables

// Goals are planned by region and by salesman only: the goal panels keep those filters, and say which others
// they leave out (the API refuses a goal asked by category, product or state).
function goalParams(allowed, extra = {}) {
  const kept = Object.fromEntries(Object.entries(memberFilters()).filter(([name]) => allowed.includes(name)));
  return { ...kept, ...period(), ...extra };
}

function showIgnoredFilters(panelId, allowed) {
  const ignored = Object.keys(memberFilters()).filter((name) => !allowed.includes(name));
  const box = document.getElementById(`panel-${panelId}`);
  box.querySelector(":scope > .goal-scope")?.remove();
  if (ignored.length) {
    box.append(el("p", { class: "note goal-scope" }, `Goals are set by ${allowed.join(" and ")}: the ${ignored.join(", ")} filter does not apply here.`));
  }
}

async function loadGoalRegions(drill) {
  const params = goalParams(["region"]);
  showIgnoredFilters("goal-regions", ["region"]);
  const rows = lastPeriodRows(rowsOf(await api.report("goal-attainment-by-region", params))).filter((row) => row.goal_attainment_pct !== null);
  draw("chart-goal-regions", {
    tooltip: { trigger: "axis", formatter: (items) => {
      const row = rows[items[0].dataIndex];
      return `${row.region} (${row.period})<br>${pct(row.goal_attainment_pct)} of goal<br>${money(row.revenue)} of ${money(row.goal_to_date)}<br>${row.goal_basis}`;
    } },
    grid: { left: 60, right: 20, top: 20, bottom: 30 },
    xAxis: { type: "category", data: rows.map((row) => row.region) },
    yAxis: { type: "value", axisLabel: { formatter: "{value}%" } },
    series: [{
      type: "bar", data: rows.map((row) => ({ value: row.goal_attainment_pct, itemStyle: { color: row.goal_attainment_pct >= 100 ? "#009E73" : row.goal_attainment_pct >= 80 ? "#56B4E9" : "#D55E00" } })),
      label: { show: true, position: "top", formatter: (p) => pct(p.value) },
      markLine: { symbol: "none", data: [{ yAxis: 100, name: "goal" }], lineStyle: { color: "#000", type: "dashed" }, label: { formatter: "goal" } },
    }],
  }, { onClick: (event) => drill({ region: event.name }) });
  return { rows: rows.length, downloads: [reportDownload("goal-attainment-by-region", params)] };
}

async function loadGoalSalesmen(drill) {
  const params = goalParams(["region", "salesman"]);
  showIgnoredFilters("goal-salesmen", ["region", "salesman"]);
  const rows = lastPeriodRows(rowsOf(await api.report("goal-attainment-by-salesman", params)))
    .filter((row) => row.goal_attainment_pct !== null)
    .sort((a, b) => b.goal_attainment_pct - a.goal_attainment_pct);
  document.getElementById("table-goal-salesmen").replaceChildren(table(
    [["salesman_name", "Salesman", "text"], ["revenue", "Revenue", "currency"], ["goal_to_date", "Goal to date", "currency"], ["goal_attainment_pct", "Attainment", "percent"]],
    rows, { caption: rows.length ? `${rows[0].period} (${rows[0].goal_basis})` : "No goals in this period", onRow: (row) => drill({ salesman: row.salesman }) }));
  return { rows: rows.length, downloads: [reportDownload("goal-attainment-by-salesman", params)] };
}

async function loadOpportunities(drill) {
  const params = goalParams(["region", "salesman"], { level: "salesman" });
  showIgnoredFilters("opportunities", ["region", "salesman"]);
  const result = await api.report("sales-opportunities", params);
  const rows = lastPeriodRows(rowsOf(result));
  const name = rows.some((row) => row.salesman_name) ? "salesman_name" : "salesman";
  document.getElementById("table-opportunities").replaceChildren(rows.length
    ? table([[name, "Salesman", "text"], ["goal_attainment_pct", "Attainment", "percent"], ["gap_to_goal", "Gap to goal", "currency"]],
      rows, { caption: `${rows[0].period}: between 60% and 80% of goal`, onRow: (row) => drill({ salesman: row.salesman }) })
    : el("p", { class: "note" }, "Nobody is between 60% and 80% of goal in the latest month of this period."));
  return { rows: rows.length || 1, downloads: [reportDownload("sales-opportunities", params)] };
}

async function loadTopBottom(drill) {
  const params = rangeParams({ n: 5 });
  const names = ["top-products", "bottom-products", "top-states", "bottom-states"];
  const [topProducts, bottomProducts, topStates, bottomStates] = await Promise.all(names.map((name) => api.report(name, params)));
  const product = [["product_name", "Product", "text"], ["revenue", "Revenue", "currency"]];
  const state = [["state", "State", "text"], ["revenue", "Revenue", "currency"]];
  const drillProduct = (row) => drill({ product: row.product });
  const drillState = (row) => drill({ state: row.state });
  const grid = el("div", { class: "top-bottom" },
    table(product, rowsOf(topProducts), { caption: "Top 5 products", onRow: drillProduct }),
    table(product, rowsOf(bottomProducts), { caption: "Bottom 5 products", onRow: drillProduct }),
    table(state, rowsOf(topStates), { caption: "Top 5 states", onRow: drillState }),
    table(state, rowsOf(bottomStates), { caption: "Bottom 5 states", onRow: drillState }));
  document.getElementById("table-top-bottom").replaceChildren(grid);
  return { rows: rowsOf(topProducts).length, downloads: names.map((name) => reportDownload(name, params, name.replace("-", " "))) };
}

async function loadSlowMovers(drill) {
  const params = asOfParams({ days: 30 });
  const rows = rowsOf(await api.report("slow-movers", params));
  document.getElementById("table-slow-movers").replaceChildren(rows.length
    ? table([["product_name", "Product", "text"], ["category", "Category", "text"], ["last_sale", "Last sale", "date"], ["days_without_sales", "Days idle", "integer"]],
      rows.slice(0, 50), { caption: `${rows.length} products without a sale in 30 days`, onRow: (row) => drill({ product: row.product }) })
    : el("p", { class: "note" }, "Every product sold in the last 30 days."));
  return { rows: rows.length || 1, downloads: [reportDownload("slow-movers", params)] };
}

// ------------------------------------------------------------------------------------------ customers

async function loadSegments() {
  // Lifetime figures (recency and revenue do not depend on the date range), for the filtered customers.
  const body = { measures: ["revenue", "orders", "last_sale"], dimensions: ["customer"], filters: queryFilters(),
    order: [{ member: "revenue", direction: "desc" }], limit: 1000 };
  const [customers, profiles] = await Promise.all([api.query(body), api.segmentProfiles()]);
  const rows = rowsOf(customers);
  const assigned = rows.length ? (await api.segment(rows.map((row) => row.customer))).customers : [];
  const segmentOf = new Map(assigned.map((c) => [c.customer_id, c.segment]));
  const names = (profiles.segments || []).map((s) => s.segment);
  const color = (name) => PALETTE[Math.max(0, names.indexOf(name)) % PALETTE.length];
  const asOf = dataSpan.last;
  const series = names.map((name) => ({
    name, type: "scatter", symbolSize: 6, itemStyle: { color: color(name), opacity: 0.75 },
    data: rows.filter((row) => segmentOf.get(row.customer) === name)
      .map((row) => ({ value: [daysBetween(row.last_sale, asOf), row.revenue], name: row.customer_name || row.customer })),
  }));
  draw("chart-segments", {
    tooltip: { trigger: "item", formatter: (p) => `${p.name} (${p.seriesName})<br>${p.value[0]} days since last purchase<br>${money(p.value[1])} lifetime` },
    legend: { top: 0, type: "scroll" },
    grid: { left: 70, right: 20, top: 40, bottom: 45 },
    xAxis: { type: "value", name: "days since last purchase", nameLocation: "middle", nameGap: 28 },
    yAxis: { type: "log", name: "lifetime revenue", axisLabel: { formatter: moneyShort } },
    series,
  });
  document.getElementById("segment-cards").replaceChildren(...(profiles.segments || []).map((s) => segmentCard(s, color(s.segment))));
  return { rows: rows.length, downloads: [queryDownload(body, "customers")] };
}

// A profile row of GET /segments: size, shares (fractions), mean recency/frequency/monetary, action.
function segmentCard(profile, color) {
  const facts = [
    `${num(profile.customers)} customers (${pct(profile.customer_share * 100)})`,
    `${pct(profile.revenue_share * 100)} of revenue`,
    `last order ${num(profile.mean_recency_days)} days ago on average`,
    `${num(profile.mean_frequency)} orders, ${moneyShort(profile.mean_monetary)} each customer`,
  ];
  return el("div", { class: "segment-card", style: `--c: ${color}` },
    el("h3", {}, profile.segment), el("div", {}, facts.join(" · ")), el("div", { class: "action" }, profile.action || ""));
}

async function loadChurn() {
  // As of the view's last day over each customer's whole history (his usual gap is his own, whatever the
  // view's start): the same report as the insights' churn sentence, and the all-time rollup answers it.
  const params = { ...memberFilters(), end: period().end, n: 15 };
  const result = await api.report("churn-risk", params);
  const rows = rowsOf(result);
  const atRisk = rows.reduce((sum, row) => sum + (row.value_at_risk || 0), 0);
  document.getElementById("table-churn").replaceChildren(
    el("p", { class: "note" }, `${money(atRisk)} a year at risk from these ${rows.length} customers`),
    table([["customer_name", "Customer", "text"], ["days_since_last_purchase", "Days since", "integer"], ["usual_gap_days", "Usual gap", "number"], ["value_at_risk", "Value at risk", "currency"]], rows));
  return { rows: rows.length || 1, downloads: [reportDownload("churn-risk", params)] };
}

// ------------------------------------------------------------------------------------------ forecast

const HISTORY = { D: { grain: "day", periods: 120 }, W: { grain: "week", periods: 52 }, M: { grain: "month", periods: 24 } };
const LEVEL_MEMBER = { category: "category", region: "region", product: "product" };

// The level follows the filters (a product, else a category, else a region, else the total) unless chosen.
export function forecastTarget() {
  const level = view.fc_level || (view.product ? "product" : view.category ? "category" : view.region ? "region" : "total");
  const series = level === "total" ? "total" : view.fc_series || view[LEVEL_MEMBER[level]] || "";
  return { level, series };
}

async function loadForecast() {
  const { level, series: chosen } = forecastTarget();
  const freq = view.fc_freq || "D";
  const key = chosen || document.getElementById("fc-series").value;
  const history = HISTORY[freq];
  const end = period().end;
  const filters = level === "total" ? [] : [{ member: LEVEL_MEMBER[level], operator: "equals", values: [key] }];
  // Goals are monthly plans: the goal line is drawn at the monthly frequency.
  const historyQuery = { measures: freq === "M" ? ["revenue", "goal"] : ["revenue"], filters,
    time_dimension: { grain: history.grain, date_range: [addDays(end, -history.periods * { D: 1, W: 7, M: 30.5 }[freq]), end] } };
  const [answer, past] = await Promise.all([
    api.forecast({ level, series: [key], freq, intervals: [80, 95] }),
    api.query(historyQuery),
  ]);
  const points = answer.series[0].points;
  const actual = rowsOf(past).map((row) => [row.period, row.revenue]);
  const band = (low, high) => [
    { type: "line", stack: `band${low}`, data: points.map((p) => [p.date, p[low]]), lineStyle: { opacity: 0 }, symbol: "none", tooltip: { show: false } },
    { type: "line", stack: `band${low}`, name: `${low.slice(3)}% interval`, data: points.map((p) => [p.date, p[high] - p[low]]),
      lineStyle: { opacity: 0 }, symbol: "none", itemStyle: { color: low === "lo_95" ? "#c6dbef" : "#6baed6" },
      areaStyle: { color: low === "lo_95" ? "#c6dbef" : "#6baed6", opacity: 0.6 } },
  ];
  const series = [
    ...band("lo_95", "hi_95"), ...band("lo_80", "hi_80"),
    { type: "line", name: "actual", data: actual, symbol: "none", lineStyle: { color: "#000" }, itemStyle: { color: "#000" } },
    { type: "line", name: "forecast", data: points.map((p) => [p.date, p.forecast]), symbol: "none", lineStyle: { color: "#D55E00", width: 2 }, itemStyle: { color: "#D55E00" } },
  ];
  const goals = rowsOf(past).filter((row) => row.goal !== null && row.goal !== undefined);
  if (freq === "M" && goals.length) {
    series.push({ type: "line", name: "goal", step: "start", data: goals.map((row) => [row.period, row.goal]), symbol: "none", lineStyle: { type: "dashed", color: "#009E73" }, itemStyle: { color: "#009E73" } });
  }
  draw("chart-forecast", {
    title: { text: `${level === "total" ? "All sales" : key}: ${{ D: "daily", W: "weekly", M: "monthly" }[freq]} revenue (model ${answer.model_version || ""})`, left: "center", textStyle: { fontSize: 13 } },
    tooltip: { trigger: "axis", valueFormatter: money },
    legend: { bottom: 0, data: ["actual", "forecast", "80% interval", "95% interval", ...(series.some((s) => s.name === "goal") ? ["goal"] : [])] },
    grid: { left: 70, right: 20, top: 35, bottom: 50 },
    xAxis: { type: "time" },
    yAxis: { type: "value", axisLabel: { formatter: moneyShort } },
    series,
  });
  return { rows: points.length, downloads: [queryDownload(historyQuery, "history")] };
}
