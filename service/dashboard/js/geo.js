// The US map from us-atlas (states, 1:10m, vendored from npm), keyed by the two-letter codes the data uses.

// FIPS code (us-atlas feature id) → postal code.
const POSTAL = {
  "01": "AL", "02": "AK", "04": "AZ", "05": "AR", "06": "CA", "08": "CO", "09": "CT", "10": "DE", "11": "DC",
  "12": "FL", "13": "GA", "15": "HI", "16": "ID", "17": "IL", "18": "IN", "19": "IA", "20": "KS", "21": "KY",
  "22": "LA", "23": "ME", "24": "MD", "25": "MA", "26": "MI", "27": "MN", "28": "MS", "29": "MO", "30": "MT",
  "31": "NE", "32": "NV", "33": "NH", "34": "NJ", "35": "NM", "36": "NY", "37": "NC", "38": "ND", "39": "OH",
  "40": "OK", "41": "OR", "42": "PA", "44": "RI", "45": "SC", "46": "SD", "47": "TN", "48": "TX", "49": "UT",
  "50": "VT", "51": "VA", "53": "WA", "54": "WV", "55": "WI", "56": "WY", "72": "PR",
};
// Alaska, Hawaii and Puerto Rico moved next to the lower 48, as printed US maps do.
const INSETS = {
  AK: { left: -131, top: 25, width: 15 },
  HI: { left: -110, top: 28, width: 5 },
  PR: { left: -76, top: 26, width: 2 },
};

let states = null;

// Registers the map "usa" (and returns the state codes it has); fetched once, from this service.
export async function loadUsMap() {
  if (states) return states;
  const topology = await (await fetch("/dashboard/vendor/us-atlas/states-10m.json")).json();
  const collection = window.topojson.feature(topology, topology.objects.states);
  collection.features = collection.features
    .filter((feature) => POSTAL[feature.id])
    .map((feature) => ({ ...feature, properties: { name: POSTAL[feature.id], title: feature.properties.name } }));
  window.echarts.registerMap("usa", collection, INSETS);
  states = { codes: new Set(collection.features.map((f) => f.properties.name)), collection };
  return states;
}

// One state's outline as its own map, for the drill-down to its zip codes.
export function registerStateMap(code) {
  const feature = states.collection.features.find((f) => f.properties.name === code);
  if (!feature) return null;
  const name = `usa-${code}`;
  window.echarts.registerMap(name, { type: "FeatureCollection", features: [feature] });
  return { name, title: feature.properties.title };
}
