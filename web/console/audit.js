// The audit log, newest first as the gateway returns pages of it; filtered by
// sandbox at the gateway, by action and result here.
import { $, el, dateTime, showAlert } from './util.js';

let ctx = null;
let next = null;

export function start(c) {
	ctx = c;
}

export function stop() {
	ctx = null;
}

export function visible(on) {
	if (on) load(true);
}

async function load(fresh) {
	if (!ctx) return;
	const q = new URLSearchParams({ limit: '200' });
	const sbx = $('a-sbx').value.trim();
	if (sbx) q.set('sbx', sbx);
	if (!fresh && next) q.set('since', next);
	let page;
	try {
		page = await ctx.api.get(`/api/v1/audit?${q}`);
	} catch (e) {
		return showAlert(`Reading the audit log: ${e.message}`);
	}
	next = page.next || null;
	const action = $('a-action').value.trim();
	const result = $('a-result').value;
	const rows = page.entries
		.filter((e) => (!action || e.action.includes(action)) && (!result || e.result === result))
		.map((e) =>
			el('tr', {},
				el('td', { class: 'num', text: e.id }),
				el('td', { text: dateTime(e.time) }),
				el('td', {}, el('code', { text: e.key_id || '—' })),
				el('td', { text: e.sandbox || '—' }),
				el('td', { text: e.action }),
				el('td', { text: e.target || '' }),
				el('td', { class: `result-${e.result}`, text: e.result }),
				el('td', { text: e.detail || '' }))
		);
	if (fresh) $('audit').replaceChildren(...rows);
	else $('audit').append(...rows);
	if (fresh && !rows.length) $('audit').append(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'No entries.' })));
	$('audit-more').hidden = !next || page.entries.length < 200;
}

$('audit-form').addEventListener('submit', (ev) => {
	ev.preventDefault();
	load(true);
});
$('audit-more').addEventListener('click', () => load(false));
