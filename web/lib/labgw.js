// labgw.js — a small, dependency-free client for the labgw WebSocket API
// (DESIGN §7): authenticate, subscribe to topic filters, publish requests,
// and stay connected. An ES module for browsers; see README.md next to it.

export const SUBPROTOCOL = 'labgw.v1';
export const WS_PATH = '/api/v1/ws';

const CLOSE = {
	NORMAL: 1000,
	TOO_BIG: 1009,
	PROTOCOL: 4400,
	UNAUTHENTICATED: 4401,
	FORBIDDEN: 4403,
	QUOTA: 4429,
	// ours, when the client gives up on a connection that stopped answering
	CLIENT_TIMEOUT: 4000,
};

// Close codes worth an onError report, with the error code they stand for.
// 4401 and 4403 also stop reconnecting: the same key would get the same answer.
const CLOSE_ERRORS = {
	[CLOSE.TOO_BIG]: 'TOO_LARGE',
	[CLOSE.PROTOCOL]: 'BAD_REQUEST',
	[CLOSE.UNAUTHENTICATED]: 'UNAUTHENTICATED',
	[CLOSE.FORBIDDEN]: 'FORBIDDEN',
	[CLOSE.QUOTA]: 'QUOTA_EXCEEDED',
};
const QUOTA_MIN_DELAY_MS = 10000;

/** An error with the API's error code (BAD_REQUEST, FORBIDDEN, ...) or one of
 * the client's own (TIMEOUT, TOO_MANY_PENDING, DISCONNECTED, CLOSED, CANCELLED). */
export class LabgwError extends Error {
	constructor(code, message, extra = {}) {
		super(message || code);
		this.name = 'LabgwError';
		this.code = code;
		if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
		if (extra.closeCode !== undefined) this.closeCode = extra.closeCode;
	}
}

