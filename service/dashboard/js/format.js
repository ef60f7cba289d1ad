// Number formats and small DOM helpers shared by the panels.

const currency0 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });
const currency2 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 2 });
const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export function money(value) {
  if (value === null || value === undefined) return "–";
  return Math.abs(value) >= 100 ? currency0.format(value) : currency2.format(value);
}
export const moneyShort = (value) => (value === null || value === undefined ? "–" : `$${compact.format(value)}`);
export const num = (value) => (value === null || value === undefined ? "–" : number.format(value));
export const pct = (value) => (value === null || value === undefined ? "–" : `${number.format(value)}%`);

// A value in the format the API declares for its column (ColumnInfo.format).
export function byFormat(value, format) {
  if (value === null || value === undefined) return "–";
  switch (format) {
    case "currency": return money(value);
    case "percent": return pct(value);
    case "integer": return number.format(Math.round(value));
    case "number": return num(value);
    default: return String(value);
  }
}
export const isNumeric = (format) => ["currency", "percent", "integer", "number"].includes(format);

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A table of rows: columns are [name, label, format]; onRow makes a row a keyboard-reachable drill-down.
export function table(columns, rows, { caption, onRow } = {}) {
  const head = el("tr", {}, columns.map(([, label, format]) => el("th", { class: isNumeric(format) ? "num" : "" }, label)));
  const body = rows.map((row) => {
    const cells = columns.map(([name, , format]) =>
      el("td", { class: isNumeric(format) ? "num" : "" }, byFormat(row[name], format)));
    if (!onRow) return el("tr", {}, cells);
    return el("tr", {
      class: "clickable", tabindex: "0",
      onclick: () => onRow(row),
      onkeydown: (event) => { if (event.key === "Enter") onRow(row); },
    }, cells);
  });
  return el("table", {}, caption ? el("caption", {}, caption) : null, el("thead", {}, head), el("tbody", {}, body));
}

export const isoDay = (date) => date.toISOString().slice(0, 10);
export function addDays(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return isoDay(date);
}
export function daysBetween(from, to) {
  return Math.round((new Date(`${to}T00:00:00Z`) - new Date(`${from}T00:00:00Z`)) / 86_400_000);
}
