// The view: filters and panel options, kept in the URL so that a view can be shared (?region=West&...).

export const FILTERS = ["region", "category", "product", "salesman", "state", "start", "end"];
export const OPTIONS = { grain: "monthly", fc_level: "", fc_series: "", fc_freq: "D", in_period: "month" };
const MEMBER_FILTERS = ["region", "category", "product", "salesman", "state"];
const DEFAULT_MONTHS = 12;

export const view = { ...Object.fromEntries(FILTERS.map((name) => [name, ""])), ...OPTIONS };
// The data's own span (from /analytics/meta), for the default date range: the last year of sales.
export const dataSpan = { first: null, last: null };

export function readUrl() {
  const search = new URLSearchParams(window.location.search);
  for (const name of Object.keys(view)) view[name] = search.get(name) ?? (OPTIONS[name] ?? "");
}

export function writeUrl() {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(view)) {
    if (value && value !== OPTIONS[name]) search.set(name, value);
  }
  const text = search.toString();
  window.history.replaceState(null, "", `${window.location.pathname}${text ? `?${text}` : ""}`);
}

// The date range every panel uses: the chosen one, else the last twelve calendar months up to the last
// sale (the running month and the eleven before it). Starting on the first of a month lets the month
// rollups answer: a year counted in days reads the order lines (10M lines: 0.1-1 s a state report).
export function period() {
  const end = view.end || dataSpan.last;
  const start = view.start || (end ? monthsBack(end, DEFAULT_MONTHS - 1) : null);
  return { start, end };
}

function monthsBack(day, months) {
  const [year, month] = day.split("-").map(Number);
  const index = year * 12 + (month - 1) - months;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}-01`;
}

export function memberFilters() {
  return Object.fromEntries(MEMBER_FILTERS.filter((name) => view[name]).map((name) => [name, view[name]]));
}

// Parameters of a report that takes a date range (start/end) or a day (as_of).
export const rangeParams = (extra = {}) => ({ ...memberFilters(), ...period(), ...extra });
export const asOfParams = (extra = {}) => ({ ...memberFilters(), as_of: period().end, ...extra });

// The same filters as /analytics/query filters.
export function queryFilters() {
  return Object.entries(memberFilters()).map(([member, value]) => ({ member, operator: "equals", values: [value] }));
}
export function queryDateRange() {
  const { start, end } = period();
  return start && end ? [start, end] : null;
}
