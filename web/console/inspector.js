// Live traffic: every frame raw (staff), filtered, in a virtualised list
// (only the visible rows exist in the DOM) over a ring of at most KEEP
// frames, repainted at most every PAINT_MS: it keeps up with thousands of
// frames per second without holding up the page.
import { $, el, fillKv, flatten, hexDump, time } from './util.js';

const KEEP = 5000;
const ROW_H = 28; // px, as in console.css (.vrow)
const PAINT_MS = 200;

let ctx = null;
let ring = []; // newest last; matching the filters only
let received = 0;
let dropped = 0;
let paused = false;
let dirty = false;
let shown = false;
let selected = null; // the frame shown in the detail
let timer = null;
let claimed = null; // Set of "tech/dev" of the chosen sandbox, or null
const seen = { radio: new Set(), type: new Set() };
const filter = { tech: '', radio: '', type: '', dev: '' };

export function start(c) {
	ctx = c;
	ring = [];
	received = dropped = 0;
	timer = setInterval(paint, PAINT_MS);
	loadSandboxes();
}

export function stop() {
	clearInterval(timer);
	ctx = null;
}

export function visible(on) {
	shown = on;
	if (on) {
		dirty = true;
		loadSandboxes();
	}
}

function matches(f) {
	if (filter.tech && f.tech !== filter.tech) return false;
	if (filter.radio && f.radio !== filter.radio) return false;
	if (filter.type && f.type !== filter.type) return false;
	const dev = f.dev?.id || '';
	if (filter.dev && !dev.toLowerCase().includes(filter.dev)) return false;
	if (claimed && !claimed.has(`${f.tech}/${dev}`)) return false;
	return true;
}

export function onFrame(f, topic) {
	if (!topic.startsWith('labgw/v1/adm/')) return;
	received++;
	if (!seen.radio.has(f.radio)) addOption('f-radio', seen.radio, f.radio);
	if (!seen.type.has(f.type)) addOption('f-type', seen.type, f.type);
	if (paused || !matches(f)) return;
	ring.push(f);
	// drop the oldest in batches: cheap at high rates, bounded memory
	if (ring.length > KEEP + 500) ring = ring.slice(ring.length - KEEP);
	dirty = true;
}

export function onGap(gap) {
	if (gap.dropped) dropped += gap.dropped;
	dirty = true;
}

function addOption(id, set, value) {
	set.add(value);
	$(id).append(el('option', { text: value }));
}

async function loadSandboxes() {
	if (!ctx) return;
	try {
		const { sandboxes } = await ctx.api.get('/api/v1/sandboxes');
		const sel = $('f-sbx');
		const cur = sel.value;
		sel.replaceChildren(el('option', { value: '', text: 'any' }), ...sandboxes.map((s) => el('option', { text: s.id })));
		sel.value = cur;
	} catch {
		// the list stays as it was
	}
}

// ---- the list --------------------------------------------------------------

function count() {
	return Math.min(ring.length, KEEP);
}

// row i (0 = newest) of the list
function frameAt(i) {
	return ring[ring.length - 1 - i];
}

function paint() {
	if (!shown) return;
	const status = `${received} frames received${dropped ? `, ${dropped} dropped by the gateway (too slow)` : ''}; ${count()} in the list${paused ? ' — paused' : ''}`;
	if ($('tr-status').textContent !== status && (dirty || paused)) $('tr-status').textContent = status;
	if (!dirty) return;
	dirty = false;
	const list = $('list');
	const n = count();
	$('list-spacer').style.height = `${n * ROW_H}px`;
	const first = Math.max(0, Math.floor(list.scrollTop / ROW_H) - 2);
	const last = Math.min(n, first + Math.ceil(list.clientHeight / ROW_H) + 4);
	const rows = [];
	for (let i = first; i < last; i++) {
		const f = frameAt(i);
		const r = el(
			'div',
			{ class: 'vrow', role: 'option', id: `row-${i}`, 'aria-selected': f === selected ? 'true' : 'false', 'data-i': i },
			el('span', { class: 'c-time', text: time(f.time, true) }),
			el('span', { class: `c-tech tech-${f.tech}`, text: f.tech || '' }),
			el('span', { class: 'c-radio', text: f.radio || '' }),
			el('span', { class: 'c-type', text: f.type }),
			el('span', { class: 'c-dev', text: f.dev?.id || '—' })
		);
		r.style.top = `${i * ROW_H}px`;
		rows.push(r);
	}
	list.replaceChildren($('list-spacer'), ...rows);
	const si = selectedIndex();
	if (si >= 0) list.setAttribute('aria-activedescendant', `row-${si}`);
	else list.removeAttribute('aria-activedescendant');
}

