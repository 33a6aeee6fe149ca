// The public kiosk: the gateway's anonymous aggregates (labgw/v1/pub/{gw}/stats)
// as a picture per technology. No key, no identifiers: the stats carry none,
// and this page shows nothing but counts.
import { LabgwClient } from '../lib/labgw.js';
import { loadChart } from '../lib/charts.js';

const TECHS = ['ble', 'wlan', 'lorawan', 'cellular'];
const COLORS = { ble: '#6cb4ff', wlan: '#7ee2a8', lorawan: '#ffb86b', cellular: '#e0b0ff' };

const TEXT = {
	de: {
		title: 'Open Innovation Lab — Funkverkehr live',
		other: 'English',
		otherLang: 'en',
		connecting: 'Verbinde …',
		live: 'Live',
		reconnecting: 'Verbindung wird wiederhergestellt …',
		privacy: 'Nur anonyme Zählungen: keine Adressen, Namen oder Nummern.',
		updated: 'Stand',
		devices: 'Geräte in der Nähe',
		rate: 'Funksprüche pro Minute',
		airtime: 'LoRa-Sendezeit, letzte Stunde',
		trend: 'Funksprüche pro Minute in der letzten Stunde',
		minutesAgo: (m) => (m ? `vor ${m} min` : 'jetzt'),
		names: { ble: 'Bluetooth LE', wlan: 'WLAN', lorawan: 'LoRaWAN', cellular: 'Mobilfunk' },
		what: {
			ble: 'Fitness-Armbänder, Beacons, Kopfhörer',
			wlan: 'Laptops und Telefone im Labor-WLAN',
			lorawan: 'Sensoren mit großer Reichweite',
			cellular: 'Das Mobilfunkmodem des Labors',
		},
	},
	en: {
		title: 'Open Innovation Lab — live radio traffic',
		other: 'Deutsch',
		otherLang: 'de',
		connecting: 'Connecting …',
		live: 'Live',
		reconnecting: 'Reconnecting …',
		privacy: 'Anonymous counts only: no addresses, names or numbers.',
		updated: 'As of',
		devices: 'Devices nearby',
		rate: 'Messages per minute',
		airtime: 'LoRa airtime, last hour',
		trend: 'Messages per minute over the last hour',
		minutesAgo: (m) => (m ? `${m} min ago` : 'now'),
		names: { ble: 'Bluetooth LE', wlan: 'Wi-Fi', lorawan: 'LoRaWAN', cellular: 'Cellular' },
		what: {
			ble: 'Fitness bands, beacons, headphones',
			wlan: 'Laptops and phones on the lab Wi-Fi',
			lorawan: 'Long-range sensors',
			cellular: "The lab's cellular modem",
		},
	},
};

