// Overview: the gateway, its radios and their states, the frame rate over
// time, the MQTT link and error counters, and the LoRa duty cycle.
import { loadChart } from '../lib/charts.js';
import { $, el, fillKv, dateTime, TECHS, TECH_COLORS, showAlert } from './util.js';

const WINDOW_S = 120;
let ctx = null;
let timers = [];
let chart = null;
const radios = new Map(); // radio -> {module, techs, state, details, data, count, rate}
const perTech = Object.fromEntries(TECHS.map((t) => [t, 0])); // frames this second
const series = Object.fromEntries(TECHS.map((t) => [t, new Array(WINDOW_S).fill(0)]));
let gwState = '—';
let loraAirtimeMs = null;

export function start(c) {
	ctx = c;
	radios.clear();
	for (const r of c.gw.radios || []) radios.set(r.radio, { ...r, count: 0, rate: 0 });
	renderGateway();
	renderRadios();
	timers.push(setInterval(tick, 1000));
	timers.push(setInterval(refreshHealth, 5000));
	refreshHealth();
	loadChart().then((Chart) => {
		if (!Chart || chart || !ctx) return;
		chart = new Chart($('rate-chart'), {
			type: 'line',
			data: {
				labels: Array.from({ length: WINDOW_S }, (_, i) => `${i - WINDOW_S + 1} s`),
				datasets: TECHS.map((t) => ({
					label: t,
					data: series[t],
					borderColor: TECH_COLORS[t],
					backgroundColor: TECH_COLORS[t],
					pointRadius: 0,
					borderWidth: 2,
				})),
			},
			options: {
				animation: false,
				responsive: true,
				maintainAspectRatio: false,
				scales: {
					x: { ticks: { maxTicksLimit: 7, color: '#333' } },
					y: { beginAtZero: true, ticks: { color: '#333' } },
				},
				plugins: { legend: { labels: { color: '#222' } } },
			},
		});
	});
}

export function stop() {
	timers.forEach(clearInterval);
	timers = [];
	chart?.destroy();
	chart = null;
	ctx = null;
}

export function onFrame(f, topic) {
	if (topic.startsWith('labgw/v1/adm/')) {
		if (f.tech in perTech) perTech[f.tech]++;
		const r = radios.get(f.radio);
		if (r) r.count++;
	} else if (f.type === 'state.gateway') {
		gwState = f.data?.state || '—';
		renderGateway();
	} else if (f.type === 'state.radio' && f.radio) {
		const r = radios.get(f.radio) || { radio: f.radio, count: 0, rate: 0 };
		Object.assign(r, f.data || {});
		r.data = f.data;
		radios.set(f.radio, r);
		renderRadios();
		renderDuty();
	} else if (f.type === 'stats') {
		loraAirtimeMs = f.data?.lora_airtime_ms_last_hour ?? null;
		renderDuty();
	}
}

function tick() {
	let total = 0;
	for (const t of TECHS) {
		series[t].push(perTech[t]);
		series[t].shift();
		total += perTech[t];
		perTech[t] = 0;
	}
	for (const r of radios.values()) {
		r.rate = r.count;
		r.count = 0;
	}
	$('rate-now').textContent = `Now: ${total} frames/s (${TECHS.map((t) => `${t} ${series[t][WINDOW_S - 1]}`).join(', ')})`;
	if (chart && !$('view-overview').hidden) chart.update('none');
	renderRadios();
}

function renderGateway() {
	const g = ctx?.gw;
	if (!g) return;
	fillKv($('gw-info'), [
		['Id', g.id],
		['State', gwState],
		['Version', g.version],
		['Running since', dateTime(g.started)],
		['Radios', (g.radios || []).length],
	]);
}

const openDetails = new Set(); // radios whose nested details are shown

