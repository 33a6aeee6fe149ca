// Sandboxes: create, quotas, keys (the secret shown once, with a copy
// button), revocation, claims, leases and a lease timeline per resource.
import { $, el, dateTime, showAlert } from './util.js';

const RIGHTS = ['rx', 'observe', 'claim', 'lease', 'tx:ble', 'tx:wlan', 'tx:lorawan', 'tx:cellular'];
const QUOTAS = [
	['requests_per_s', 'Requests per second'],
	['frames_per_s', 'Frames per second'],
	['tx_per_day', 'Transmits per day'],
	['airtime_ms_per_day', 'LoRa airtime per day (ms)'],
	['sms_per_day', 'SMS per day'],
];
let ctx = null;
let current = null; // sandbox id shown
const path = (sbx, rest = '') => `/api/v1/sandboxes/${encodeURIComponent(sbx)}${rest}`;

export function start(c) {
	ctx = c;
	$('key-rights').replaceChildren(
		...RIGHTS.map((r) =>
			el('label', {}, el('input', { type: 'checkbox', value: r, checked: ['rx', 'observe'].includes(r) }), ` ${r}`)
		)
	);
	$('quota-form').replaceChildren(
		...QUOTAS.flatMap(([k, label]) => [
			el('label', { for: `q-${k}`, text: label }),
			el('input', { id: `q-${k}`, name: k, type: 'number', min: 0, step: 1, inputmode: 'numeric' }),
		]),
		el('p', { class: 'hint', text: '0 means no limit.' }),
		el('button', { type: 'submit', text: 'Save quotas' })
	);
}

export function stop() {
	ctx = null;
	current = null;
	$('sb-detail').hidden = true;
}

export function visible(on) {
	if (on) refreshList();
}

async function call(fn, what) {
	try {
		return await fn();
	} catch (e) {
		showAlert(`${what}: ${e.code} — ${e.message}`);
		throw e;
	}
}

async function refreshList() {
	const { sandboxes } = await call(() => ctx.api.get('/api/v1/sandboxes'), 'Listing sandboxes');
	$('sb-list').replaceChildren(
		...sandboxes.map((s) =>
			el('li', {}, el('button', { type: 'button', class: 'link', 'data-sbx': s.id, 'aria-current': s.id === current ? 'true' : null, text: s.name && s.name !== s.id ? `${s.id} — ${s.name}` : s.id, onclick: () => open(s.id, true) }))
		)
	);
	if (!sandboxes.length) $('sb-list').append(el('li', { class: 'muted', text: 'No sandboxes yet.' }));
}

async function open(sbx, focus = false) {
	current = sbx;
	$('secret-box').hidden = true;
	const [s, keys, claims, leases] = await call(
		() => Promise.all(['', '/keys', '/claims', '/leases'].map((p) => ctx.api.get(path(sbx, p)))),
		`Reading sandbox ${sbx}`
	);
	$('sb-detail').hidden = false;
	$('sb-title').textContent = `Sandbox ${s.id}${s.name && s.name !== s.id ? ` — ${s.name}` : ''}`;
	for (const [k] of QUOTAS) $(`q-${k}`).value = s.quotas?.[k] ?? 0;
	renderKeys(keys.keys);
	$('claims').replaceChildren(
		...claims.claims.map((c) => el('tr', {}, el('td', { text: c.tech }), el('td', { text: c.dev }), el('td', { text: dateTime(c.created) })))
	);
	if (!claims.claims.length) $('claims').append(emptyRow(3, 'No claims.'));
	$('leases').replaceChildren(
		...leases.leases.map((l) =>
			el('tr', {}, el('td', { text: l.resource }), el('td', { text: dateTime(l.start) }), el('td', { text: dateTime(l.end) }), el('td', { text: l.state }))
		)
	);
	if (!leases.leases.length) $('leases').append(emptyRow(4, 'No leases.'));
	renderTimeline(leases.leases);
	refreshList();
	if (focus) $('sb-title').focus();
}

function emptyRow(cols, text) {
	return el('tr', {}, el('td', { colspan: cols, class: 'muted', text }));
}

