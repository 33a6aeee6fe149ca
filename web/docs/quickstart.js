import { LabgwClient } from '/lib/labgw.js';

const params = new URLSearchParams(location.hash.slice(1));
const list = document.getElementById('frames');

const client = new LabgwClient({
	key: params.get('key'),
	onFrame(frame, topic) {
		const li = document.createElement('li');
		li.textContent = `${frame.time} ${frame.type} ${frame.dev?.id ?? '-'}`;
		li.dataset.topic = topic;
		list.prepend(li);
	},
	onError(err) {
		document.getElementById('status').textContent = `${err.code}: ${err.message}`;
	},
});
client.connect();
await client.subscribe(`labgw/v1/sbx/${params.get('sbx')}/rx/#`);
document.getElementById('status').textContent = 'subscribed';
