// rest.js — the gateway's REST calls (/api/v1/..., DESIGN §7) with a key sent
// as a bearer token; never cookies. See README.md next to it.
import { LabgwError } from './labgw.js';

export class LabgwRest {
	/**
	 * @param {object} opts
	 * @param {string} opts.key  "<key_id>.<secret>"
	 * @param {string} [opts.base]  default: the page's origin
	 * @param {number} [opts.timeoutMs]  default 10000
	 */
	constructor(opts = {}) {
		if (typeof opts.key !== 'string' || !opts.key)
			throw new LabgwError('BAD_REQUEST', 'a key is required');
		this._key = opts.key;
		this.base = opts.base || globalThis.location?.origin || '';
		this._timeoutMs = opts.timeoutMs ?? 10000;
	}

	get(path) {
		return this.request('GET', path);
	}
	post(path, body) {
		return this.request('POST', path, body);
	}
	patch(path, body) {
		return this.request('PATCH', path, body);
	}
	put(path, body) {
		return this.request('PUT', path, body);
	}
	del(path) {
		return this.request('DELETE', path);
	}

	/** Resolves with the parsed JSON answer ({} when empty); rejects with a
	 * LabgwError carrying the gateway's code and the HTTP status. */
	async request(method, path, body) {
		const headers = { Authorization: `Bearer ${this._key}`, Accept: 'application/json' };
		const init = { method, headers, credentials: 'omit', cache: 'no-store' };
		if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(body);
		}
		init.signal = AbortSignal.timeout(this._timeoutMs);
		let res;
		try {
			res = await fetch(this.base + path, init);
		} catch (e) {
			const code = e.name === 'TimeoutError' ? 'TIMEOUT' : 'DISCONNECTED';
			throw new LabgwError(code, `${method} ${path}: ${e.message}`);
		}
		const text = await res.text();
		let json = {};
		if (text) {
			try {
				json = JSON.parse(text);
			} catch {
				json = { detail: text };
			}
		}
		if (res.ok) return json;
		const retry = Number(res.headers.get('Retry-After'));
		const err = new LabgwError(json.code || 'INTERNAL', json.detail || json.title || res.statusText, {
			retryAfterMs: Number.isFinite(retry) && retry > 0 ? retry * 1000 : json.retry_after_ms,
		});
		err.status = res.status;
		throw err;
	}

	/** /metrics parsed: {"name{labels}": number}. Needs no key. */
	async metrics() {
		const res = await fetch(`${this.base}/metrics`, { credentials: 'omit', cache: 'no-store' });
		if (!res.ok) throw new LabgwError('INTERNAL', `/metrics: HTTP ${res.status}`);
		return parseMetrics(await res.text());
	}
}

export function parseMetrics(text) {
	const out = {};
	for (const line of text.split('\n')) {
		if (!line || line[0] === '#') continue;
		const i = line.lastIndexOf(' ');
		if (i > 0) out[line.slice(0, i)] = Number(line.slice(i + 1));
	}
	return out;
}
