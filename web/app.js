// The live view at "/": radios, traffic per technology and the newest frames,
// through the shared client. Every text from the gateway goes into the page
// with textContent, never as markup.
import { LabgwClient } from './lib/labgw.js';

// staff see every frame raw; a sandbox key its own devices (rx) and the
// pseudonymised others (observe)
function topicsFor(identity) {
	if (!identity || !identity.sandbox) return ['labgw/v1/adm/+/rx/#', 'labgw/v1/gw/#'];
	const rights = identity.rights || [];
	const t = ['labgw/v1/gw/#'];
	if (rights.includes('rx')) t.push(`labgw/v1/sbx/${identity.sandbox}/rx/#`);
	if (rights.includes('observe')) t.push(`labgw/v1/sbx/${identity.sandbox}/obs/#`);
	return t;
}
const TECHS = ['ble', 'wlan', 'lorawan', 'cellular'];
const MAX_ROWS = 200;
const RATE_WINDOW_S = 5;
const PAINT_MS = 250; // the list is redrawn at most this often: readable, and cheap at high rates
const KEY_STORE = 'labgw.key'; // sessionStorage only: gone when the tab closes

const $ = (id) => document.getElementById(id);
const ui = {
	form: $('connect-form'),
	key: $('key'),
	keyError: $('key-error'),
	connect: $('connect'),
	disconnect: $('disconnect'),
	state: $('conn-state'),
	detail: $('conn-detail'),
	alert: $('alert'),
	gateways: $('gateways'),
	radios: $('radio-rows'),
	radiosEmpty: $('radios-empty'),
	counters: $('counters'),
	dropped: $('dropped'),
	rows: $('frame-rows'),
	framesEmpty: $('frames-empty'),
	pause: $('pause'),
	clear: $('clear'),
	note: $('frames-note'),
};

let client = null;
let currentKey = ''; // the key of `client`

// ---- helpers ------------------------------------------------------------

