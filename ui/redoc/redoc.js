// Redoc for the service's own OpenAPI document, at /redoc.
"use strict";
Redoc.init("/openapi.json", {
	expandResponses: "200,201,202",
	hideDownloadButton: false,
	nativeScrollbars: true,
}, document.getElementById("redoc"));