function selectedIndex() {
	if (!selected) return -1;
	const j = ring.lastIndexOf(selected);
	return j < 0 ? -1 : ring.length - 1 - j;
}

function select(i) {
	const n = count();
	if (!n) return;
	i = Math.max(0, Math.min(n - 1, i));
	selected = frameAt(i);
	const list = $('list');
	if (i * ROW_H < list.scrollTop) list.scrollTop = i * ROW_H;
	else if ((i + 1) * ROW_H > list.scrollTop + list.clientHeight) list.scrollTop = (i + 1) * ROW_H - list.clientHeight;
	showDetail(selected);
	dirty = true;
	paint();
}

function showDetail(f) {
	$('detail-empty').hidden = true;
	$('detail-body').hidden = false;
	fillKv($('detail-env'), [
		['Id', f.id],
		['Time', f.time],
		['Tech / radio', `${f.tech || '—'} / ${f.radio || '—'}`],
		['Type', f.type],
		['Device', f.dev ? `${f.dev.id}${f.dev.claimed ? ' (claimed)' : ''}` : '—'],
		...flatten(f.sig || {}).map(([k, v]) => [`sig.${k}`, v]),
	]);
	const data = flatten(f.data || {});
	fillKv($('detail-data'), data.length ? data : [['—', 'no decoded fields']]);
	$('detail-hex').textContent = f.payload ? hexDump(f.payload) : '(no payload)';
}

$('list').addEventListener('scroll', () => {
	dirty = true;
	requestAnimationFrame(paint);
});
$('list').addEventListener('click', (ev) => {
	const row = ev.target.closest('.vrow');
	if (row) select(Number(row.dataset.i));
});
$('list').addEventListener('keydown', (ev) => {
	const i = selectedIndex();
	const page = Math.max(1, Math.floor($('list').clientHeight / ROW_H) - 1);
	const to = { ArrowDown: i + 1, ArrowUp: i - 1, PageDown: i + page, PageUp: i - page, Home: 0, End: count() - 1 }[ev.key];
	if (to === undefined) return;
	ev.preventDefault();
	select(i < 0 && ev.key !== 'End' ? 0 : to);
});

// ---- filters, pause ------------------------------------------------------------

function refilter() {
	// what is in the ring matched the old filters; start afresh
	ring = ring.filter(matches);
	selected = null;
	dirty = true;
}

for (const [id, key] of [['f-tech', 'tech'], ['f-radio', 'radio'], ['f-type', 'type']])
	$(id).addEventListener('change', (ev) => {
		filter[key] = ev.target.value;
		refilter();
	});
$('f-dev').addEventListener('input', (ev) => {
	filter.dev = ev.target.value.trim().toLowerCase();
	refilter();
});
$('f-sbx').addEventListener('change', async (ev) => {
	const sbx = ev.target.value;
	claimed = null;
	if (sbx && ctx) {
		try {
			const { claims } = await ctx.api.get(`/api/v1/sandboxes/${encodeURIComponent(sbx)}/claims`);
			claimed = new Set(claims.map((c) => `${c.tech}/${c.dev}`));
		} catch (e) {
			claimed = new Set();
			$('tr-status').textContent = `Cannot read the claims of ${sbx}: ${e.message}`;
		}
	}
	refilter();
});
$('filters').addEventListener('submit', (ev) => ev.preventDefault());
$('pause').addEventListener('click', () => {
	paused = !paused;
	$('pause').textContent = paused ? 'Resume' : 'Pause';
	$('pause').setAttribute('aria-pressed', String(paused));
	dirty = true;
});
$('clear').addEventListener('click', () => {
	ring = [];
	selected = null;
	dirty = true;
});
