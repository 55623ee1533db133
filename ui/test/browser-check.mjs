// Drive the browser pages of a running instance in headless Chromium and
// print what a person would see, as one JSON object (t/0960-ui.t asserts
// on it):
//
//   node browser-check.mjs '{"base": "http://127.0.0.1:8090",
//       "shots": "/path/for/screenshots", "chromium": "/usr/bin/chromium",
//       "deployment": "dep-1", "model": "<modelid>", "drift_model": "<modelid>",
//       "operation": "<operationid>"}'
//
// Every page is loaded in a fresh profile with no network beyond the
// instance; requests to any other origin are recorded (and refused).
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const cfg = JSON.parse(process.argv[2] || "{}");
const base = cfg.base.replace(/\/$/, "");
const origin = new URL(base).origin;
const shots = cfg.shots;
const TIMEOUT = 90000;
mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), "mlc-chromium."));
const browser = await puppeteer.launch({
	executablePath: cfg.chromium || "/usr/bin/chromium",
	headless: true,
	userDataDir: profile,
	args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
	protocolTimeout: TIMEOUT * 2,
});

const out = { browser: await browser.version() };

// A page that records console errors, uncaught exceptions, failed
// requests, requests to other origins and the Authorization headers sent.
async function openPage() {
	const page = await browser.newPage();
	page.setDefaultTimeout(TIMEOUT);
	await page.setViewport({ width: 1400, height: 1000 });
	const log = { consoleErrors: [], pageErrors: [], failed: [], foreign: [], requests: [], auth: [] };
	page.on("console", (m) => { if (m.type() === "error") log.consoleErrors.push(m.text() + " @ " + (m.location()?.url || "")); });
	page.on("pageerror", (e) => log.pageErrors.push(String(e && e.message ? e.message : e)));
	page.on("requestfailed", (r) => log.failed.push(r.url() + ": " + (r.failure()?.errorText || "")));
	await page.setRequestInterception(true);
	page.on("request", (r) => {
		const url = r.url();
		if (url.startsWith("data:") || url.startsWith("blob:")) return r.continue();
		log.requests.push(r.method() + " " + url);
		const h = r.headers();
		if (h.authorization) log.auth.push({ url: url.replace(origin, ""), authorization: h.authorization });
		if (new URL(url).origin !== origin) {
			log.foreign.push(url);
			return r.abort("blockedbyclient");
		}
		return r.continue();
	});
	return { page, log };
}

async function shot(page, name) {
	const path = join(shots, name);
	await page.screenshot({ path, fullPage: true });
	return path;
}

function finish(log) {
	const { requests, ...rest } = log;
	return { ...rest, requestCount: requests.length };
}

// ---- /docs: Swagger UI ----
try {
	const { page, log } = await openPage();
	const resp = await page.goto(base + "/docs", { waitUntil: "networkidle0" });
	await page.waitForSelector(".opblock-summary-path", { timeout: TIMEOUT });
	const r = { status: resp.status(), contentType: resp.headers()["content-type"], csp: resp.headers()["content-security-policy"] || null };
	r.title = await page.title();
	r.paths = await page.$$eval(".opblock-summary-path", (els) => els.map((e) => e.getAttribute("data-path") || e.textContent.trim()));
	r.authorizeButton = (await page.$(".btn.authorize")) !== null;
	// Authorize with a bearer token, then "Try it out" on GET /health.
	try {
		await page.click(".btn.authorize");
		await page.waitForSelector(".modal-ux input", { timeout: 20000 });
		await page.type(".modal-ux input", "ui-test-token");
		await page.click(".modal-ux .auth-btn-wrapper .authorize");
		await page.click(".modal-ux .btn-done, .modal-ux .close-modal");
		r.authorized = true;
	} catch (e) {
		r.authorized = "failed: " + e.message;
	}
	const health = await page.$(".opblock-summary-path[data-path='/health']");
	if (health) {
		await health.click();
		await page.waitForSelector(".try-out__btn", { timeout: 20000 });
		await page.click(".try-out__btn");
		await page.waitForSelector(".execute", { timeout: 20000 });
		await page.click(".execute");
		await page.waitForSelector(".live-responses-table tbody .response-col_status", { timeout: 30000 });
		r.tryItOutStatus = await page.$eval(".live-responses-table tbody .response-col_status", (e) => e.textContent.trim());
		r.tryItOutBody = await page.$eval(".live-responses-table .response-col_description pre, .live-responses-table .highlight-code", (e) => e.textContent.trim()).catch(() => null);
	}
	r.screenshot = await shot(page, "docs.png");
	out.docs = { ...r, ...finish(log) };
	await page.close();
} catch (e) {
	out.docs = { error: String(e && e.stack ? e.stack : e) };
}

