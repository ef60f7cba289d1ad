// The service's public endpoints, and nothing else: /analytics/reports/<name>, /analytics/insights,
// /analytics/query, /analytics/meta, /forecast, /segments, /segment, /health, and the CSV/Excel downloads
// under /export.

// With SALESPULSE_READ_ACCESS=keyed the reads need a key: asked once, kept for this tab only.
function apiKeyHeader() {
  const key = sessionStorage.getItem("salespulse-api-key");
  return key ? { "X-API-Key": key } : {};
}

async function call(url, options = {}) {
  const response = await fetch(url, {
    ...options,
    headers: { Accept: "application/json", ...apiKeyHeader(), ...(options.headers || {}) },
  });
  if (response.status === 401 && !sessionStorage.getItem("salespulse-api-key")) {
    const key = window.prompt("This service asks for an API key to read its figures:");
    if (key) {
      sessionStorage.setItem("salespulse-api-key", key);
      return call(url, options);
    }
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = (body.detail || []).map((d) => `${d.field}: ${d.message}`).join("; ");
    throw new Error(`${body.error || response.status}${detail ? ` (${detail})` : ""}`);
  }
  return body;
}

// Report parameters as a query string; a list repeats its name (?region=West&region=East).
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const report = (name, params = {}) => call(`/analytics/reports/${name}${queryString(params)}`);
export const reports = () => call("/analytics/reports");
export const insights = (params = {}) => call(`/analytics/insights${queryString(params)}`);
export const meta = () => call("/analytics/meta");
export const health = () => call("/health");
export const segmentProfiles = () => call("/segments");

function post(url, body) {
  return call(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}
export const query = (body) => post("/analytics/query", body);
export const forecast = (body) => post("/forecast", body);
export const segment = (customerIds) => post("/segment", { customer_ids: customerIds });

export const reportDownloadUrl = (name, params, format) =>
  `/export/report/${name}.${format}${queryString(params)}`;

// A query's download is a POST (the query is JSON), so it is fetched and handed to the browser as a file.
export async function downloadQuery(body, format) {
  const response = await fetch(`/export/query.${format}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...apiKeyHeader() },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`download failed: ${response.status}`);
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="([^"]+)"/) || [])[1] || `salespulse-query.${format}`;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
