// The staff console: sign-in with a staff key (sessionStorage only, sent as a
// bearer token and inside the WebSocket; no cookies), the sections, and the
// emergency stop.
import { LabgwClient } from '../lib/labgw.js';
import { LabgwRest } from '../lib/rest.js';
import { $, showAlert } from './util.js';
import * as overview from './overview.js';
import * as traffic from './inspector.js';
import * as sandboxes from './sandboxes.js';
import * as audit from './audit.js';

const KEY_STORE = 'labgw.staff_key';
const VIEWS = { overview, traffic, sandboxes, audit };
const ctx = { client: null, api: null, gw: null };

function keyProblem(key) {
	if (!key) return 'Enter the staff key.';
	const dot = key.indexOf('.');
	if (!/^[\x21-\x7e]+$/.test(key) || dot < 1 || dot === key.length - 1)
		return 'A key looks like <key_id>.<secret>, as in admin.key.';
	return null;
}

function keyError(msg) {
	$('key-error').textContent = msg || '';
	$('key-error').hidden = !msg;
	if (msg) $('key').setAttribute('aria-invalid', 'true');
	else $('key').removeAttribute('aria-invalid');
}

const CONN_TEXT = {
	connecting: 'Connecting…',
	open: 'Live',
	reconnecting: 'Reconnecting…',
	closed: 'Disconnected',
};

async function signIn(key) {
	const api = new LabgwRest({ key });
	let gw;
	try {
		gw = await api.get('/api/v1/gateway');
		await api.get('/api/v1/sandboxes'); // staff only
	} catch (e) {
		sessionStorage.removeItem(KEY_STORE);
		keyError(
			e.code === 'UNAUTHENTICATED'
				? 'The gateway does not know this key (or it was revoked).'
				: e.code === 'FORBIDDEN'
					? 'This is not a staff key.'
					: `Cannot sign in: ${e.message}`
		);
		$('key').focus();
		return;
	}
	sessionStorage.setItem(KEY_STORE, key);
	keyError('');
	ctx.api = api;
	ctx.gw = gw;
	ctx.client = new LabgwClient({
		key,
		onState(state) {
			$('conn').textContent = CONN_TEXT[state] || state;
			$('conn').dataset.state = state;
		},
		onFrame(frame, topic) {
			for (const v of Object.values(VIEWS)) v.onFrame?.(frame, topic);
		},
		onGap(gap) {
			for (const v of Object.values(VIEWS)) v.onGap?.(gap);
		},
		onError(err) {
			if (err.code === 'UNAUTHENTICATED' || err.code === 'FORBIDDEN') {
				signOut();
				keyError(`The gateway refused the key: ${err.message}`);
			} else showAlert(`${err.code}: ${err.message}`);
		},
	});
	for (const t of ['labgw/v1/gw/#', 'labgw/v1/adm/+/rx/#', 'labgw/v1/pub/+/stats'])
		ctx.client.subscribe(t).catch((e) => showAlert(`Cannot subscribe to ${t}: ${e.message}`));
	ctx.client.connect();
	$('signin').hidden = true;
	$('nav').hidden = false;
	$('who').hidden = false;
	$('key').value = '';
	for (const v of Object.values(VIEWS)) v.start(ctx);
	setStopped(gw.stopped);
	route();
}

function signOut() {
	sessionStorage.removeItem(KEY_STORE);
	ctx.client?.close();
	for (const v of Object.values(VIEWS)) v.stop?.();
	Object.assign(ctx, { client: null, api: null, gw: null });
	for (const s of document.querySelectorAll('.view')) s.hidden = true;
	$('signin').hidden = false;
	$('nav').hidden = true;
	$('who').hidden = true;
	$('stopped-banner').hidden = true;
	showAlert('');
	$('key').focus();
}

// #overview, #traffic, ...: one section shown at a time
function route(focus = false) {
	if (!ctx.api) return;
	const name = VIEWS[location.hash.slice(1)] ? location.hash.slice(1) : 'overview';
	for (const [n, v] of Object.entries(VIEWS)) {
		const on = n === name;
		$(`view-${n}`).hidden = !on;
		v.visible?.(on);
	}
	for (const a of document.querySelectorAll('#nav a')) {
		if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
		else a.removeAttribute('aria-current');
	}
	if (focus) $(`view-${name}`).querySelector('h2').focus();
}

function setStopped(on) {
	$('stopped-banner').hidden = !on;
	$('estop').disabled = !!on;
}

async function emergencyStop() {
	const dlg = $('stop-dialog');
	dlg.returnValue = '';
	dlg.showModal();
	dlg.addEventListener(
		'close',
		async () => {
			if (dlg.returnValue !== 'stop') return $('estop').focus();
			try {
				const r = await ctx.api.put('/api/v1/stop');
				setStopped(r.stopped);
				$('lift').focus();
			} catch (e) {
				showAlert(`The stop failed: ${e.message}`);
			}
		},
		{ once: true }
	);
}

$('signin-form').addEventListener('submit', (ev) => {
	ev.preventDefault();
	const key = $('key').value.trim();
	const p = keyProblem(key);
	keyError(p);
	if (p) return $('key').focus();
	signIn(key);
});
$('signout').addEventListener('click', signOut);
$('estop').addEventListener('click', emergencyStop);
$('lift').addEventListener('click', async () => {
	try {
		const r = await ctx.api.del('/api/v1/stop');
		setStopped(r.stopped);
		$('estop').focus();
	} catch (e) {
		showAlert(`Lifting the stop failed: ${e.message}`);
	}
});
addEventListener('hashchange', () => route(true));

const saved = sessionStorage.getItem(KEY_STORE);
if (saved) signIn(saved);
else $('key').focus();