const lang = new URLSearchParams(location.search).get('lang') === 'en' ? 'en' : 'de';
const t = TEXT[lang];
const nf = new Intl.NumberFormat(lang === 'de' ? 'de-DE' : 'en-GB', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat(lang === 'de' ? 'de-DE' : 'en-GB', {
	minimumFractionDigits: 1,
	maximumFractionDigits: 1,
});
const $ = (id) => document.getElementById(id);

// ---- the page in its language ---------------------------------------------

document.documentElement.lang = lang;
document.title = t.title;
$('title').textContent = t.title;
$('privacy').textContent = t.privacy;
$('status').textContent = t.connecting;
const langLink = $('lang');
langLink.textContent = t.other;
langLink.lang = t.otherLang;
langLink.hreflang = t.otherLang;
langLink.href = t.otherLang === 'en' ? '?lang=en' : '?lang=de';

const cards = {};
for (const tech of TECHS) {
	const node = $('tech-card').content.firstElementChild.cloneNode(true);
	node.dataset.tech = tech;
	node.setAttribute('aria-labelledby', `name-${tech}`);
	const q = (sel) => node.querySelector(sel);
	q('.name').textContent = t.names[tech];
	q('.name').id = `name-${tech}`;
	q('.what').textContent = t.what[tech];
	q('.l-devices').textContent = t.devices;
	q('.l-rate').textContent = t.rate;
	q('.l-airtime').textContent = t.airtime;
	q('.airtime-row').hidden = tech !== 'lorawan';
	q('canvas').setAttribute('aria-label', `${t.names[tech]}: ${t.trend}`);
	$('techs').append(node);
	cards[tech] = {
		node,
		devices: q('.devices'),
		rate: q('.rate'),
		airtime: q('.airtime'),
		pulse: q('.pulse'),
		canvas: q('canvas'),
		chart: null,
		samples: [], // [{t, total}] of the last 70 s, for a smooth rate
	};
}

// ---- charts -----------------------------------------------------------------

const labels = Array.from({ length: 60 }, (_, i) => t.minutesAgo(59 - i));
const reduceMotion = matchMedia('(prefers-reduced-motion: reduce)').matches;

loadChart().then((Chart) => {
	if (!Chart) return;
	for (const tech of TECHS) {
		const c = cards[tech];
		c.chart = new Chart(c.canvas, {
			type: 'line',
			data: {
				labels,
				datasets: [
					{
						data: new Array(60).fill(0),
						borderColor: COLORS[tech],
						backgroundColor: `${COLORS[tech]}33`,
						fill: true,
						pointRadius: 0,
						borderWidth: 3,
						tension: 0.3,
					},
				],
			},
			options: {
				responsive: true,
				maintainAspectRatio: false,
				animation: reduceMotion ? false : { duration: 600 },
				events: [],
				plugins: { legend: { display: false }, tooltip: { enabled: false } },
				scales: {
					x: { display: false },
					y: {
						beginAtZero: true,
						ticks: { color: '#d0d6dc', font: { size: 16 }, maxTicksLimit: 4, precision: 0 },
						grid: { color: '#ffffff22' },
					},
				},
			},
		});
		if (last) c.chart.data.datasets[0].data = last.techs[tech]?.trend_per_minute || [];
		c.chart.update('none');
	}
});

// ---- numbers ------------------------------------------------------------------

// Messages per minute over the last minute, from the running totals (the
// stats come every 2 s); until a minute has passed, the last full minute of
// the trend, or the rate so far.
function perMinute(c, s, now) {
	c.samples.push({ t: now, total: s.frames_total });
	while (c.samples.length > 2 && now - c.samples[1].t >= 60000) c.samples.shift();
	const first = c.samples[0];
	const dt = now - first.t;
	if (dt >= 50000) return ((s.frames_total - first.total) * 60000) / dt;
	const lastFull = s.trend_per_minute?.[58];
	if (lastFull) return lastFull;
	if (dt >= 4000) return ((s.frames_total - first.total) * 60000) / dt;
	return s.frames_last_minute;
}

function setText(el, text) {
	if (el.textContent === text) return false;
	el.textContent = text;
	return true;
}

let last = null;

function show(stats) {
	last = stats;
	const now = Date.now();
	for (const tech of TECHS) {
		const s = stats.techs?.[tech];
		const c = cards[tech];
		if (!s) continue;
		const dev = s.devices_capped ? `≥ ${nf.format(s.devices)}` : nf.format(s.devices);
		setText(c.devices, dev);
		const changed = setText(c.rate, nf.format(Math.round(perMinute(c, s, now))));
		if (tech === 'lorawan')
			setText(c.airtime, `${nf1.format((stats.lora_airtime_ms_last_hour || 0) / 1000)} s`);
		if (changed && !reduceMotion) {
			// restart the pulse: one beat per update with traffic
			c.pulse.classList.remove('beat');
			void c.pulse.offsetWidth;
			c.pulse.classList.add('beat');
		}
		c.node.classList.toggle('quiet', !s.frames_last_minute && !s.devices);
		if (c.chart) {
			c.chart.data.datasets[0].data = s.trend_per_minute || [];
			c.chart.update();
		}
	}
	const time = new Date().toLocaleTimeString(lang === 'de' ? 'de-DE' : 'en-GB');
	$('updated').textContent = `${t.updated} ${time}`;
}

// ---- connection -------------------------------------------------------------

function onState(state) {
	document.body.dataset.conn = state;
	const text = state === 'open' ? t.live : state === 'connecting' ? t.connecting : t.reconnecting;
	setText($('status'), text);
}

const client = new LabgwClient({
	anonymous: true,
	backoff: { initialMs: 1000, maxMs: 30000 },
	pingIntervalMs: 10000,
	onState,
	onFrame(frame, topic) {
		if (frame && frame.type === 'stats' && topic.startsWith('labgw/v1/pub/') && frame.data)
			show(frame.data);
	},
	// a kiosk has nobody to read errors: it keeps trying, calmly
	onError() {},
});
client.subscribe('labgw/v1/pub/+/stats').catch(() => {});
client.connect();
// a refusal (4401/4403) closes the client; a kiosk tries again later
setInterval(() => {
	if (client.state === 'closed') client.connect();
}, 60000);