function renderRadios() {
	const rows = [];
	for (const r of [...radios.values()].sort((a, b) => a.radio.localeCompare(b.radio))) {
		const state = el('span', { class: 'badge', 'data-state': r.state, text: r.state || '—' });
		// the plain values in the row; nested ones (concentrators, counters,
		// the duty-cycle ledger, ...) on request, as JSON
		const entries = Object.entries(r.details || {});
		const plain = entries.filter(([, v]) => v === null || typeof v !== 'object' || Array.isArray(v));
		const nested = entries.filter(([, v]) => v !== null && typeof v === 'object' && !Array.isArray(v));
		const details = el('td', { class: 'details' }, plain.map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(' ') : v}`).join(' · '));
		if (nested.length) {
			details.append(
				// the rows are drawn again every second: keep what was opened open
				el('details', { open: openDetails.has(r.radio), ontoggle: (e) => (e.target.open ? openDetails.add(r.radio) : openDetails.delete(r.radio)) },
					el('summary', { text: nested.map(([k]) => k).join(', ') }),
					el('pre', { text: JSON.stringify(Object.fromEntries(nested), null, 2) })
				)
			);
		}
		rows.push(
			el('tr', { 'data-radio': r.radio },
				el('th', { scope: 'row', text: r.radio }),
				el('td', { text: r.module || '' }),
				el('td', { text: (r.techs || []).join(' ') }),
				el('td', {}, state, r.reason ? ` ${r.reason}` : ''),
				el('td', { class: 'num', text: String(r.rate ?? 0) }),
				details
			)
		);
	}
	$('radio-rows').replaceChildren(...rows);
}

// the lorawan module reports, in its radio state, details.duty_cycle.{gateway}.{band}.{used_ms, limit_ms}
function dutyBands(data, path = [], out = []) {
	if (!data || typeof data !== 'object') return out;
	if ('used_ms' in data && 'limit_ms' in data) out.push({ name: path.join(' '), ...data });
	else for (const [k, v] of Object.entries(data)) dutyBands(v, [...path, k], out);
	return out;
}

function renderDuty() {
	const box = $('duty');
	const items = [];
	for (const r of radios.values()) {
		if (!(r.techs || []).includes('lorawan')) continue;
		const bands = dutyBands(r.data?.details?.duty_cycle);
		if (!bands.length) {
			items.push(el('p', { text: `${r.radio}: reports no duty-cycle ledger (${r.module || 'module'}).` }));
			continue;
		}
		for (const b of bands) {
			const pct = b.limit_ms ? Math.min(100, (100 * b.used_ms) / b.limit_ms) : 0;
			const meter = el('meter', { min: 0, max: b.limit_ms || 1, value: b.used_ms, 'aria-label': `${r.radio} ${b.name}` });
			items.push(el('p', { class: 'duty' }, `${r.radio} ${b.name}: `, meter, ` ${b.used_ms} of ${b.limit_ms} ms (${pct.toFixed(1)} %)`));
		}
	}
	if (loraAirtimeMs !== null)
		items.push(el('p', { text: `LoRa uplink airtime heard in the last hour: ${(loraAirtimeMs / 1000).toFixed(1)} s` }));
	box.replaceChildren(...items);
}

async function refreshHealth() {
	if (!ctx) return;
	try {
		const m = await ctx.api.metrics();
		const g = (n) => m[n] ?? 0;
		const sum = (prefix) => Object.entries(m).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);
		const link = !g('labgw_mqtt_enabled') ? 'off' : g('labgw_mqtt_connected') ? 'connected' : 'disconnected';
		fillKv($('health'), [
			['MQTT link', link],
			['MQTT frames dropped', g('labgw_mqtt_dropped_total')],
			['WebSocket sessions', g('labgw_ws_sessions')],
			['WebSocket errors', g('labgw_ws_errors_total')],
			['REST errors', g('labgw_rest_errors_total')],
			['Failed sign-ins', g('labgw_auth_failures_total')],
			['Frames dropped (slow clients)', g('labgw_ws_dropped_total') + g('labgw_bus_dropped_total')],
			['Radio restarts', sum('labgw_radio_restarts_total')],
		]);
		$('health').querySelector('dd').dataset.state = link;
	} catch (e) {
		showAlert(`Cannot read /metrics: ${e.message}`);
	}
}
