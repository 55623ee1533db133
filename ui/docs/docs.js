// Swagger UI for the service's own OpenAPI document, at /docs.  "Try it
// out" sends requests to this origin (the document's server is "/").  A
// bearer token given with "Authorize", or earlier in the dashboard's token
// field (sessionStorage, this tab only), is sent with every request.
"use strict";
(function () {
	var TOKEN_KEY = "mlc.token";
	var ui = SwaggerUIBundle({
		url: "/openapi.json",
		dom_id: "#swagger-ui",
		layout: "BaseLayout",
		presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
		deepLinking: true,
		showExtensions: true,
		showCommonExtensions: true,
		// No request to swagger.io's online validator.
		validatorUrl: null,
		onComplete: function () {
			var token = null;
			try { token = window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { /* storage off */ }
			if (token) ui.preauthorizeApiKey("bearerAuth", token);
		},
	});
	window.ui = ui;
})();
