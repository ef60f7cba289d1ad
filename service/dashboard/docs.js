// The API docs pages (/docs, /redoc, /analytics/docs, /analytics/redoc): the OpenAPI document is fetched here
// and cleaned before Swagger UI or ReDoc shows it. BentoML's own description is its advertising, with badge
// images from the internet, and its version says "None"; a page that works offline must load neither.
(function () {
  const page = document.body.dataset;

  function withoutImages(text) {
    return text.replace(/\[?!\[[^\]]*\]\([^)]*\)\]?(\([^)]*\))?/g, "").replace(/<img[^>]*>/gi, "");
  }

  // Every description in the document, however deep, loses its images.
  function clean(node) {
    if (Array.isArray(node)) return node.forEach(clean);
    if (!node || typeof node !== "object") return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "description" && typeof value === "string") node[key] = withoutImages(value);
      else clean(value);
    }
  }

  async function loadSpec() {
    const spec = await (await fetch(page.spec)).json();
    const info = spec.info || (spec.info = {});
    if (/BentoML/.test(info.description || "")) {
      info.title = "salespulse API";
      info.description = "Forecasts, customer segments, the analytics API (/analytics) and the service's "
        + "read and admin endpoints. The dashboard is at [/dashboard](/dashboard).";
      delete info.contact;
    }
    if (!info.version || info.version === "None") info.version = page.version;
    clean(spec);
    return spec;
  }

  window.salespulseDocs = {
    async swagger() {
      window.SwaggerUIBundle({
        spec: await loadSpec(),
        dom_id: "#swagger-ui",
        layout: "BaseLayout",
        deepLinking: true,
        validatorUrl: null, // no badge image from validator.swagger.io
        displayRequestDuration: true,
        presets: [window.SwaggerUIBundle.presets.apis],
      });
    },
    async redoc() {
      window.Redoc.init(await loadSpec(), { expandResponses: "200" }, document.getElementById("redoc"));
    },
  };
})();