function el(tag, className, text) {
	const e = document.createElement(tag);
	if (className) e.className = className;
	if (text !== undefined) e.textContent = text;
	return e;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

function localTime(iso) {
	// Date reads milliseconds; the envelope has microseconds
	const d = new Date(typeof iso === 'string' ? iso.replace(/(\.\d{3})\d+/, '$1') : NaN);
	if (Number.isNaN(d.getTime())) return '—';
	return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function num(v) {
	if (typeof v !== 'number') return String(v);
	return Number.isInteger(v) ? String(v) : String(Math.round(v * 10) / 10);
}

function clip(s, n = 60) {
	s = String(s);
	return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// ---- connection ---------------------------------------------------------

// what the gateway accepts as a key: <key_id>.<secret>, printable ASCII
function keyProblem(key) {
	if (!key) return 'Enter a key.';
	const dot = key.indexOf('.');
	if (!/^[\x21-\x7e]+$/.test(key) || dot < 1 || dot > 64 || dot === key.length - 1)
		return 'A key looks like <key_id>.<secret>, as in admin.key.';
	return null;
}

function showKeyError(msg) {
	ui.keyError.textContent = msg || '';
	ui.keyError.hidden = !msg;
	if (msg) ui.key.setAttribute('aria-invalid', 'true');
	else ui.key.removeAttribute('aria-invalid');
}

function showAlert(msg) {
	ui.alert.textContent = msg || '';
	ui.alert.hidden = !msg;
}

const STATE_LABEL = {
	connecting: 'Connecting…',
	open: 'Connected',
	reconnecting: 'Reconnecting…',
	closed: 'Disconnected',
};

let authFailures = 0; // connections that ended before the key was accepted

function onState(state, detail) {
	ui.state.dataset.state = state;
	ui.state.textContent = STATE_LABEL[state] || state;
	ui.connect.disabled = state === 'connecting' || state === 'open';
	ui.disconnect.disabled = state === 'closed';
	let text = '';
	if (state === 'open') {
		authFailures = 0;
		if (!detail.reconnect) subscribeAll(topicsFor(detail.identity));
		showAlert('');
		// the key id is public; the secret stays out of the page
		text = `as key ${currentKey.slice(0, currentKey.indexOf('.'))}`;
		sessionStorage.setItem(KEY_STORE, currentKey);
	} else if (state === 'reconnecting' && detail.delayMs !== undefined) {
		const why = detail.reason ? `: ${clip(detail.reason, 80)}` : '';
		text = `connection ${detail.closeCode === 1006 ? 'lost' : `closed (${detail.closeCode}${why})`}; retry ${detail.attempt} in ${(detail.delayMs / 1000).toFixed(1)} s`;
		authFailures = detail.phase === 'auth' ? authFailures + 1 : 0;
		if (authFailures >= 2)
			showAlert('The gateway keeps closing the connection before accepting the key. Is the key right?');
	}
	ui.detail.textContent = text;
}

function onError(err) {
	if (err.code === 'UNAUTHENTICATED' || err.code === 'FORBIDDEN') {
		sessionStorage.removeItem(KEY_STORE);
		showAlert(`The gateway refused the key: ${err.message}`);
		ui.key.focus();
	} else {
		showAlert(`${err.code}: ${err.message}`);
	}
}

// once per connect: the client subscribes again by itself after reconnects
function subscribeAll(topics) {
	for (const t of topics)
		client.subscribe(t).catch((err) => {
			if (err.code !== 'CLOSED') showAlert(`Could not subscribe to ${t}: ${err.message}`);
		});
}

function connect(key) {
	disconnect();
	showAlert('');
	authFailures = 0;
	currentKey = key;
	client = new LabgwClient({ key, onFrame, onState, onGap, onError });
	client.connect();
}

function disconnect() {
	if (!client) return;
	client.close();
	client = null;
}

ui.form.addEventListener('submit', (ev) => {
	ev.preventDefault();
	const key = ui.key.value.trim();
	const problem = keyProblem(key);
	showKeyError(problem);
	if (problem) {
		ui.key.focus();
		return;
	}
	connect(key);
});

ui.disconnect.addEventListener('click', () => {
	sessionStorage.removeItem(KEY_STORE); // a reload should not connect again
	disconnect();
});

// ---- gateways and radios --------------------------------------------------

const gateways = new Map(); // gw -> {state, version, started}
const radios = new Map(); // "gw/radio" -> {gw, radio, module, techs, state, reason, details, frames, row}

function renderGateways() {
	ui.gateways.replaceChildren();
	for (const [gw, g] of [...gateways].sort()) {
		const item = el('li', 'gateway');
		item.append(el('span', 'gw-name', gw), ' ');
		const badge = el('span', 'badge', g.state || 'unknown');
		badge.dataset.state = g.state || 'unknown';
		item.append(badge);
		const more = [];
		if (g.version) more.push(`v${g.version}`);
		if (g.started) more.push(`up since ${localTime(g.started)}`);
		if (more.length) item.append(' ', el('span', 'muted', more.join(' · ')));
		ui.gateways.append(item);
	}
}

function radioRow() {
	const tr = el('tr');
	const th = el('th');
	th.scope = 'row';
	tr.append(el('td'), th, el('td'), el('td'), el('td'), el('td', 'numeric'), el('td', 'details'));
	return tr;
}

function detailsText(r) {
	const parts = [];
	if (r.reason) parts.push(r.reason);
	for (const [k, v] of Object.entries(r.details || {})) {
		if (v === null || typeof v === 'object') continue;
		parts.push(`${k.replace(/_/g, ' ')} ${num(v)}`);
	}
	return parts.join(' · ');
}

function renderRadio(r) {
	if (!r.row) {
		r.row = radioRow();
		// a few radios: keep them sorted by moving all rows
		const ids = [...radios.keys()].filter((id) => radios.get(id).row).sort();
		ui.radios.append(...ids.map((id) => radios.get(id).row));
		ui.radiosEmpty.hidden = true;
	}
	const c = r.row.cells;
	c[0].textContent = r.gw;
	c[1].textContent = r.radio;
	c[2].textContent = r.module || '—';
	c[3].textContent = (r.techs || []).join(', ') || '—';
	const badge = el('span', 'badge', r.state || 'unknown');
	badge.dataset.state = r.state || 'unknown';
	c[4].replaceChildren(badge);
	c[5].textContent = r.frames.toLocaleString('en');
	c[6].textContent = detailsText(r) || '—';
}

function radioOf(gw, name) {
	const id = `${gw}/${name}`;
	let r = radios.get(id);
	if (!r) {
		r = { gw, radio: name, frames: 0, row: null };
		radios.set(id, r);
	}
	return r;
}

function removeRadio(id) {
	const r = radios.get(id);
	if (r && r.row) r.row.remove();
	radios.delete(id);
	ui.radiosEmpty.hidden = radios.size > 0;
}

function onStateFrame(f, topic) {
	const data = f.data || {};
	const gw = f.gw || topic.split('/')[3];
	switch (f.type) {
		case 'state.gateway':
			gateways.set(gw, { state: data.state, version: data.version, started: data.started });
			renderGateways();
			break;
		case 'state.radios': {
			// the inventory: radios it does not list are gone
			const listed = new Set();
			for (const item of Array.isArray(data.radios) ? data.radios : []) {
				if (!item || typeof item.radio !== 'string') continue;
				listed.add(`${gw}/${item.radio}`);
				const r = radioOf(gw, item.radio);
				Object.assign(r, { module: item.module, techs: item.techs, state: item.state });
				renderRadio(r);
			}
			for (const [id, r] of radios) if (r.gw === gw && !listed.has(id)) removeRadio(id);
			break;
		}
		case 'state.radio': {
			const name = f.radio || topic.split('/')[5];
			const r = radioOf(gw, name);
			Object.assign(r, {
				module: data.module,
				techs: data.techs,
				state: data.state,
				reason: data.reason,
				details: data.details,
			});
			renderRadio(r);
			break;
		}
		default:
			break;
	}
}

// ---- counters -------------------------------------------------------------

const counts = Object.fromEntries([...TECHS, 'other'].map((t) => [t, 0]));
let total = 0;
let dropped = 0;
let gapCount = 0;
const history = []; // [{t, counts, total}] once a second, for the rates
const counterCells = new Map();

function buildCounters() {
	for (const tech of [...TECHS, 'all']) {
		const li = el('li', 'counter');
		li.dataset.tech = tech;
		const name = el('span', 'counter-name', tech);
		const value = el('span', 'counter-value', '0');
		const rate = el('span', 'counter-rate', '0.0 /s');
		li.append(name, value, rate);
		ui.counters.append(li);
		counterCells.set(tech, { value, rate });
	}
}

function countOf(snapshot, tech) {
	return tech === 'all' ? snapshot.total : snapshot.counts[tech];
}

function tick() {
	const now = { t: performance.now(), counts: { ...counts }, total };
	history.push(now);
	while (history.length > RATE_WINDOW_S + 1) history.shift();
	const old = history[0];
	const secs = (now.t - old.t) / 1000;
	for (const [tech, cells] of counterCells) {
		const n = countOf(now, tech);
		cells.value.textContent = n.toLocaleString('en');
		const rate = secs > 0 ? (n - countOf(old, tech)) / secs : 0;
		cells.rate.textContent = `${rate.toFixed(1)} /s`;
	}
	for (const r of radios.values()) if (r.row) r.row.cells[5].textContent = r.frames.toLocaleString('en');
	if (paused) showPausedNote();
}

function showPausedNote() {
	ui.note.textContent = `Paused: ${pausedSince.toLocaleString('en')} new frames not shown.`;
}

// ---- the frame list -------------------------------------------------------

let paused = false;
let pending = []; // rows to show at the next paint: {frame} or {gap}
let pausedSince = 0; // frames that came while paused
let paintScheduled = false;
let lastPaint = 0;

const SIG = [
	['rssi', (v) => `${num(v)} dBm`],
	['signal_dbm', (v) => `${num(v)} dBm`],
	['snr', (v) => `SNR ${num(v)} dB`],
	['rsrp', (v) => `RSRP ${num(v)}`],
	['rsrq', (v) => `RSRQ ${num(v)}`],
	['sinr', (v) => `SINR ${num(v)}`],
	['sf', (v) => `SF${num(v)}`],
	['bw_hz', (v) => `${num(v / 1000)} kHz`],
	['freq_hz', (v) => `${num(v / 1e6)} MHz`],
];

const DATA = {
	'rx.ble.adv': (d) => [
		d.name && `“${clip(d.name, 30)}”`,
		d.ibeacon && `iBeacon ${d.ibeacon.major}/${d.ibeacon.minor}`,
		d.eddystone && `Eddystone ${d.eddystone.frame || ''}`.trim(),
		d.manufacturer_data && `mfr ${Object.keys(d.manufacturer_data).join(',')}`,
		!d.manufacturer_data && d.service_data && `svc ${Object.keys(d.service_data).join(',')}`,
	],
	'rx.wlan.station': (d) => [d.event, d.ssid && `“${clip(d.ssid, 32)}”`],
	'rx.lorawan.uplink': (d) => [
		d.mtype,
		d.fcnt !== undefined && `FCnt ${d.fcnt}`,
		d.fport !== undefined && `FPort ${d.fport}`,
		d.mic_ok !== undefined && (d.mic_ok ? 'MIC ok' : 'MIC bad'),
	],
	'rx.lorawan.join': (d) => [d.mtype, d.dev_eui && `DevEUI ${d.dev_eui}`],
	'rx.cellular.sms': (d) => [d.text !== undefined && `“${clip(d.text)}”`],
	'state.cellular.signal': (d) => [d.access_tech, d.operator_name, d.registration],
};

// a few scalar fields of anything we have no picture of
function genericData(d) {
	return Object.entries(d)
		.filter(([, v]) => v !== null && typeof v !== 'object')
		.slice(0, 4)
		.map(([k, v]) => `${k} ${clip(typeof v === 'number' ? num(v) : v, 24)}`);
}

function summary(f) {
	const parts = [];
	const sig = f.sig && typeof f.sig === 'object' ? f.sig : {};
	for (const [k, fmt] of SIG) if (typeof sig[k] === 'number') parts.push(fmt(sig[k]));
	const d = f.data && typeof f.data === 'object' ? f.data : {};
	const pick = DATA[f.type];
	parts.push(...(pick ? pick(d) : genericData(d)));
	return parts.filter(Boolean).join(' · ');
}

function frameRow() {
	const tr = el('tr');
	const time = el('time');
	const tech = el('span', 'tech');
	const c = [el('td', 'time'), el('td'), el('td'), el('td', 'type'), el('td', 'dev'), el('td', 'summary')];
	c[0].append(time);
	c[1].append(tech);
	tr.append(...c);
	return tr;
}

function fillFrameRow(tr, f) {
	const c = tr.cells;
	const time = c[0].firstChild;
	time.textContent = localTime(f.time);
	time.dateTime = typeof f.time === 'string' ? f.time : '';
	const tech = c[1].firstChild;
	tech.textContent = f.tech || '—';
	tech.dataset.tech = TECHS.includes(f.tech) ? f.tech : 'other';
	c[2].textContent = f.radio || '—';
	c[3].textContent = f.type || '—';
	const dev = f.dev && typeof f.dev === 'object' ? f.dev : null;
	c[4].textContent = dev && dev.id !== undefined ? String(dev.id) : '—';
	c[4].classList.toggle('claimed', !!(dev && dev.claimed));
	c[5].textContent = summary(f) || '—';
}

function gapRow(g) {
	const tr = el('tr', 'gap');
	const td = el('td');
	td.colSpan = 6;
	td.textContent = g.reconnect
		? `Reconnected at ${localTime(new Date().toISOString())}: frames sent while the connection was down are missing.`
		: `${(g.dropped ?? 0).toLocaleString('en')} frames dropped here: this page fell behind.`;
	tr.append(td);
	return tr;
}

function queueRow(item) {
	pending.push(item);
	// only the newest MAX_ROWS can be shown; trim now and then, not per frame
	if (pending.length >= 2 * MAX_ROWS) pending.splice(0, pending.length - MAX_ROWS);
	if (paused) {
		if (item.frame) pausedSince++;
		return;
	}
	schedulePaint();
}

function schedulePaint() {
	if (paintScheduled) return;
	paintScheduled = true;
	const wait = Math.max(0, lastPaint + PAINT_MS - performance.now());
	setTimeout(() => requestAnimationFrame(paint), wait);
}

// newest at the top; rows that fall off the end are reused
function paint() {
	paintScheduled = false;
	lastPaint = performance.now();
	if (paused || !pending.length) return;
	const batch = pending.slice(-MAX_ROWS);
	pending = [];
	const top = document.createDocumentFragment();
	for (let i = batch.length - 1; i >= 0; i--) {
		const item = batch[i];
		let tr;
		if (item.gap) {
			tr = gapRow(item.gap);
		} else {
			const last = ui.rows.rows.length + top.childNodes.length >= MAX_ROWS ? ui.rows.lastElementChild : null;
			if (last && !last.classList.contains('gap')) tr = last;
			else {
				if (last) last.remove();
				tr = frameRow();
			}
			fillFrameRow(tr, item.frame);
		}
		top.append(tr);
	}
	ui.rows.prepend(top);
	while (ui.rows.rows.length > MAX_ROWS) ui.rows.lastElementChild.remove();
	ui.framesEmpty.hidden = ui.rows.rows.length > 0;
}

function setPaused(p) {
	paused = p;
	ui.pause.textContent = p ? 'Resume' : 'Pause';
	pausedSince = 0;
	if (p) showPausedNote();
	else ui.note.textContent = '';
	if (!p && pending.length) schedulePaint();
}

ui.pause.addEventListener('click', () => setPaused(!paused));
ui.clear.addEventListener('click', () => {
	ui.rows.replaceChildren();
	pending = [];
	ui.framesEmpty.hidden = false;
});

// ---- from the client ------------------------------------------------------

function onFrame(f, topic) {
	if (!f || typeof f !== 'object' || typeof topic !== 'string') return;
	if (topic.startsWith('labgw/v1/gw/')) {
		onStateFrame(f, topic);
		return;
	}
	const tech = TECHS.includes(f.tech) ? f.tech : 'other';
	counts[tech]++;
	total++;
	if (f.radio) radioOf(f.gw || topic.split('/')[3], f.radio).frames++;
	queueRow({ frame: f });
}

function onGap(g) {
	if (!g.reconnect) {
		dropped += g.dropped || 0;
		gapCount++;
		ui.dropped.textContent = `${dropped.toLocaleString('en')} frames dropped in ${gapCount} gap${gapCount === 1 ? '' : 's'}.`;
	}
	queueRow({ gap: g });
}

// ---- start ----------------------------------------------------------------

buildCounters();
tick();
setInterval(tick, 1000);
const stored = sessionStorage.getItem(KEY_STORE);
if (stored && !keyProblem(stored)) {
	ui.key.value = stored;
	connect(stored);
}
