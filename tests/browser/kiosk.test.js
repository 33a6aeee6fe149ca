// The public kiosk page against the real daemon with sim radios: numbers that
// change, both languages, both orientations, a calm reconnect, and never an
// identifier of a sim device in its DOM or in anything it receives.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { contrastFailures, launchBrowser, newPage, screenshot, startDaemon } from './lib.js';

let d, browser;

before(async () => {
	[d, browser] = await Promise.all([startDaemon({ rate: 150, devices: 40, mqtt: 'off' }), launchBrowser()]);
});

after(async () => {
	await browser?.close();
	if (d) assert.equal(await d.stop(), 0, 'labgwd exited cleanly');
});

const NUMBERS = '.tech .devices, .tech .rate, .tech .airtime';

async function numbers(page) {
	return page.$$eval(NUMBERS, (els) => els.map((e) => e.textContent).join('|'));
}

// every tech shows a device count once the stats came
async function waitForStats(page) {
	await page.waitForFunction(
		() => [...document.querySelectorAll('.tech .devices')].every((e) => /\d/.test(e.textContent)),
		null,
		{ timeout: 15000 }
	);
}

for (const [lang, viewport, words] of [
	['de', { width: 1920, height: 1080 }, ['Geräte in der Nähe', 'Funksprüche pro Minute', 'Mobilfunk']],
	['en', { width: 1080, height: 1920 }, ['Devices nearby', 'Messages per minute', 'Cellular']],
	['en', { width: 1920, height: 1080 }, ['Devices nearby']],
	['de', { width: 1080, height: 1920 }, ['Geräte in der Nähe']],
]) {
	const orient = viewport.width > viewport.height ? 'landscape' : 'portrait';
	test(`kiosk ${lang} ${orient}: live numbers that change`, async () => {
		const page = await newPage(browser, viewport);
		await page.goto(`${d.base}/kiosk/${lang === 'en' ? '?lang=en' : ''}`);
		assert.equal(await page.getAttribute('html', 'lang'), lang);
		await waitForStats(page);
		await page.waitForFunction(() => document.body.dataset.conn === 'open');
		const text = await page.textContent('body');
		for (const w of words) assert.ok(text.includes(w), `"${w}" on the ${lang} page`);
		// the four cards fit the screen: nothing scrolls
		const fits = await page.evaluate(
			() => document.documentElement.scrollHeight <= innerHeight && document.documentElement.scrollWidth <= innerWidth
		);
		assert.ok(fits, `the ${orient} page fits ${viewport.width}×${viewport.height}`);
		// large type: the numbers are at least 40 px high
		const size = await page.$eval('.tech .devices', (e) => parseFloat(getComputedStyle(e).fontSize));
		assert.ok(size >= 40, `numbers are ${size}px`);
		// charts drawn by Chart.js
		await page.waitForFunction(() => document.querySelectorAll('.tech canvas[height]').length === 4);
		const first = await numbers(page);
		await page.waitForFunction(
			([sel, before]) =>
				[...document.querySelectorAll(sel)].map((e) => e.textContent).join('|') !== before,
			[NUMBERS, first],
			{ timeout: 15000 }
		);
		await screenshot(page, `kiosk-${lang}-${orient}`);
		assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
		assert.deepEqual(page.problems, []);
		await page.context().close();
	});
}

test('kiosk: keyboard reaches the language switch, with a visible focus', async () => {
	const page = await newPage(browser);
	await page.goto(`${d.base}/kiosk/`);
	await page.keyboard.press('Tab');
	const focused = await page.evaluate(() => ({
		id: document.activeElement.id,
		outline: getComputedStyle(document.activeElement).outlineStyle,
	}));
	assert.equal(focused.id, 'lang');
	assert.notEqual(focused.outline, 'none');
	await Promise.all([page.waitForURL(/lang=en/), page.keyboard.press('Enter')]);
	assert.equal(await page.getAttribute('html', 'lang'), 'en');
	await page.context().close();
});

test('kiosk: no identifier of a sim device in its DOM or its messages', async () => {
	// the raw device ids, as staff see them
	const staff = await newPage(browser);
	await staff.goto(`${d.base}/lib/README.md`);
	const idsP = staff.evaluate(async (key) => {
		const { LabgwClient } = await import('/lib/labgw.js');
		const ids = new Set();
		return new Promise((done) => {
			const c = new LabgwClient({
				key,
				onFrame(f) {
					for (const v of [f.dev?.id, f.data?.addr, f.data?.mac, f.data?.dev_addr, f.data?.dev_eui, f.data?.from])
						if (typeof v === 'string' && v.length >= 6) ids.add(v.toLowerCase());
				},
			});
			c.subscribe('labgw/v1/adm/+/rx/#');
			c.connect();
			setTimeout(() => {
				c.close();
				done([...ids]);
			}, 6000);
		});
	}, d.key);

	const page = await newPage(browser);
	const received = [];
	page.on('websocket', (ws) => ws.on('framereceived', (f) => received.push(String(f.payload))));
	await page.goto(`${d.base}/kiosk/`);
	await waitForStats(page);
	const ids = await idsP;
	// at least two stats messages, after all the ids were gathered
	const n = received.length;
	await new Promise((r) => {
		const t = setInterval(() => {
			if (received.filter((m) => m.includes('"stats"')).length >= 2 && received.length > n) {
				clearInterval(t);
				r();
			}
		}, 100);
	});
	assert.ok(ids.length >= 20, `staff saw ${ids.length} device ids`);
	const dom = (await page.content()).toLowerCase();
	const wire = received.join('\n').toLowerCase();
	for (const id of ids) {
		assert.ok(!dom.includes(id), `kiosk DOM holds ${id}`);
		assert.ok(!wire.includes(id), `kiosk received ${id}`);
	}
	// and it asked for the public tree only
	assert.ok(received.some((m) => m.includes('"anonymous":true')));
	await staff.context().close();
	await page.context().close();
});

test('kiosk: reconnects by itself, calmly, when the gateway goes away', async () => {
	// a daemon of its own, to stop and start again on another port is not
	// the same page: stop the server under the page's feet instead and
	// check the calm state, then the page keeps retrying with backoff
	const d2 = await startDaemon({ rate: 50, devices: 10, mqtt: 'off' });
	const page = await newPage(browser);
	const sockets = [];
	page.on('websocket', (ws) => sockets.push(Date.now()));
	await page.goto(`${d2.base}/kiosk/`);
	await waitForStats(page);
	assert.equal(await d2.stop(), 0);
	await page.waitForFunction(() => document.body.dataset.conn === 'reconnecting');
	const status = await page.textContent('#status');
	assert.match(status, /Verbindung wird wiederhergestellt/);
	// the numbers stay on screen, dimmed, and nothing shouts
	assert.match(await page.textContent('.tech .devices'), /\d/);
	assert.equal(await page.$$eval('[role=alert]', (e) => e.length), 0);
	await screenshot(page, 'kiosk-reconnecting');
	// retries, spaced out (backoff): at least two more attempts
	const t0 = sockets.length;
	await new Promise((r) => {
		const t = setInterval(() => {
			if (sockets.length >= t0 + 2) {
				clearInterval(t);
				r();
			}
		}, 100);
	});
	const gaps = sockets.slice(-2)[1] - sockets.slice(-2)[0];
	assert.ok(gaps >= 400, `retries ${gaps} ms apart`);
	await page.context().close();
});
