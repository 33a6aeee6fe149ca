// A reader of the plain subset of YAML that docs/asyncapi.yaml is written in
// (block mappings and sequences, one scalar per line: plain, 'single' or
// "double" quoted; comments; no anchors, flow collections or multi-line
// scalars), so that the page needs no library. tests/browser/docs.test.js
// checks that it reads the document as PyYAML does.

class YamlError extends Error {}

function lines(text) {
	const out = [];
	text.split('\n').forEach((raw, i) => {
		const line = raw.replace(/\r$/, '');
		const content = line.trimStart();
		if (!content || content.startsWith('#')) return;
		if (/\t/.test(line.slice(0, line.length - content.length))) throw new YamlError(`line ${i + 1}: tab indentation`);
		out.push({ indent: line.length - content.length, text: content.replace(/\s+#.*$/, (m) => (/['"]/.test(m) ? m : '')), no: i + 1 });
	});
	return out;
}

export function scalar(s) {
	s = s.trim();
	if (s.startsWith("'")) {
		if (!s.endsWith("'") || s.length < 2) throw new YamlError(`unterminated string ${s}`);
		return s.slice(1, -1).replace(/''/g, "'");
	}
	if (s.startsWith('"')) return JSON.parse(s);
	if (s === 'true' || s === 'True') return true;
	if (s === 'false' || s === 'False') return false;
	if (s === 'null' || s === '~' || s === '') return null;
	if (/^[-+]?(0|[1-9][0-9]*)$/.test(s)) return Number(s);
	if (/^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+][0-9]+)?$/.test(s)) return Number(s);
	if (s === '[]') return [];
	if (s === '{}') return {};
	return s;
}

function splitKey(text) {
	let key, rest;
	if (text.startsWith("'") || text.startsWith('"')) {
		const q = text[0];
		let i = 1;
		while (i < text.length && !(text[i] === q && text[i + 1] !== q)) i += text[i] === q ? 2 : 1;
		key = scalar(text.slice(0, i + 1));
		rest = text.slice(i + 1);
		if (!rest.startsWith(':')) return null;
		rest = rest.slice(1);
	} else {
		const m = /^([^'"][^:]*?):(?:\s+(.*))?$/.exec(text);
		if (!m) return null;
		key = m[1];
		rest = m[2] ?? '';
	}
	return [String(key), rest.trim()];
}

export function parseYaml(text) {
	const ls = lines(text);
	let i = 0;

	function block(indent) {
		return ls[i].text.startsWith('- ') || ls[i].text === '-' ? seq(indent) : map(indent);
	}

	function value(rest, indent) {
		if (rest !== '') return scalar(rest);
		if (i < ls.length && ls[i].indent > indent) return block(ls[i].indent);
		if (i < ls.length && ls[i].indent === indent && /^-( |$)/.test(ls[i].text)) return seq(indent);
		return null;
	}

	function map(indent) {
		const out = {};
		while (i < ls.length && ls[i].indent === indent && !/^-( |$)/.test(ls[i].text)) {
			const kv = splitKey(ls[i].text);
			if (!kv) throw new YamlError(`line ${ls[i].no}: expected "key: value"`);
			i++;
			out[kv[0]] = value(kv[1], indent);
		}
		if (i < ls.length && ls[i].indent > indent) throw new YamlError(`line ${ls[i].no}: unexpected indentation`);
		return out;
	}

	function seq(indent) {
		const out = [];
		while (i < ls.length && ls[i].indent === indent && /^-( |$)/.test(ls[i].text)) {
			const item = ls[i].text.slice(1).trimStart();
			if (item === '') {
				i++;
				out.push(value('', indent));
			} else if (splitKey(item)) {
				// "- key: value": a mapping whose first key sits after the dash
				ls[i] = { indent: indent + (ls[i].text.length - item.length), text: item, no: ls[i].no };
				out.push(map(ls[i].indent));
			} else {
				i++;
				out.push(scalar(item));
			}
		}
		return out;
	}

	if (!ls.length) return null;
	const doc = block(ls[0].indent);
	if (i < ls.length) throw new YamlError(`line ${ls[i].no}: unexpected content`);
	return doc;
}
