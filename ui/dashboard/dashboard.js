// The MLConnector dashboard (/dashboard): a static page that reads the API
// from the browser.  Everything it shows comes from the published routes,
// so it sees what the token in the field above may see.  Text from the
// API is only ever put into the page as text (textContent), never as HTML.
"use strict";

(function () {
	var TOKEN_KEY = "mlc.token";
	var REFRESH_MS = 10000;
	var MAX_ROWS = 1000;          // per list, following Link: rel="next"
	var MAX_FILE_LOOKUPS = 100;   // models whose stored files are listed
	var MAX_OWNERS = 25;          // owners whose operations are read
	var OPS_PER_OWNER = 20;
	var OPS_SHOWN = 30;

	var charts = { drift: [], shap: null };
	var state = { deployments: [], models: [], driftModel: null, busy: false };

	function $(id) { return document.getElementById(id); }

	function el(tag, attrs, children) {
		var node = document.createElement(tag);
		Object.keys(attrs || {}).forEach(function (k) {
			if (k === "text") node.textContent = attrs[k];
			else if (k === "class") node.className = attrs[k];
			else if (k.slice(0, 5) === "data-") node.setAttribute(k, attrs[k]);
			else node[k] = attrs[k];
		});
		(children || []).forEach(function (c) {
			node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
		});
		return node;
	}

	function token() {
		try { return window.sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
	}

	function setToken(value) {
		try {
			if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
			else window.sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) { /* storage off: the token lasts until the page is left */ }
		showTokenState();
	}

	function showTokenState() {
		$("token-state").textContent = token() ? "a token is sent with every request (kept for this tab only)"
			: "no token is sent";
	}

	// ---- the API ----

	function ApiError(path, status, detail) {
		this.path = path;
		this.status = status;
		this.detail = detail;
		this.message = path + ": " + (status ? "HTTP " + status + ": " : "") + detail;
	}

	function describeDetail(body) {
		if (body && typeof body.detail === "string") return body.detail;
		if (body && Array.isArray(body.detail)) {
			return body.detail.map(function (d) { return (d.loc || []).join(".") + ": " + d.msg; }).join("; ");
		}
		return body === null || body === undefined ? "no answer" : JSON.stringify(body).slice(0, 300);
	}

	function api(method, path, body) {
		var headers = { "Accept": "application/json" };
		var t = token();
		if (t) headers["Authorization"] = "Bearer " + t;
		var init = { method: method, headers: headers, cache: "no-store" };
		if (body !== undefined) {
			headers["Content-Type"] = "application/json";
			init.body = JSON.stringify(body);
		}
		return fetch(path, init).then(function (resp) {
			return resp.text().then(function (text) {
				var data = null;
				try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
				if (!resp.ok) {
					var detail = describeDetail(data);
					if (resp.status === 401 || resp.status === 403) {
						detail += " (enter a bearer token above)";
					}
					throw new ApiError(path, resp.status, detail);
				}
				return { data: data, link: resp.headers.get("Link") };
			});
		}, function (err) {
			throw new ApiError(path, 0, "the request failed: " + err.message);
		});
	}

	function nextLink(link) {
		if (!link) return null;
		var m = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
		return m ? m[1] : null;
	}

	// Every page of a list, up to MAX_ROWS rows.
	function fetchAll(path) {
		var rows = [];
		function page(p) {
			return api("GET", p).then(function (r) {
				rows = rows.concat(Array.isArray(r.data) ? r.data : []);
				var next = nextLink(r.link);
				if (next && rows.length < MAX_ROWS) return page(next);
				return rows.slice(0, MAX_ROWS);
			});
		}
		return page(path);
	}

	// fn over items, at most n at a time; results in order.
	function mapLimit(items, n, fn) {
		var results = new Array(items.length), i = 0;
		function worker() {
			if (i >= items.length) return Promise.resolve();
			var k = i++;
			return fn(items[k]).then(function (v) { results[k] = v; }, function (e) { results[k] = e; })
				.then(worker);
		}
		var workers = [];
		for (var w = 0; w < Math.min(n, items.length); w++) workers.push(worker());
		return Promise.all(workers).then(function () { return results; });
	}

	// ---- formatting ----

	function when(iso) {
		if (!iso) return "";
		return String(iso).replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, " UTC");
	}

	function short(text, n) {
		text = String(text);
		return text.length > n ? text.slice(0, n - 1) + "…" : text;
	}

	function emptyRow(tbody, cols, text) {
		tbody.appendChild(el("tr", {}, [el("td", { class: "empty", colSpan: cols, text: text })]));
	}

	function showError(err) {
		$("errors").appendChild(el("div", { text: err && err.message ? err.message : String(err) }));
	}

	function statusCell(status) {
		return el("td", { class: "status status-" + String(status).replace(/[^a-z]/g, ""), text: status || "" });
	}

	// ---- sections ----

	function loadHealth() {
		return api("GET", "/health").then(function (r) {
			var h = r.data || {};
			$("health").textContent = "service " + (h.status || "?") + ", database " + (h.database || "?") +
				(h.version ? ", version " + h.version : "");
		}, function (err) {
			$("health").textContent = "the service is not healthy: " + err.detail;
		});
	}

	function renderDeployments(deps) {
		var tbody = $("deployments-body");
		tbody.textContent = "";
		if (!deps.length) return emptyRow(tbody, 8, "no deployments");
		deps.forEach(function (d) {
			var note = [d.reason, d.warnings].filter(Boolean).join("\n");
			tbody.appendChild(el("tr", { "data-deployment-id": d.deployment_id }, [
				el("td", { class: "mono", text: d.deployment_id }),
				el("td", { class: "mono", text: d.modelid || "" }),
				el("td", { text: d.model_version === null || d.model_version === undefined ? "" : "v" + d.model_version }),
				el("td", { text: d.ownerid || "" }),
				statusCell(d.status),
				el("td", { class: "reason", text: note }),
				el("td", { class: "mono", text: d.endpoint || "" }),
				el("td", { text: when(d.updated_at) }),
			]));
		});
	}

	function latestFiles(files) {
		var latest = {};
		(Array.isArray(files) ? files : []).forEach(function (f) {
			if (!latest[f.filekind] || f.version > latest[f.filekind]) latest[f.filekind] = f.version;
		});
		return Object.keys(latest).sort().map(function (k) { return k + " v" + latest[k]; }).join(", ");
	}

	function driftOn(m) {
		return (m.drift_detection || []).some(function (d) { return d && Number(d.is_true) === 1; });
	}

	function renderModels(models, files) {
		var tbody = $("models-body");
		tbody.textContent = "";
		if (!models.length) return emptyRow(tbody, 7, "no models registered");
		models.forEach(function (m, i) {
			var f = files[i];
			var fileText = f instanceof ApiError ? "(" + f.detail + ")" : f === undefined ? "(not listed)" : latestFiles(f) || "none";
			var tags = el("td", {}, (m.modeltags || []).map(function (t) { return el("span", { class: "tag", text: t }); }));
			tbody.appendChild(el("tr", { "data-model-id": m.modelid }, [
				el("td", { text: m.modelname }),
				el("td", { text: m.modelkind }),
				el("td", { class: "mono", text: m.modelid }),
				tags,
				el("td", { text: fileText }),
				el("td", { text: driftOn(m) ? "on" : "off" }),
				el("td", { text: when(m.updated_at) }),
			]));
		});
	}

	function loadModelsAndDeployments() {
		var deps = fetchAll("/deployment/all?limit=100").then(function (deps) {
			state.deployments = deps;
			renderDeployments(deps);
			return deps;
		});
		var models = fetchAll("/model/all?limit=100").then(function (models) {
			state.models = models;
			return mapLimit(models.slice(0, MAX_FILE_LOOKUPS), 6, function (m) {
				return api("GET", "/model/" + encodeURIComponent(m.modelid) + "/files").then(function (r) { return r.data; });
			}).then(function (files) {
				renderModels(models, files);
				return fillDriftSelect(models).then(function () { return models; });
			});
		});
		return Promise.all([deps.catch(showError), models.catch(showError)]);
	}

	// ---- operations and explanations ----

	function isRow(v) {
		return Array.isArray(v) ? v.every(function (x) { return x === null || typeof x !== "object"; })
			: v !== null && typeof v === "object";
	}

	// The first input row an operation recorded, or null.
	function firstRow(data) {
		if (Array.isArray(data) && data.length && isRow(data[0])) return data[0];
		if (isRow(data) && (Array.isArray(data) ? data.length : Object.keys(data).length)) return data;
		return null;
	}

	function rowCount(data) {
		if (Array.isArray(data) && data.length && isRow(data[0])) return data.length;
		return isRow(data) ? 1 : 0;
	}

	function resultText(result) {
		if (result && !Array.isArray(result) && typeof result === "object" && "error" in result) {
			return "error: " + result.error;
		}
		return short(JSON.stringify(result), 80);
	}

	function loadOperations() {
		var owners = [];
		state.deployments.slice().sort(function (a, b) {
			return String(b.updated_at).localeCompare(String(a.updated_at));
		}).forEach(function (d) {
			if (d.ownerid && owners.indexOf(d.ownerid) < 0) owners.push(d.ownerid);
		});
		owners = owners.slice(0, MAX_OWNERS);
		return mapLimit(owners, 4, function (o) {
			return api("GET", "/deployment/get/opos/" + encodeURIComponent(o) + "?limit=" + OPS_PER_OWNER)
				.then(function (r) { return r.data || []; });
		}).then(function (lists) {
			var ops = [];
			lists.forEach(function (l) {
				if (l instanceof ApiError) showError(l);
				else ops = ops.concat(l);
			});
			ops.sort(function (a, b) { return String(b.timestamp).localeCompare(String(a.timestamp)); });
			renderOperations(ops.slice(0, OPS_SHOWN));
		});
	}

	function renderOperations(ops) {
		var tbody = $("operations-body");
		tbody.textContent = "";
		if (!ops.length) return emptyRow(tbody, 6, "no operations recorded for these owners");
		var deployed = {};
		state.deployments.forEach(function (d) { if (d.status === "deployed") deployed[d.deployment_id] = true; });
		ops.forEach(function (op) {
			var row = firstRow(op.data);
			var button = el("button", { type: "button", text: "Explain", "data-explain": String(op.operationid) });
			if (!row || !deployed[op.deploymentid]) {
				button.disabled = true;
				button.title = !row ? "the operation holds no input row" : "the deployment is not deployed";
			}
			button.addEventListener("click", function () { explain(op, row); });
			tbody.appendChild(el("tr", { "data-operation-id": String(op.operationid) }, [
				el("td", { text: when(op.timestamp) }),
				el("td", { class: "mono", text: op.deploymentid }),
				el("td", { text: op.ownerid }),
				el("td", { text: String(rowCount(op.data)) }),
				el("td", { class: "mono", text: resultText(op.result) }),
				el("td", {}, [button]),
			]));
		});
	}

	function first(v) { return Array.isArray(v) ? v[0] : v; }

	function explain(op, row) {
		$("shap-info").textContent = "asking deployment " + op.deploymentid + " for an explanation…";
		return api("POST", "/deployment/" + encodeURIComponent(op.deploymentid) + "/predict", { data: row, explain: true })
			.then(function (r) { drawShap(op, r.data || {}); }, function (err) {
				$("shap-info").textContent = "no explanation: " + err.message;
			});
	}

	function drawShap(op, answer) {
		var ex = answer.explanation || {};
		var names = ex.feature_names || [];
		var values = ex.feature_importance || [];
		if (Array.isArray(values[0])) values = values[0];    // a batch: its first row
		var order = names.map(function (_, i) { return i; }).sort(function (a, b) {
			return Math.abs(values[b]) - Math.abs(values[a]);
		});
		var base = first(ex.base_value), out = first(ex.output_value);
		$("shap-info").textContent = "Operation " + op.operationid + " on " + op.deploymentid + ": prediction " +
			JSON.stringify(first(answer.prediction)) + "; " + (first(ex.output) || "output") + " " + out +
			" = base value " + base + " + the attributions below (" + (ex.algorithm || ex.method || "shap") + ")." +
			(answer.operationid ? " Recorded as operation " + answer.operationid + "." : "");
		var canvas = $("shap-chart");
		canvas.setAttribute("data-operation-id", String(op.operationid));
		if (charts.shap) charts.shap.destroy();
		charts.shap = new Chart(canvas, {
			type: "bar",
			data: {
				labels: order.map(function (i) { return names[i]; }),
				datasets: [{
					label: "SHAP value",
					data: order.map(function (i) { return values[i]; }),
					backgroundColor: order.map(function (i) { return values[i] >= 0 ? "#d6455d" : "#1e88e5"; }),
				}],
			},
			options: {
				indexAxis: "y",
				animation: false,
				responsive: true,
				maintainAspectRatio: false,
				plugins: { legend: { display: false }, title: { display: true, text: "Contribution of each feature to " + (first(ex.output) || "the output") } },
				scales: { x: { title: { display: true, text: "SHAP value" } } },
			},
		});
	}

	// ---- drift ----

	function fillDriftSelect(models) {
		var select = $("drift-model");
		var want = state.driftModel || new URLSearchParams(window.location.search).get("model");
		if (!want || !models.some(function (m) { return m.modelid === want; })) {
			var on = models.filter(driftOn);
			want = (on[0] || models[0] || {}).modelid || null;
		}
		select.textContent = "";
		models.forEach(function (m) {
			select.appendChild(el("option", { value: m.modelid, text: m.modelname + " (" + m.modelid.slice(0, 8) + ")" + (driftOn(m) ? "" : ", drift detection off") }));
		});
		if (want) select.value = want;
		state.driftModel = want;
		return loadDrift();
	}

	function loadDrift() {
		var id = state.driftModel;
		var box = $("drift-plots");
		if (!id) {
			box.textContent = "";
			$("drift-info").textContent = "no models";
			return Promise.resolve();
		}
		return api("GET", "/model/" + encodeURIComponent(id) + "/drift?limit=" + MAX_ROWS).then(function (r) {
			if (id !== state.driftModel) return;
			drawDrift(r.data || []);
		}, function (err) { $("drift-info").textContent = err.message; });
	}

	function drawDrift(results) {
		var box = $("drift-plots");
		charts.drift.forEach(function (c) { c.destroy(); });
		charts.drift = [];
		box.textContent = "";
		var byFeature = {};
		results.forEach(function (r) { (byFeature[r.feature] = byFeature[r.feature] || []).push(r); });
		var features = Object.keys(byFeature).sort();
		var runs = {};
		results.forEach(function (r) { runs[r.run_id] = true; });
		$("drift-info").textContent = features.length ? Object.keys(runs).length + " run(s), " + features.length + " feature(s)"
			: "no drift results for this model yet (POST /model/{id}/drift/run, or wait for the scheduled check)";
		features.forEach(function (f) {
			var rows = byFeature[f].slice().sort(function (a, b) { return a.id - b.id; });
			var last = rows[rows.length - 1];
			var canvas = el("canvas", { "data-feature": f, "aria-label": "drift of " + f, role: "img" });
			box.appendChild(el("div", { class: "chart-box", "data-feature": f }, [canvas]));
			charts.drift.push(new Chart(canvas, {
				type: "line",
				data: {
					labels: rows.map(function (r) { return when(r.timestamp); }),
					datasets: [{
						label: "p-value",
						data: rows.map(function (r) { return r.p_value; }),
						borderColor: "#3f51b5",
						pointRadius: 4,
						pointBackgroundColor: rows.map(function (r) { return r.drift_detected ? "#c62828" : "#3f51b5"; }),
						spanGaps: true,
					}],
				},
				options: {
					animation: false,
					responsive: true,
					maintainAspectRatio: false,
					scales: { y: { min: 0, max: 1, title: { display: true, text: "p-value" } }, x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 4 } } },
					plugins: {
						legend: { display: false },
						title: { display: true, text: f + " (" + last.type + ", " + last.method + ")" + (last.drift_detected ? ": drift" : "") },
						tooltip: {
							callbacks: {
								afterLabel: function (ctx) {
									var r = rows[ctx.dataIndex];
									return "statistic " + r.statistic + (r.drift_detected ? ", drift detected" : "") +
										"\nrows: training " + r.n_train + ", inference " + r.n_infer + (r.note ? "\n" + r.note : "");
								},
							},
						},
					},
				},
			}));
		});
	}

	// ---- refresh ----

	function refresh() {
		if (state.busy) return Promise.resolve();
		state.busy = true;
		document.body.setAttribute("data-state", "loading");
		$("errors").textContent = "";
		return Promise.all([loadHealth(), loadModelsAndDeployments().then(loadOperations).catch(showError)])
			.then(function () {
				$("updated").textContent = "updated " + new Date().toLocaleTimeString();
			})
			.catch(showError)
			.then(function () {
				state.busy = false;
				document.body.setAttribute("data-state", "ready");
			});
	}

	var timer = null;

	function start() {
		Chart.defaults.font.family = "system-ui, sans-serif";
		showTokenState();
		$("token-form").addEventListener("submit", function (ev) {
			ev.preventDefault();
			setToken($("token").value.trim());
			$("token").value = "";
			refresh();
		});
		$("token-clear").addEventListener("click", function () { setToken(""); refresh(); });
		$("refresh").addEventListener("click", refresh);
		$("auto").addEventListener("change", function () {
			if (timer) clearInterval(timer);
			timer = this.checked ? setInterval(refresh, REFRESH_MS) : null;
		});
		$("drift-model").addEventListener("change", function () {
			state.driftModel = this.value;
			document.body.setAttribute("data-state", "loading");
			loadDrift().then(function () { document.body.setAttribute("data-state", "ready"); });
		});
		refresh();
	}

	if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
	else start();
})();
