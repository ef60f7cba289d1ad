// The API docs pages (/docs, /redoc, /analytics/docs, /analytics/redoc): the viewers are vendored (no CDN), and
// the OpenAPI document they show is the service's own (service/openapi.py): OpenAPI 3.1, the product's title
// and version, no images from the internet, request examples where "Try it out" takes them.
(function () {
  const page = document.body.dataset;

  async function loadSpec() {
    return (await fetch(page.spec)).json();
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
