// Small helpers of the console: every text from the gateway goes into the
// page with textContent, never as markup.
export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k === 'text') e.textContent = v;
		else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
		else e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children) if (c !== null && c !== undefined) e.append(c);
	return e;
}

/** dt/dd pairs into a <dl> */
export function fillKv(dl, pairs) {
	dl.replaceChildren();
	for (const [k, v] of pairs) dl.append(el('dt', { text: k }), el('dd', { text: String(v) }));
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

export function time(iso, ms = false) {
	if (!iso) return '—';
	const d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
	if (Number.isNaN(d.getTime())) return '—';
	const t = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
	return ms ? `${t}.${pad(d.getMilliseconds(), 3)}` : t;
}

export function dateTime(iso) {
	if (!iso) return '—';
	const d = new Date(String(iso).replace(/(\.\d{3})\d+/, '$1'));
	if (Number.isNaN(d.getTime())) return '—';
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time(iso)}`;
}

/** Decoded fields flattened to [path, value] pairs. */
export function flatten(obj, prefix = '', out = []) {
	if (obj === null || typeof obj !== 'object') {
		out.push([prefix, obj]);
		return out;
	}
	for (const [k, v] of Object.entries(obj)) {
		const p = prefix ? `${prefix}.${k}` : k;
		if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v, p, out);
		else out.push([p, Array.isArray(v) ? JSON.stringify(v) : v]);
	}
	return out;
}

/** Base64 bytes as a hex dump: offset, 16 bytes in hex, printable ASCII. */
export function hexDump(b64) {
	let bin;
	try {
		bin = atob(b64);
	} catch {
		return '(not base64)';
	}
	const lines = [];
	for (let off = 0; off < bin.length; off += 16) {
		const chunk = bin.slice(off, off + 16);
		const hex = [...chunk].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ');
		const ascii = [...chunk].map((c) => (c >= ' ' && c <= '~' ? c : '.')).join('');
		lines.push(`${off.toString(16).padStart(4, '0')}  ${hex.padEnd(47)}  ${ascii}`);
	}
	return lines.join('\n') || '(empty)';
}

export function showAlert(msg) {
	const a = $('alert');
	a.textContent = msg || '';
	a.hidden = !msg;
}

export const TECHS = ['ble', 'wlan', 'lorawan', 'cellular'];
export const TECH_COLORS = { ble: '#1f6fd1', wlan: '#16794a', lorawan: '#b25a00', cellular: '#8a3ab9' };
