// The API documentation page /docs/ and the JavaScript quick start, against
// the real daemon: the page renders the gateway's AsyncAPI and OpenAPI
// documents with no console error (nor CSP violation), lists every topic and
// every error code, shows an example of every radio; its YAML reader reads
// docs/asyncapi.yaml as PyYAML does; the quick start script of
// docs/quickstart.md (served as /docs/quickstart.js) lists a claimed device's
// frames.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, api, contrastFailures, launchBrowser, newPage, screenshot, startDaemon } from './lib.js';
import { parseYaml } from '../../web/docs/yaml.js';

const PYTHON = process.env.PYTHON || '/usr/bin/python3';
const asyncText = readFileSync(join(REPO, 'docs', 'asyncapi.yaml'), 'utf8');
const openapi = JSON.parse(readFileSync(join(REPO, 'docs', 'openapi.json'), 'utf8'));
// the reference reading of the YAML: PyYAML's
const asyncapi = JSON.parse(
	execFileSync(PYTHON, ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: asyncText })
);

let d, browser;

before(async () => {
	[d, browser] = await Promise.all([startDaemon({ rate: 100, devices: 4, mqtt: 'off' }), launchBrowser()]);
});

after(async () => {
	await browser?.close();
	if (d) assert.equal(await d.stop(), 0, 'labgwd exited cleanly');
});

test('the page reads docs/asyncapi.yaml as PyYAML does', () => {
	assert.deepEqual(parseYaml(asyncText), asyncapi);
	assert.throws(() => parseYaml('a: 1\n  b: 2\n'), /unexpected indentation/);
});

test('/docs/ lists every topic, WebSocket message, error code and an example of every radio', async () => {
	const page = await newPage(browser);
	await page.goto(`${d.base}/docs/`);
	await page.waitForFunction(() => document.body.dataset.loaded);
	assert.equal(await page.getAttribute('body', 'data-loaded'), 'true', await page.textContent('#load-status'));
	const topics = await page.$$eval('#topic-table code.topic', (els) => els.map((e) => e.textContent));
	const addresses = Object.values(asyncapi.channels)
		.map((c) => c.address)
		.filter((a) => a.startsWith('labgw/'));
	assert.deepEqual(topics.sort(), addresses.sort());
	const codes = await page.$$eval('#error-table tbody tr', (rows) => rows.map((r) => r.cells[0].textContent));
	assert.deepEqual(codes.sort(), [...openapi.components.schemas.ErrorCode.enum].sort());
	for (const code of codes) {
		const fix = await page.textContent(`#error-${code} td:last-child`);
		assert.ok(fix.trim().length > 10, `a fix for ${code}`);
	}
	const techs = await page.$$eval('#frame-examples h3', (els) => els.map((e) => e.dataset.tech));
	assert.deepEqual(techs.sort(), ['ble', 'cellular', 'lorawan', 'wlan']);
	const ops = await page.$$eval('#ws-messages li', (els) => els.map((e) => e.dataset.op));
	assert.deepEqual(ops.sort(), ['auth', 'frame', 'gap', 'ping', 'pub', 'res', 'sub', 'unsub']);
	const rest = await page.$$eval('#rest-table tbody tr', (rows) => rows.length);
	const ops2 = Object.values(openapi.paths).flatMap((item) => ['get', 'post', 'put', 'patch', 'delete'].filter((m) => item[m]));
	assert.equal(rest, ops2.length);
	const quotas = await page.$$eval('#quota-table code', (els) => els.map((e) => e.textContent));
	assert.deepEqual(quotas, Object.keys(openapi.components.schemas.Quotas.properties));
	assert.match(await page.textContent('#capture'), /pcapng/);
	assert.deepEqual(await contrastFailures(page), []);
	await screenshot(page, 'docs');
	assert.deepEqual(page.problems, [], 'no console errors');
});

test('the JavaScript quick start lists the frames of a claimed device', async () => {
	const page = await newPage(browser);
	// a device the sim radio hears, from the staff view
	await page.goto(`${d.base}/docs/`);
	const dev = await page.evaluate(async (key) => {
		const { LabgwClient } = await import('/lib/labgw.js');
		return new Promise((ok) => {
			const c = new LabgwClient({
				key,
				onFrame(f) {
					if (f.type === 'rx.lorawan.uplink') {
						c.close();
						ok(f.dev.id);
					}
				},
			});
			c.connect();
			c.subscribe('labgw/v1/adm/+/rx/lorawan/#');
		});
	}, d.key);
	let [st] = await api(d, 'POST', '/api/v1/sandboxes', { id: 'team1' });
	assert.equal(st, 201);
	[st] = await api(d, 'POST', '/api/v1/sandboxes/team1/claims', { tech: 'lorawan', dev });
	assert.equal(st, 201);
	const [, k] = await api(d, 'POST', '/api/v1/sandboxes/team1/keys', { rights: ['rx'] });
	const page2 = await newPage(browser);
	await page2.goto(`${d.base}/docs/quickstart.html#sbx=team1&key=${encodeURIComponent(k.key)}`);
	await page2.waitForFunction(() => document.querySelectorAll('#frames li').length >= 3, null, { timeout: 15000 });
	assert.equal(await page2.textContent('#status'), 'subscribed');
	const items = await page2.$$eval('#frames li', (els) => els.map((e) => [e.textContent, e.dataset.topic]));
	for (const [text, topic] of items) {
		assert.match(text, new RegExp(`rx\\.lorawan\\.\\w+ ${dev}$`));
		assert.ok(topic.startsWith('labgw/v1/sbx/team1/rx/lorawan/'), topic);
	}
	await screenshot(page2, 'docs-quickstart');
	assert.deepEqual(page.problems, []);
	assert.deepEqual(page2.problems, []);
});