// ---- /redoc ----
try {
	const { page, log } = await openPage();
	const resp = await page.goto(base + "/redoc", { waitUntil: "networkidle0" });
	await page.waitForSelector("[data-section-id*='operation/']", { timeout: TIMEOUT });
	const r = { status: resp.status(), title: await page.title() };
	r.operations = await page.$$eval("[data-section-id*='operation/']", (els) => els.length);
	r.text = await page.evaluate(() => document.body.innerText.slice(0, 200000));
	r.hasModelAdd = r.text.includes("/model/add");
	r.heading = await page.$eval("h1", (e) => e.textContent.trim()).catch(() => null);
	delete r.text;
	r.screenshot = await shot(page, "redoc.png");
	out.redoc = { ...r, ...finish(log) };
	await page.close();
} catch (e) {
	out.redoc = { error: String(e && e.stack ? e.stack : e) };
}

// ---- /dashboard ----
async function chartOf(page, selector) {
	return page.$eval(selector, (c) => {
		const ch = window.Chart && window.Chart.getChart(c);
		if (!ch) return null;
		return { type: ch.config.type, labels: ch.data.labels, data: ch.data.datasets.map((d) => d.data) };
	}).catch(() => null);
}

async function ready(page) {
	await page.waitForSelector("body[data-state='ready']", { timeout: TIMEOUT });
}

try {
	const { page, log } = await openPage();
	const resp = await page.goto(base + "/dashboard", { waitUntil: "networkidle0" });
	await ready(page);
	const r = { status: resp.status(), title: await page.title() };
	r.health = await page.$eval("#health", (e) => e.textContent);
	r.deployments = await page.$$eval("#deployments-body tr[data-deployment-id]", (rows) => rows.map((tr) => ({
		id: tr.getAttribute("data-deployment-id"),
		cells: [...tr.children].map((td) => td.textContent),
	})));
	r.models = await page.$$eval("#models-body tr[data-model-id]", (rows) => rows.map((tr) => ({
		id: tr.getAttribute("data-model-id"),
		cells: [...tr.children].map((td) => td.textContent),
	})));
	r.operations = await page.$$eval("#operations-body tr[data-operation-id]", (rows) => rows.map((tr) => tr.getAttribute("data-operation-id")));
	r.errorsShown = await page.$$eval("#errors div", (els) => els.map((e) => e.textContent));

	if (cfg.drift_model) {
		await page.select("#drift-model", cfg.drift_model);
		await ready(page);
		await page.waitForFunction(() => document.querySelectorAll("#drift-plots canvas").length > 0, { timeout: TIMEOUT });
		r.driftInfo = await page.$eval("#drift-info", (e) => e.textContent);
		r.driftPlots = await page.$$eval("#drift-plots canvas", (cs) => cs.map((c) => {
			const ch = window.Chart && window.Chart.getChart(c);
			return { feature: c.getAttribute("data-feature"), points: ch ? ch.data.datasets[0].data.length : 0, type: ch ? ch.config.type : null };
		}));
	}
	if (cfg.operation) {
		const sel = `button[data-explain='${cfg.operation}']`;
		r.explainButton = (await page.$(sel)) !== null;
		if (r.explainButton) {
			r.explainDisabled = await page.$eval(sel, (b) => b.disabled);
			await page.click(sel);
			await page.waitForFunction(() => window.Chart && window.Chart.getChart(document.getElementById("shap-chart")), { timeout: TIMEOUT });
			r.shap = await chartOf(page, "#shap-chart");
			r.shapInfo = await page.$eval("#shap-info", (e) => e.textContent);
		}
	}
	r.screenshot = await shot(page, "dashboard.png");
	r.consoleErrorsBeforeToken = log.consoleErrors.slice();
	// The token field: kept in sessionStorage, sent as a bearer token.
	const before = log.auth.length;
	await page.type("#token", "dash-test-token");
	await page.click("#token-form button[type='submit']");
	await page.waitForFunction(() => document.body.getAttribute("data-state") === "ready", { timeout: TIMEOUT });
	await ready(page);
	r.tokenStored = await page.evaluate(() => window.sessionStorage.getItem("mlc.token"));
	r.tokenSent = log.auth.slice(before).map((a) => a.authorization);
	r.tokenRequests = log.auth.slice(before).map((a) => a.url);
	// The same tab's /docs: Swagger UI is authorized with that token already.
	const mark = log.auth.length;
	await page.goto(base + "/docs", { waitUntil: "networkidle0" });
	await page.waitForSelector(".opblock-summary-path[data-path='/health']", { timeout: TIMEOUT });
	await page.click(".opblock-summary-path[data-path='/health']");
	await page.waitForSelector(".try-out__btn", { timeout: 20000 });
	await page.click(".try-out__btn");
	await page.waitForSelector(".execute", { timeout: 20000 });
	await page.click(".execute");
	await page.waitForSelector(".live-responses-table tbody .response-col_status", { timeout: 30000 });
	r.docsWithStoredToken = log.auth.slice(mark).map((a) => a.url + " " + a.authorization);
	out.dashboard = { ...r, ...finish(log) };
	await page.close();
} catch (e) {
	out.dashboard = { error: String(e && e.stack ? e.stack : e) };
}

await browser.close();
rmSync(profile, { recursive: true, force: true });
console.log(JSON.stringify(out));
