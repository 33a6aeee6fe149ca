// Shared by the browser tests: a real labgwd (through launch.py and the
// integration harness), Debian's Chromium through playwright-core, REST calls
// and screenshots under build/browser-artifacts/.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
export const ARTIFACTS = resolve(REPO, process.env.LABGW_BUILD || 'build', 'browser-artifacts');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PYTHON = process.env.PYTHON || '/usr/bin/python3';

/** Start labgwd with sim radios; resolves with {port, key, pid, base, stop()}. */
export function startDaemon({ rate = 100, devices = 40, mqtt = 'spawn', lorawan = false } = {}) {
	const proc = spawn(
		PYTHON,
		[join(here, 'launch.py'), '--rate', String(rate), '--devices', String(devices), '--mqtt', mqtt,
			...(lorawan ? ['--lorawan'] : [])],
		{ stdio: ['pipe', 'pipe', 'inherit'], env: process.env }
	);
	return new Promise((ok, fail) => {
		const timer = setTimeout(() => fail(new Error('labgwd did not start in 30 s')), 30000);
		proc.on('exit', (code) => fail(new Error(`launch.py exited with ${code} before ready`)));
		createInterface({ input: proc.stdout }).once('line', (line) => {
			clearTimeout(timer);
			const info = JSON.parse(line);
			info.base = `http://127.0.0.1:${info.port}`;
			info.stop = () =>
				new Promise((done) => {
					if (proc.exitCode !== null) return done(proc.exitCode);
					proc.removeAllListeners('exit');
					proc.on('exit', (code) => done(code));
					proc.stdin.end(); // launch.py stops labgwd by its PID
				});
			ok(info);
		});
	});
}

export async function launchBrowser() {
	return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/** A page that fails the test on console errors and CSP violations. */
export async function newPage(browser, viewport = { width: 1366, height: 900 }) {
	const context = await browser.newContext({ viewport, reducedMotion: 'reduce' });
	const page = await context.newPage();
	page.problems = [];
	page.on('console', (m) => {
		if (m.type() === 'error') page.problems.push(m.text());
	});
	page.on('pageerror', (e) => page.problems.push(String(e)));
	return page;
}

export async function screenshot(page, name) {
	mkdirSync(ARTIFACTS, { recursive: true });
	await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** A REST call with a key: [status, parsed JSON]. */
export async function api(d, method, path, body, key = d.key) {
	const init = { method, headers: { Authorization: `Bearer ${key}` } };
	if (body !== undefined) {
		init.headers['Content-Type'] = 'application/json';
		init.body = JSON.stringify(body);
	}
	const res = await fetch(d.base + path, init);
	const text = await res.text();
	return [res.status, text ? JSON.parse(text) : null];
}

/** In the page (same origin as the daemon): open a LabgwClient with `key`
 * and report how it ends up: 'open' or the error code that closed it. */
export async function tryKeyOnWebSocket(page, key) {
	return page.evaluate(async (k) => {
		const { LabgwClient } = await import('/lib/labgw.js');
		return new Promise((done) => {
			const c = new LabgwClient({
				key: k,
				onState(state) {
					if (state === 'open') {
						c.close();
						done('open');
					}
				},
				onError(err) {
					c.close();
					done(err.code);
				},
			});
			c.connect();
		});
	}, key);
}

/** Text on the page whose contrast with its background is below WCAG AA
 * (4.5:1; 3:1 for large text): [{text, ratio, fg, bg}]. Backgrounds are the
 * nearest opaque ones up the tree. */
export async function contrastFailures(page) {
	return page.evaluate(() => {
		const rgb = (s) => (s.match(/[\d.]+/g) || []).map(Number);
		const lum = ([r, g, b]) => {
			const f = (c) => ((c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
			return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
		};
		const bgOf = (e) => {
			for (; e; e = e.parentElement) {
				const c = rgb(getComputedStyle(e).backgroundColor);
				if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
			}
			return [255, 255, 255];
		};
		const out = [];
		const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
		for (let n = walker.nextNode(); n; n = walker.nextNode()) {
			const e = n.parentElement;
			if (!n.textContent.trim() || !e || !e.checkVisibility?.() || e.closest('[hidden],dialog:not([open]),option,.visually-hidden')) continue;
			const cs = getComputedStyle(e);
			const fg = rgb(cs.color).slice(0, 3);
			const bg = bgOf(e);
			const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
			const ratio = (a + 0.05) / (b + 0.05);
			const size = parseFloat(cs.fontSize);
			const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
			if (ratio < (large ? 3 : 4.5)) out.push({ text: n.textContent.trim().slice(0, 40), ratio: ratio.toFixed(2), fg: cs.color, bg: `rgb(${bg})` });
		}
		return out;
	});
}
