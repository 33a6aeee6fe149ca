// The staff console against the real daemon with sim radios: sign-in, live
// frames in the inspector, sandboxes and keys (a revoked key then fails on
// the WebSocket), the emergency stop refusing a transmit, the audit log, and
// the inspector at 2,000 frames/s.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { api, contrastFailures, launchBrowser, newPage, screenshot, startDaemon, tryKeyOnWebSocket } from './lib.js';

let d, browser, page;

before(async () => {
	[d, browser] = await Promise.all([startDaemon({ rate: 100, devices: 40, lorawan: true }), launchBrowser()]);
	page = await newPage(browser, { width: 1440, height: 1000 });
	page.on('dialog', (dlg) => dlg.accept());
});

after(async () => {
	await browser?.close();
	if (d) assert.equal(await d.stop(), 0, 'labgwd exited cleanly');
});

test('console: a wrong key is refused, the staff key signs in', async () => {
	await page.goto(`${d.base}/console/`);
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast of the sign-in');
	const headers = (await page.request.get(`${d.base}/console/`)).headers();
	assert.match(headers['content-security-policy'], /script-src 'self'(;|$)/);
	assert.equal(await page.$$eval('script:not([src])', (s) => s.length), 0, 'no inline scripts');
	// keyboard only: the key field has the focus
	assert.equal(await page.evaluate(() => document.activeElement.id), 'key');
	await page.keyboard.type('nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
	await page.keyboard.press('Enter');
	await page.waitForSelector('#key-error:not([hidden])');
	assert.match(await page.textContent('#key-error'), /does not know this key/);
	page.problems.length = 0; // the browser logs the 401 of that attempt
	await page.fill('#key', d.key);
	await page.keyboard.press('Enter');
	await page.waitForSelector('#nav:not([hidden])');
	await page.waitForFunction(() => document.getElementById('conn').textContent === 'Live');
	// the key is in this tab's sessionStorage, and nowhere in cookies
	assert.equal(await page.evaluate(() => sessionStorage.getItem('labgw.staff_key')), d.key);
	assert.deepEqual(await page.context().cookies(), []);
	// overview: the sim radio up, frames counted, the MQTT link
	await page.waitForSelector('#radio-rows tr[data-radio="sim0"] .badge[data-state="up"]');
	await page.waitForFunction(() => Number(document.querySelector('#radio-rows tr[data-radio="sim0"] .num').textContent) > 0);
	await page.waitForFunction(() => document.getElementById('health').textContent.includes('connected'));
	await page.waitForSelector('#rate-chart[height]');
	// the lorawan radio's duty-cycle ledger: one meter per sub-band of its concentrator
	await page.waitForFunction(() => [...document.querySelectorAll('#duty p.duty')].some((p) => /^lora0 .*: .* of \d+ ms/.test(p.textContent)));
	assert.ok(await page.$('#duty p.duty meter, #duty p.duty progress'), 'a meter per sub-band');
	// a radio's nested details open from the keyboard, and stay open while the rows refresh
	await page.focus('#radio-rows tr[data-radio="lora0"] summary');
	await page.keyboard.press('Enter');
	await page.waitForFunction(() => document.querySelector('#radio-rows tr[data-radio="lora0"] details[open] pre')?.textContent.includes('duty_cycle'));
	const refreshed = await page.textContent('#rate-now');
	await page.waitForFunction((t) => document.getElementById('rate-now').textContent !== t, refreshed);
	assert.ok(await page.$('#radio-rows tr[data-radio="lora0"] details[open]'), 'still open after a refresh');
	await screenshot(page, 'console-overview');
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
	assert.deepEqual(page.problems, []);
});

test('console: frames arrive live in the inspector; filter, pause, detail', async () => {
	await page.click('#nav a[data-view="traffic"]');
	await page.waitForFunction(() => document.querySelectorAll('#list .vrow').length > 5);
	// live: the newest row changes
	const first = await page.textContent('#list .vrow .c-time');
	await page.waitForFunction((t) => document.querySelector('#list .vrow .c-time').textContent !== t, first);
	// filter by tech
	await page.selectOption('#f-tech', 'lorawan');
	await page.waitForFunction(() => {
		const techs = [...document.querySelectorAll('#list .vrow .c-tech')].map((e) => e.textContent);
		return techs.length > 0 && techs.every((t) => t === 'lorawan');
	});
	// keyboard: focus the list, arrow down selects, the detail shows decoded fields and hex
	await page.focus('#list');
	await page.keyboard.press('ArrowDown');
	await page.waitForSelector('#detail-body:not([hidden])');
	assert.match(await page.textContent('#detail-data'), /mtype/);
	assert.match(await page.textContent('#detail-hex'), /^0000 {2}[0-9a-f]{2} /);
	// pause: the list holds still
	await page.click('#pause');
	assert.equal(await page.getAttribute('#pause', 'aria-pressed'), 'true');
	await page.waitForFunction(() => document.getElementById('tr-status').textContent.endsWith('paused'));
	const held = await page.textContent('#list .vrow');
	const status = await page.textContent('#tr-status');
	await page.waitForFunction((s) => document.getElementById('tr-status').textContent !== s, status);
	assert.equal(await page.textContent('#list .vrow'), held);
	await screenshot(page, 'console-traffic');
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
	await page.click('#pause');
	await page.waitForFunction((h) => document.querySelector('#list .vrow').textContent !== h, held);
	await page.selectOption('#f-tech', '');
	assert.deepEqual(page.problems, []);
});

test('console: create a sandbox, issue a key, revoke it; the key then fails', async () => {
	await page.click('#nav a[data-view="sandboxes"]');
	await page.fill('#sb-id', 'web1');
	await page.fill('#sb-name', 'Web team');
	await page.click('#sb-create button[type=submit]');
	await page.waitForFunction(() => document.getElementById('sb-title').textContent.includes('web1'));
	const [, sbx] = await api(d, 'GET', '/api/v1/sandboxes/web1');
	assert.equal(sbx.name, 'Web team');
	// quotas
	await page.fill('#q-tx_per_day', '42');
	await page.click('#quota-form button[type=submit]');
	for (let i = 0; i < 50; i++) {
		const [, s] = await api(d, 'GET', '/api/v1/sandboxes/web1');
		if (s.quotas.tx_per_day === 42) break;
		await new Promise((r) => setTimeout(r, 100));
	}
	assert.equal((await api(d, 'GET', '/api/v1/sandboxes/web1'))[1].quotas.tx_per_day, 42);
	// a key: the secret shown once, with a copy button
	await page.check('#key-rights input[value="tx:lorawan"]');
	await page.click('#key-form button[type=submit]');
	await page.waitForSelector('#secret-box:not([hidden])');
	const secret = (await page.textContent('#secret')).trim();
	assert.match(secret, /^[a-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
	assert.equal(await page.evaluate(() => document.activeElement.id), 'copy');
	const keyId = secret.split('.')[0];
	await page.waitForSelector(`#keys tr[data-key-row="${keyId}"]`);
	assert.equal(await tryKeyOnWebSocket(page, secret), 'open');
	await screenshot(page, 'console-sandbox');
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
	// revoke (the confirmation is accepted by the dialog handler)
	await page.click(`#keys button[data-key="${keyId}"]`);
	await page.waitForFunction((id) => document.querySelector(`#keys tr[data-key-row="${id}"] .state-revoked`), keyId);
	assert.equal(await tryKeyOnWebSocket(page, secret), 'UNAUTHENTICATED');
	// a new secret is not on the page once another sandbox is opened
	assert.deepEqual(page.problems, []);
});

test('console: leases and claims with a timeline', async () => {
	await api(d, 'POST', '/api/v1/sandboxes', { id: 'txer' });
	await api(d, 'POST', '/api/v1/sandboxes/txer/claims', { tech: 'lorawan', dev: '26011bda' });
	const end = new Date(Date.now() + 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
	const [st] = await api(d, 'POST', '/api/v1/sandboxes/txer/leases', { resource: 'sim0:tx', start: 'now', end });
	assert.equal(st, 201);
	await page.click('#nav a[data-view="overview"]');
	await page.click('#nav a[data-view="sandboxes"]');
	await page.click('#sb-list button[data-sbx="txer"]');
	await page.waitForFunction(() => document.getElementById('claims').textContent.includes('26011bda'));
	await page.waitForSelector('#timeline .tl-row .bar.lease-active');
	assert.match(await page.textContent('#leases'), /sim0:tx/);
});

test('console: the emergency stop, confirmed, refuses a transmit', async () => {
	const [, k] = await api(d, 'POST', '/api/v1/sandboxes/txer/keys', { rights: ['tx:lorawan'] });
	const tx = { tech: 'lorawan', radio: 'sim0', dev: '26011bda', fport: 1, payload: 'AQID' };
	assert.equal((await api(d, 'POST', '/api/v1/sandboxes/txer/tx', tx, k.key))[0], 202);
	// cancelling the dialog changes nothing
	await page.click('#estop');
	await page.waitForSelector('#stop-dialog[open]');
	await page.keyboard.press('Escape');
	await page.waitForSelector('#stop-dialog', { state: 'hidden' });
	assert.equal((await api(d, 'GET', '/api/v1/gateway'))[1].stopped, false);
	await page.click('#estop');
	await page.waitForSelector('#stop-dialog[open]');
	await screenshot(page, 'console-stop-dialog');
	await page.click('#stop-confirm');
	await page.waitForSelector('#stopped-banner:not([hidden])');
	const [status, problem] = await api(d, 'POST', '/api/v1/sandboxes/txer/tx', tx, k.key);
	assert.equal(status, 503);
	assert.equal(problem.code, 'RADIO_UNAVAILABLE');
	await screenshot(page, 'console-stopped');
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
	await page.click('#lift');
	await page.waitForSelector('#stopped-banner[hidden]', { state: 'attached' });
	assert.equal((await api(d, 'POST', '/api/v1/sandboxes/txer/tx', tx, k.key))[0], 202);
});

test('console: the audit log shows what staff did, filtered', async () => {
	await page.click('#nav a[data-view="audit"]');
	await page.waitForFunction(() => document.getElementById('audit').textContent.includes('stop.on'));
	await page.fill('#a-sbx', 'web1');
	await page.click('#audit-form button[type=submit]');
	await page.waitForFunction(() => {
		const rows = [...document.querySelectorAll('#audit tr')];
		return rows.length > 0 && rows.every((r) => r.children[3]?.textContent === 'web1');
	});
	assert.match(await page.textContent('#audit'), /key\.revoke|key\.delete|key\./);
	await screenshot(page, 'console-audit');
	assert.deepEqual(await contrastFailures(page), [], 'WCAG AA contrast');
	assert.deepEqual(page.problems, []);
});

test('console: the inspector keeps up at 2,000 frames/s', async () => {
	const fast = await startDaemon({ rate: 2000, devices: 200, mqtt: 'off' });
	const p = await newPage(browser, { width: 1440, height: 1000 });
	try {
		await p.goto(`${fast.base}/console/#traffic`);
		await p.fill('#key', fast.key);
		await p.keyboard.press('Enter');
		await p.waitForFunction(() => document.querySelectorAll('#list .vrow').length > 5);
		// measure: the longest pause between animation frames over 4 s
		const r = await p.evaluate(
			() =>
				new Promise((done) => {
					let last = performance.now();
					let worst = 0;
					const t0 = last;
					const step = (now) => {
						worst = Math.max(worst, now - last);
						last = now;
						if (now - t0 < 4000) requestAnimationFrame(step);
						else
							done({
								worst,
								rows: document.querySelectorAll('#list .vrow').length,
								status: document.getElementById('tr-status').textContent,
							});
					};
					requestAnimationFrame(step);
				})
		);
		const received = Number(r.status.match(/^(\d+) frames received/)[1]);
		assert.ok(received > 4000, `received ${received} frames`);
		assert.ok(r.rows < 80, `${r.rows} rows in the DOM (virtualised)`);
		assert.ok(r.worst < 1000, `longest frame ${r.worst.toFixed(0)} ms`);
		const kept = await p.evaluate(() => document.getElementById('list-spacer').offsetHeight / 28);
		assert.ok(kept <= 5000, `${kept} frames kept`);
		// still responsive to input
		const t = Date.now();
		await p.click('#pause');
		await p.waitForFunction(() => document.getElementById('pause').getAttribute('aria-pressed') === 'true');
		assert.ok(Date.now() - t < 2000);
		await screenshot(p, 'console-traffic-2000fps');
	} finally {
		await p.context().close();
		assert.equal(await fast.stop(), 0);
	}
});
