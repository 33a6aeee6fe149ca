// The page /docs/: renders the gateway's AsyncAPI document (topics, WebSocket
// messages, examples) and OpenAPI document (REST operations, error codes,
// quotas) in the page, from /api/v1/asyncapi.yaml and /api/v1/openapi.json,
// with no library and no network beyond the gateway.
import { parseYaml } from './yaml.js';

function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (k === 'class') e.className = v;
		else e.setAttribute(k, v);
	}
	for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
	return e;
}

// `code` spans of the documents' descriptions become <code>; the rest is text
function rich(text) {
	const span = el('span');
	String(text ?? '')
		.split(/(`[^`]+`)/)
		.forEach((part) => span.append(part.startsWith('`') && part.endsWith('`') ? el('code', {}, part.slice(1, -1)) : part));
	return span;
}

function pointer(doc, ref) {
	return ref
		.replace(/^#\//, '')
		.split('/')
		.reduce((node, part) => node?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
}

function resolve(doc, obj) {
	while (obj && obj.$ref && obj.$ref.startsWith('#/')) obj = pointer(doc, obj.$ref);
	return obj;
}

function json(obj) {
	return el('pre', {}, el('code', {}, JSON.stringify(obj, null, 2)));
}

function topics(asy) {
	const tbody = document.querySelector('#topic-table tbody');
	const dir = {};
	for (const op of Object.values(asy.operations)) {
		const ch = op.channel.$ref.split('/').pop();
		(dir[ch] ??= new Set()).add(op.action === 'send' ? 'you publish' : 'you receive');
		if (op.reply) (dir[op.reply.channel.$ref.split('/').pop()] ??= new Set()).add('you receive');
	}
	for (const [name, ch] of Object.entries(asy.channels)) {
		if (!ch.address.startsWith('labgw/')) continue;
		const what = el('td', {}, el('strong', {}, ch.title ?? name), ' — ', rich(ch.description));
		const params = Object.entries(ch.parameters ?? {});
		if (params.length) {
			const ul = el('ul', { class: 'muted' });
			for (const [p, v] of params) ul.append(el('li', {}, el('code', {}, `{${p}}`), ' ', v.enum ? v.enum.join(', ') : rich(v.description)));
			what.append(ul);
		}
		tbody.append(el('tr', { 'data-channel': name }, el('td', {}, el('code', { class: 'topic' }, ch.address)), what, el('td', {}, [...(dir[name] ?? [])].join(', '))));
	}
}

function websocket(asy, oas) {
	const ch = asy.channels.websocket;
	document.getElementById('ws-intro').append(el('code', {}, ch.address), ': ', rich(ch.description));
	const box = document.getElementById('ws-messages');
	for (const [side, title] of [
		['client', 'You send'],
		['server', 'The gateway sends'],
	]) {
		const m = resolve(asy, ch.messages[side]);
		const ref = m.payload.$ref.split('/').pop();
		box.append(el('h3', {}, `${title} (${ref})`));
		const union = oas.components.schemas[ref];
		const ul = el('ul');
		for (const alt of union.oneOf ?? []) {
			const s = resolve(oas, alt);
			const op = s.properties?.op?.enum?.[0];
			const fields = Object.keys(s.properties ?? {}).filter((f) => f !== 'op');
			ul.append(el('li', { 'data-op': op }, el('code', {}, op), ' — ', rich(s.description), fields.length ? el('span', { class: 'muted' }, ` (fields: ${fields.join(', ')})`) : ''));
		}
		box.append(ul);
		for (const ex of m.examples ?? []) box.append(el('details', {}, el('summary', {}, ex.name), json(ex.payload)));
	}
}

function examples(asy) {
	const frames = document.getElementById('frame-examples');
	for (const ex of asy.components.messages.frame.examples ?? []) {
		frames.append(el('h3', { 'data-tech': ex.payload.tech }, `${ex.payload.tech}: ${ex.payload.type}`), el('p', {}, ex.summary ?? ''), json(ex.payload));
	}
	const tx = document.getElementById('tx-examples');
	for (const ex of asy.components.messages.transmit.examples ?? []) tx.append(el('p', {}, el('strong', {}, ex.name), ': ', rich(ex.summary)), json(ex.payload));
}

function rest(oas) {
	const tbody = document.querySelector('#rest-table tbody');
	for (const [path, item] of Object.entries(oas.paths)) {
		for (const m of ['get', 'post', 'put', 'patch', 'delete']) {
			if (!item[m]) continue;
			tbody.append(el('tr', {}, el('td', { class: 'method' }, m), el('td', {}, el('code', {}, path)), el('td', {}, el('strong', {}, item[m].summary ?? ''), item[m].description ? el('details', {}, el('summary', {}, 'details'), rich(item[m].description)) : '')));
		}
	}
}

function errors(oas) {
	const ec = oas.components.schemas.ErrorCode;
	const tbody = document.querySelector('#error-table tbody');
	for (const code of ec.enum) {
		const x = ec['x-codes']?.[code] ?? {};
		tbody.append(el('tr', { id: `error-${code}` }, el('td', {}, el('code', {}, code)), el('td', {}, x.status ?? ''), el('td', {}, rich(x.meaning)), el('td', {}, rich(x.fix))));
	}
}

function quotas(oas) {
	const q = oas.components.schemas.Quotas;
	const tbody = document.querySelector('#quota-table tbody');
	for (const [name, s] of Object.entries(q.properties)) tbody.append(el('tr', {}, el('td', {}, el('code', {}, name)), el('td', {}, rich(s.description))));
}

function capture(oas) {
	const c = oas.paths['/api/v1/sandboxes/{sbx}/leases/{lease_id}/capture']?.get;
	const r = oas.paths['/api/v1/sandboxes/{sbx}/replay']?.post;
	if (c) document.getElementById('capture-text').append(el('code', {}, 'GET /api/v1/sandboxes/{sbx}/leases/{lease_id}/capture'), ': ', rich(c.description));
	if (r) document.getElementById('replay-text').append(el('code', {}, 'POST /api/v1/sandboxes/{sbx}/replay'), ': ', rich(r.description));
}

async function main() {
	const status = document.getElementById('load-status');
	try {
		const [a, o] = await Promise.all([fetch('/api/v1/asyncapi.yaml'), fetch('/api/v1/openapi.json')]);
		if (!a.ok || !o.ok) throw new Error(`the gateway answered ${a.status} and ${o.status}`);
		const asy = parseYaml(await a.text());
		const oas = await o.json();
		topics(asy);
		websocket(asy, oas);
		examples(asy);
		rest(oas);
		errors(oas);
		quotas(oas);
		capture(oas);
		status.textContent = `AsyncAPI ${asy.asyncapi} “${asy.info.title}” ${asy.info.version}; OpenAPI ${oas.openapi} “${oas.info.title}” ${oas.info.version}.`;
		document.body.dataset.loaded = 'true';
	} catch (e) {
		status.textContent = `The API documents could not be loaded: ${e.message}`;
		status.classList.add('error');
		document.body.dataset.loaded = 'error';
	}
}

main();