function renderKeys(keys) {
	$('keys').replaceChildren(
		...keys.map((k) => {
			const state = k.revoked ? 'revoked' : k.expires && new Date(k.expires) < new Date() ? 'expired' : 'valid';
			const revoke = state === 'valid' ? el('button', { type: 'button', class: 'secondary', 'data-key': k.id, 'aria-label': `Revoke key ${k.id}`, text: 'Revoke', onclick: () => revokeKey(k.id) }) : '';
			return el('tr', { 'data-key-row': k.id },
				el('td', {}, el('code', { text: k.id })),
				el('td', { text: k.rights.join(' ') }),
				el('td', { text: dateTime(k.created) }),
				el('td', { text: k.expires ? dateTime(k.expires) : 'never' }),
				el('td', { class: `state-${state}`, text: state }),
				el('td', {}, revoke));
		})
	);
	if (!keys.length) $('keys').append(emptyRow(6, 'No keys.'));
}

async function revokeKey(id) {
	if (!confirm(`Revoke key ${id}? Sessions using it are closed at once.`)) return;
	await call(() => ctx.api.del(path(current, `/keys/${encodeURIComponent(id)}`)), `Revoking ${id}`);
	const { keys } = await ctx.api.get(path(current, '/keys'));
	renderKeys(keys);
	$('keys').querySelector('button')?.focus();
}

// one row per resource; bars placed on the span from the first start to the last end
function renderTimeline(leases) {
	const box = $('timeline');
	if (!leases.length) return box.replaceChildren(el('p', { class: 'muted', text: 'No leases.' }));
	const t = (s) => new Date(String(s).replace(/(\.\d{3})\d+/, '$1')).getTime();
	const from = Math.min(Date.now(), ...leases.map((l) => t(l.start)));
	const to = Math.max(Date.now() + 60000, ...leases.map((l) => t(l.end)));
	const pct = (x) => `${((100 * (x - from)) / (to - from)).toFixed(2)}%`;
	const byRes = new Map();
	for (const l of leases) byRes.set(l.resource, [...(byRes.get(l.resource) || []), l]);
	const rows = [el('p', { class: 'hint', text: `${dateTime(new Date(from).toISOString())} to ${dateTime(new Date(to).toISOString())}; the line is now.` })];
	for (const [res, ls] of byRes) {
		const track = el('div', { class: 'track' });
		for (const l of ls) {
			const bar = el('span', { class: `bar lease-${l.state}`, title: `${l.state}: ${dateTime(l.start)} – ${dateTime(l.end)}`, text: l.state });
			bar.style.left = pct(t(l.start));
			bar.style.width = `calc(${pct(t(l.end))} - ${pct(t(l.start))})`;
			track.append(bar);
		}
		const now = el('span', { class: 'now', 'aria-hidden': 'true' });
		now.style.left = pct(Date.now());
		track.append(now);
		rows.push(el('div', { class: 'tl-row' }, el('span', { class: 'tl-res', text: res }), track));
	}
	box.replaceChildren(...rows);
}

$('sb-create').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const id = $('sb-id').value.trim();
	if (!$('sb-id').checkValidity()) return $('sb-id').reportValidity();
	const body = { id };
	if ($('sb-name').value.trim()) body.name = $('sb-name').value.trim();
	await call(() => ctx.api.post('/api/v1/sandboxes', body), `Creating ${id}`);
	$('sb-id').value = $('sb-name').value = '';
	showAlert('');
	await open(id, true);
});

$('quota-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const quotas = Object.fromEntries(QUOTAS.map(([k]) => [k, Number($(`q-${k}`).value) || 0]));
	await call(() => ctx.api.patch(path(current), { quotas }), 'Saving quotas');
	await open(current);
});

$('key-form').addEventListener('submit', async (ev) => {
	ev.preventDefault();
	const rights = [...$('key-rights').querySelectorAll('input:checked')].map((i) => i.value);
	const body = { rights };
	if ($('key-expires').value) body.expires = new Date($('key-expires').value).toISOString().replace(/\.\d+Z$/, 'Z');
	const k = await call(() => ctx.api.post(path(current, '/keys'), body), 'Issuing a key');
	await open(current);
	$('secret').textContent = k.key;
	$('copied').textContent = '';
	$('secret-box').hidden = false;
	$('copy').focus();
});

$('copy').addEventListener('click', async () => {
	const text = $('secret').textContent;
	try {
		await navigator.clipboard.writeText(text);
		$('copied').textContent = 'Copied.';
	} catch {
		getSelection().selectAllChildren($('secret'));
		$('copied').textContent = 'Selected: press Ctrl+C to copy.';
	}
});