/** ws: or wss: URL of the API on the host that served the page. */
export function defaultUrl(loc = globalThis.location) {
	if (!loc || !loc.host) throw new LabgwError('BAD_REQUEST', 'no page location: pass a url');
	return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}${WS_PATH}`;
}

const noop = () => {};

export class LabgwClient {
	/**
	 * @param {object} opts
	 * @param {string} [opts.url]  default: defaultUrl()
	 * @param {string} [opts.key]  "<key_id>.<secret>"; required unless anonymous
	 * @param {boolean} [opts.anonymous]  no key: a public session that reads
	 *        labgw/v1/pub/... only (what the kiosk page uses)
	 * @param {(frame: object, topic: string) => void} [opts.onFrame]
	 * @param {(state: string, detail: object) => void} [opts.onState]
	 * @param {(gap: {dropped: number|null, since: string|null, reconnect: boolean}) => void} [opts.onGap]
	 * @param {(err: LabgwError) => void} [opts.onError]
	 */
	constructor(opts = {}) {
		this._anonymous = opts.anonymous === true;
		if (!this._anonymous && (typeof opts.key !== 'string' || !opts.key))
			throw new LabgwError('BAD_REQUEST', 'a key is required (or anonymous: true)');
		this.url = opts.url || defaultUrl();
		this._key = this._anonymous ? null : opts.key;
		this._onFrame = opts.onFrame || noop;
		this._onState = opts.onState || noop;
		this._onGap = opts.onGap || noop;
		this._onError = opts.onError || noop;
		this._timeoutMs = opts.requestTimeoutMs ?? 10000;
		this._maxPending = opts.maxPending ?? 256;
		this._pingMs = opts.pingIntervalMs ?? 30000;
		this._backoff = { initialMs: 500, maxMs: 30000, ...opts.backoff };
		this._WebSocket = opts.WebSocket || globalThis.WebSocket;

		this._state = 'closed';
		this._ws = null;
		this._nextId = 1;
		this._authId = null;
		this._filters = new Set(); // subscribed, or to subscribe at the next open
		this._queue = []; // requests waiting for an open connection, in order
		this._inflight = new Map(); // id -> request sent, awaiting its "res"
		this._attempt = 0;
		this._retryTimer = null;
		this._pingTimer = null;
		this._connectTimer = null;
		this._openedAt = 0;
		this._lastRx = 0;
		this._wasOpen = false; // a session was open before: the next open follows a gap
		this._lastFrameId = null;
	}

	/** 'connecting' | 'open' | 'reconnecting' | 'closed' */
	get state() {
		return this._state;
	}

	/** The id of the newest frame received (the replay cursor), or null. */
	get lastFrameId() {
		return this._lastFrameId;
	}

	/** The topic filters this client keeps subscribed. */
	get filters() {
		return [...this._filters];
	}

	/** Start connecting (again, after close()). Returns this. */
	connect() {
		if (this._state !== 'closed') return this;
		this._attempt = 0;
		this._open('connecting');
		return this;
	}

	/**
	 * Subscribe to a topic filter, now and after every reconnect. Resolves
	 * with the server's result ({topic[, existed]}); a refusal rejects and
	 * forgets the filter. Works before the connection is open.
	 */
	subscribe(filter) {
		if (typeof filter !== 'string' || !filter)
			return Promise.reject(new LabgwError('BAD_REQUEST', 'a topic filter is required'));
		if (this._full()) return this._tooMany();
		this._filters.add(filter);
		return this._request({ op: 'sub', topic: filter }, filter);
	}

	/** Stop receiving a filter; it is not resubscribed after a reconnect. */
	unsubscribe(filter) {
		this._filters.delete(filter);
		// a subscription still waiting to be sent need not be sent at all
		for (const r of this._queue.filter((q) => q.filter === filter)) {
			this._drop(r);
			r.reject(new LabgwError('CANCELLED', `unsubscribed from ${filter}`));
		}
		if (this._state !== 'open') return Promise.resolve({ topic: filter });
		return this._request({ op: 'unsub', topic: filter });
	}

	/** Publish a request (transmit, claim, ...); resolves with the server's result. */
	publish(topic, payload) {
		if (typeof topic !== 'string' || !topic || payload === null || typeof payload !== 'object')
			return Promise.reject(new LabgwError('BAD_REQUEST', 'publish(topic, payload object)'));
		return this._request({ op: 'pub', topic, payload });
	}

	/** Round trip to the server. */
	ping() {
		return this._request({ op: 'ping' });
	}

	/** Close for good (until connect()); pending requests are rejected with CLOSED.
	 * The subscribed filters are kept for a later connect(). */
	close() {
		clearTimeout(this._retryTimer);
		this._retryTimer = null;
		this._abandonSocket(CLOSE.NORMAL, 'client closed');
		this._failAll(new LabgwError('CLOSED', 'client closed'));
		this._wasOpen = false;
		this._setState('closed', {});
	}

	// ---- internals ------------------------------------------------------

	// 'reconnecting' is reported for every retry scheduled (force)
	_setState(state, detail, force = false) {
		if (this._state === state && !force) return;
		this._state = state;
		this._safe(this._onState, state, detail);
	}

	_safe(fn, ...args) {
		try {
			fn(...args);
		} catch (e) {
			// an application callback threw: do not let it break the client
			setTimeout(() => {
				throw e;
			});
		}
	}

	_full() {
		return this._queue.length + this._inflight.size >= this._maxPending;
	}

	_tooMany() {
		return Promise.reject(
			new LabgwError('TOO_MANY_PENDING', `${this._maxPending} requests are pending already`)
		);
	}

	// Requests wait for the connection while one is being made; on a closed
	// client only subscriptions wait (for connect()).
	_request(msg, filter) {
		if (this._state === 'closed' && msg.op !== 'sub')
			return Promise.reject(new LabgwError('CLOSED', 'not connected: call connect() first'));
		if (this._full()) return this._tooMany();
		return new Promise((resolve, reject) => {
			const r = this._entry(msg, filter, resolve, reject);
			if (this._state === 'open') this._send(r);
			else this._queue.push(r);
		});
	}

	// a request with its timeout running
	_entry(msg, filter, resolve, reject) {
		const r = { msg, filter, resolve, reject, id: null, internal: false };
		r.timer = setTimeout(() => {
			this._drop(r);
			r.reject(new LabgwError('TIMEOUT', `no answer to ${msg.op} in ${this._timeoutMs} ms`));
		}, this._timeoutMs);
		return r;
	}

	_drop(r) {
		clearTimeout(r.timer);
		if (r.id !== null) this._inflight.delete(r.id);
		const i = this._queue.indexOf(r);
		if (i >= 0) this._queue.splice(i, 1);
	}

	_send(r) {
		r.id = this._nextId++;
		this._inflight.set(r.id, r);
		this._ws.send(JSON.stringify({ ...r.msg, id: r.id }));
	}

	_failAll(err) {
		for (const r of [...this._inflight.values(), ...this._queue]) {
			this._drop(r);
			r.reject(err);
		}
	}

	_open(state) {
		this._setState(state, { attempt: this._attempt });
		let ws;
		try {
			ws = new this._WebSocket(this.url, SUBPROTOCOL);
		} catch (e) {
			// a malformed URL will not get better by retrying
			this._failAll(new LabgwError('CLOSED', e.message));
			this._setState('closed', { reason: e.message });
			this._safe(this._onError, new LabgwError('BAD_REQUEST', `cannot connect: ${e.message}`));
			return;
		}
		this._ws = ws;
		this._authId = null;
		// neither the browser nor the server bound the time to open and
		// authenticate tightly; we do
		this._connectTimer = setTimeout(
			() => this._giveUp(`not connected within ${this._timeoutMs} ms`),
			this._timeoutMs
		);
		ws.onopen = () => {
			this._lastRx = Date.now();
			this._authId = this._nextId++;
			const auth = this._anonymous ? { anonymous: true } : { key: this._key };
			ws.send(JSON.stringify({ op: 'auth', ...auth, id: this._authId }));
			this._armPing();
		};
		ws.onmessage = (ev) => this._onMessage(ev);
		ws.onclose = (ev) => this._onClose(ev.code, ev.reason);
		// onerror carries no detail; the close event that follows tells what happened
	}

	_onMessage(ev) {
		this._lastRx = Date.now();
		if (typeof ev.data !== 'string') return;
		let m;
		try {
			m = JSON.parse(ev.data);
		} catch {
			this._safe(this._onError, new LabgwError('BAD_MESSAGE', 'server sent invalid JSON'));
			return;
		}
		switch (m && m.op) {
			case 'frame':
				if (m.frame && typeof m.frame.id === 'string') this._lastFrameId = m.frame.id;
				this._safe(this._onFrame, m.frame, m.topic);
				break;
			case 'gap':
				this._safe(this._onGap, {
					dropped: m.dropped ?? null,
					since: m.since ?? null,
					reconnect: false,
				});
				break;
			case 'res':
				this._onRes(m);
				break;
			default:
				// an op from a newer server: ignore
				break;
		}
	}

	_errorOf(m) {
		const e = m.error || {};
		return new LabgwError(e.code || 'INTERNAL', e.message, { retryAfterMs: e.retry_after_ms });
	}

	_onRes(m) {
		if (m.re !== null && m.re === this._authId) {
			this._authId = null;
			if (m.ok) this._authenticated(m.result ?? {});
			else this._fatal(this._errorOf(m));
			return;
		}
		const r = this._inflight.get(m.re);
		if (!r) {
			// no request of ours: an answer to something the server could
			// not read, or a late answer to a request that timed out
			if (m.re === null && !m.ok) this._safe(this._onError, this._errorOf(m));
			return;
		}
		this._drop(r);
		if (m.ok) {
			r.resolve(m.result ?? {});
			return;
		}
		const err = this._errorOf(m);
		if (r.msg.op === 'sub') this._filters.delete(r.filter);
		r.reject(err);
	}

	_authenticated(identity) {
		clearTimeout(this._connectTimer);
		/** who the key is: {key_id, sandbox (or null), rights} */
		this.identity = identity;
		const reconnect = this._wasOpen;
		this._wasOpen = true;
		this._openedAt = Date.now();
		// every filter is subscribed again; those the application is
		// waiting on go with its own request
		const queued = new Set(this._queue.filter((r) => r.msg.op === 'sub').map((r) => r.filter));
		for (const filter of this._filters) {
			if (!queued.has(filter)) this._resubscribe(filter);
		}
		const q = this._queue;
		this._queue = [];
		for (const r of q) this._send(r);
		this._setState('open', { reconnect, identity });
		if (reconnect)
			this._safe(this._onGap, { dropped: null, since: this._lastFrameId, reconnect: true });
	}

	// nobody waits on these: a refusal goes to onError
	_resubscribe(filter) {
		const r = this._entry({ op: 'sub', topic: filter }, filter, noop, (err) => {
			if (err.code === 'CLOSED') return;
			if (err.code !== 'TIMEOUT') this._filters.delete(filter);
			err.message = `resubscribing ${filter}: ${err.message}`;
			this._safe(this._onError, err);
		});
		r.internal = true;
		this._send(r);
	}

	_fatal(err) {
		clearTimeout(this._retryTimer);
		this._retryTimer = null;
		this._abandonSocket(CLOSE.NORMAL, err.code);
		this._failAll(new LabgwError('CLOSED', err.message));
		this._wasOpen = false;
		this._setState('closed', { closeCode: err.closeCode, reason: err.message });
		this._safe(this._onError, err);
	}

	_onClose(code, reason) {
		// 'auth': the socket opened but the key was not accepted (yet)
		const phase = this._state === 'open' ? 'open' : this._authId !== null ? 'auth' : 'connect';
		this._authId = null;
		this._ws = null;
		clearInterval(this._pingTimer);
		this._pingTimer = null;
		clearTimeout(this._connectTimer);
		if (code === CLOSE.UNAUTHENTICATED || code === CLOSE.FORBIDDEN) {
			this._fatal(
				new LabgwError(CLOSE_ERRORS[code], reason || `closed with ${code}`, { closeCode: code })
			);
			return;
		}
		// Requests in flight may or may not have been carried out: tell
		// their callers. Subscriptions are simply made again.
		const again = [];
		for (const r of [...this._inflight.values()]) {
			this._inflight.delete(r.id);
			r.id = null;
			if (r.internal) {
				clearTimeout(r.timer);
			} else if (r.msg.op === 'sub') {
				again.push(r);
			} else {
				clearTimeout(r.timer);
				r.reject(new LabgwError('DISCONNECTED', 'connection lost before the answer'));
			}
		}
		this._queue.unshift(...again);
		if (CLOSE_ERRORS[code])
			this._safe(
				this._onError,
				new LabgwError(CLOSE_ERRORS[code], reason || `closed with ${code}`, { closeCode: code })
			);
		// a session that lasted resets the backoff; one that keeps failing
		// right after opening does not
		if (this._openedAt && Date.now() - this._openedAt > this._backoff.maxMs) this._attempt = 0;
		this._openedAt = 0;
		let delay = this._delay();
		if (code === CLOSE.QUOTA) delay = Math.max(delay, QUOTA_MIN_DELAY_MS);
		this._attempt++;
		this._setState(
			'reconnecting',
			{ attempt: this._attempt, delayMs: delay, closeCode: code, reason, phase },
			true
		);
		this._retryTimer = setTimeout(() => {
			this._retryTimer = null;
			this._open('reconnecting');
		}, delay);
	}

	// exponential backoff with "equal jitter": half fixed, half random
	_delay() {
		const { initialMs, maxMs } = this._backoff;
		const d = Math.min(maxMs, initialMs * 2 ** Math.min(this._attempt, 20));
		return Math.round(d / 2 + Math.random() * (d / 2));
	}

	// A connection that went silent (no frame, no answer) is probed with a
	// ping; if that goes unanswered too, it is dropped and made again.
	_armPing() {
		clearInterval(this._pingTimer);
		if (!this._pingMs) return;
		let probing = false;
		this._pingTimer = setInterval(() => {
			if (this._state !== 'open' || probing || Date.now() - this._lastRx < this._pingMs) return;
			probing = true;
			this.ping().then(
				() => (probing = false),
				(err) => {
					probing = false;
					if (err.code === 'TIMEOUT' && this._ws) this._giveUp('no answer to ping');
				}
			);
		}, Math.max(1000, this._pingMs / 4));
	}

	// Treat a connection that does not answer as lost.
	_giveUp(reason) {
		this._abandonSocket(CLOSE.CLIENT_TIMEOUT, reason);
		this._onClose(CLOSE.CLIENT_TIMEOUT, reason);
	}

	// Forget the socket at once; its close event, whenever it comes, is ignored.
	_abandonSocket(code, reason) {
		const ws = this._ws;
		clearInterval(this._pingTimer);
		this._pingTimer = null;
		clearTimeout(this._connectTimer);
		if (!ws) return;
		this._ws = null;
		ws.onopen = ws.onmessage = ws.onclose = null;
		try {
			ws.close(code, reason);
		} catch {
			// already closing
		}
	}
}
