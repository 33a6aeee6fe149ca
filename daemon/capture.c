#include "capture.h"

#include <stdio.h>
#include <string.h>

#include "base64.h"
#include "pcapng.h"
#include "topic.h"

void capture_jsonl_append(struct strbuf *sb, const char *topic, const char *frame_json)
{
	strbuf_puts(sb, "{\"topic\":");
	strbuf_json_str(sb, topic);
	strbuf_puts(sb, ",\"frame\":");
	strbuf_puts(sb, frame_json);
	strbuf_puts(sb, "}\n");
}

static json_t *parse_line(const char *line, size_t n, size_t lineno, char *err, size_t errlen)
{
	if (n > CAPTURE_LINE_MAX) {
		snprintf(err, errlen, "line %zu: longer than %d bytes", lineno, CAPTURE_LINE_MAX);
		return NULL;
	}
	json_error_t je;
	json_t *o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		snprintf(err, errlen, "line %zu: not JSON: %s", lineno, je.text);
		return NULL;
	}
	const char *topic = json_string_value(json_object_get(o, "topic"));
	json_t *frame = json_object_get(o, "frame");
	const char *type = json_string_value(json_object_get(frame, "type"));
	const char *time = json_string_value(json_object_get(frame, "time"));
	int64_t us;
	if (!json_is_object(o) || !topic || !topic_name_valid(topic) || !json_is_object(frame) ||
	    !type || !time || time_parse_rfc3339(time, &us) < 0 || us < 0) {
		snprintf(err, errlen,
			 "line %zu: a record is {\"topic\": a topic name, \"frame\": a frame with "
			 "\"type\" and \"time\"}",
			 lineno);
		json_decref(o);
		return NULL;
	}
	json_t *rec = json_pack("{s:s,s:O,s:I}", "topic", topic, "frame", frame, "time_us",
				(json_int_t)us);
	json_decref(o);
	if (!rec)
		snprintf(err, errlen, "out of memory");
	return rec;
}

json_t *capture_jsonl_parse(const char *text, size_t len, size_t max_frames, char *err,
			    size_t errlen)
{
	json_t *arr = json_array();
	if (!arr) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	size_t lineno = 0;
	int64_t last_us = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		lineno++;
		size_t blank = 0;
		while (blank < n && (p[blank] == ' ' || p[blank] == '\t' || p[blank] == '\r'))
			blank++;
		if (blank < n) {
			if (json_array_size(arr) >= max_frames) {
				snprintf(err, errlen, "more than %zu frames", max_frames);
				goto fail;
			}
			json_t *rec = parse_line(p, n, lineno, err, errlen);
			if (!rec)
				goto fail;
			int64_t us = json_integer_value(json_object_get(rec, "time_us"));
			if (us < last_us) {
				snprintf(err, errlen, "line %zu: frames must be in time order",
					 lineno);
				json_decref(rec);
				goto fail;
			}
			last_us = us;
			json_array_append_new(arr, rec);
		}
		p += n + (nl ? 1 : 0);
	}
	return arr;
fail:
	json_decref(arr);
	return NULL;
}

void capture_pcapng_start(struct strbuf *sb)
{
	pcapng_section(sb, "labgwd");
	pcapng_interface(sb, PCAPNG_LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR, "ble");
	pcapng_interface(sb, PCAPNG_LINKTYPE_LORATAP, "lorawan");
}

static long decode_payload(const json_t *frame, uint8_t *out, size_t cap)
{
	const char *b64 = json_string_value(json_object_get(frame, "payload"));
	if (!b64)
		return -1;
	return base64_decode(b64, strlen(b64), out, cap);
}

int capture_pcapng_frame(struct strbuf *sb, const json_t *frame)
{
	const char *type = json_string_value(json_object_get(frame, "type"));
	const char *time = json_string_value(json_object_get(frame, "time"));
	const char *id = json_string_value(json_object_get(frame, "id"));
	int64_t us;
	if (!type || !time || time_parse_rfc3339(time, &us) < 0 || us < 0)
		return 0;
	const json_t *data = json_object_get(frame, "data");
	const json_t *sig = json_object_get(frame, "sig");
	uint8_t buf[512];
	if (!strcmp(type, "rx.ble.adv")) {
		const char *addr = json_string_value(json_object_get(data, "addr"));
		const char *atype = json_string_value(json_object_get(data, "addr_type"));
		long n = decode_payload(frame, buf, sizeof(buf));
		uint8_t pkt[PCAPNG_BLE_PHDR + PCAPNG_BLE_PKT_MAX];
		int len = n >= 0 ? pcapng_ble_adv(pkt + PCAPNG_BLE_PHDR, addr,
						  atype && strcmp(atype, "public"), buf, (size_t)n)
				 : -1;
		if (len < 0)
			return 0;
		json_int_t rssi = json_integer_value(json_object_get(sig, "rssi"));
		pcapng_ble_phdr(pkt, (int)(rssi < -1000 || rssi > 1000 ? 0 : rssi));
		pcapng_packet(sb, 0, (uint64_t)us, pkt, PCAPNG_BLE_PHDR + (size_t)len, id);
		return 1;
	}
	if (!strcmp(type, "rx.lorawan.uplink") || !strcmp(type, "rx.lorawan.join")) {
		uint8_t *phy = buf + PCAPNG_LORATAP_HDR;
		long n = decode_payload(frame, phy, sizeof(buf) - PCAPNG_LORATAP_HDR);
		if (n <= 0)
			return 0;
		json_int_t freq = json_integer_value(json_object_get(sig, "freq_hz"));
		json_int_t bw = json_integer_value(json_object_get(sig, "bw_hz"));
		json_int_t sf = json_integer_value(json_object_get(sig, "sf"));
		json_int_t rssi = json_integer_value(json_object_get(sig, "rssi"));
		double snr = json_number_value(json_object_get(sig, "snr"));
		if (freq < 0 || freq > UINT32_MAX || bw < 0 || bw > UINT32_MAX || sf < 0 ||
		    sf > 12 || rssi < -1000 || rssi > 1000)
			return 0;
		pcapng_loratap_header(buf, (uint32_t)freq, (uint32_t)bw, (unsigned)sf, (int)rssi,
				      snr);
		pcapng_packet(sb, 1, (uint64_t)us, buf, PCAPNG_LORATAP_HDR + (size_t)n, id);
		return 1;
	}
	return 0;
}
