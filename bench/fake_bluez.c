// SPDX-License-Identifier: MIT
/*
 * fake_bluez: a minimal stand-in for bluetoothd on a D-Bus bus, for
 * benchmarking a client of org.bluez (the ble radio module) without a
 * controller. It owns org.bluez and serves:
 *
 *   /                ObjectManager.GetManagedObjects: the adapter and the
 *                    devices announced so far;
 *   /org/bluez/hci0  Adapter1 {Address, Name, Alias, Powered, Discovering}
 *                    with StartDiscovery, StopDiscovery, SetDiscoveryFilter
 *                    and RemoveDevice (discovery sessions are per client, and
 *                    end when the client leaves the bus, as in bluetoothd).
 *
 * When the first discovery session starts it announces every device once
 * (InterfacesAdded, without RSSI: bluetoothd's cache, no advert heard yet),
 * waits `settle` seconds, prints {"event":"start",...} on stdout and then,
 * open-loop on a fixed schedule (advert k at t0 + k / rate, whatever the
 * client does), emits one Device1 PropertiesChanged per advert, as
 * bluetoothd does with DuplicateData on: RSSI, ManufacturerData and, for the
 * kinds that have it, ServiceData. Advert k comes from device k % devices.
 * Adverts that come due while no client discovers are skipped and counted.
 * A device removed with RemoveDevice comes back with InterfacesAdded
 * (carrying the advert) when it is next heard, as in bluetoothd.
 *
 * The mix of devices (by index): 20 % iBeacon, 15 % Eddystone (UID, URL,
 * TLM one advert in five), 35 % phones (Apple Nearby Info or Samsung
 * manufacturer data, random resolvable addresses), 15 % BTHome thermometers
 * (name, service data), 15 % heart-rate straps (name, service UUIDs, TX
 * power). Besides its own data every advert carries manufacturer data of
 * company 0xffff (reserved for tests): its sequence number k (u32 LE) and
 * the CLOCK_REALTIME µs it was sent at (u64 LE), so that a receiver can
 * count losses and duplicates and time the whole path.
 *
 * When done it prints one JSON object on stdout, then leaves (or, with -k,
 * stays on the bus until SIGTERM/SIGINT, so that the client sees bluetoothd
 * stay).
 *
 * usage: fake_bluez [-A BUS_ADDRESS] [-r ADVERTS_PER_S] [-d SECONDS]
 *                   [-n DEVICES] [-i ADAPTER] [-w SETTLE_S] [-t WAIT_S] [-k]
 * The bus is the system bus (DBUS_SYSTEM_BUS_ADDRESS) unless -A names one.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define BLUEZ	       "org.bluez"
#define IFACE_ADAPTER  "org.bluez.Adapter1"
#define IFACE_DEVICE   "org.bluez.Device1"
#define IFACE_PROPS    "org.freedesktop.DBus.Properties"
#define IFACE_OBJMGR   "org.freedesktop.DBus.ObjectManager"
#define DEVICES_MAX    (1u << 24) /* the index is in the low 3 address bytes */
#define SEQ_COMPANY    0xffff
#define SEQ_LEN	       12 /* u32 sequence number, u64 send time (µs) */
#define UUID_BASE_TAIL "-0000-1000-8000-00805f9b34fb"

enum kind { K_IBEACON, K_EDDYSTONE, K_PHONE, K_SENSOR, K_WEARABLE };
#define KINDS 5

static const char *const kind_names[KINDS] = {"ibeacon", "eddystone", "phone", "sensor",
					      "wearable"};

struct device {
	uint8_t addr[6];
	char addr_str[18];
	char path[64];
	enum kind kind;
	bool random;
	bool present; /* announced and not removed */
	bool heard;   /* has RSSI and data since its first advert */
	int16_t rssi;
	int16_t tx_power; /* -127: not advertised */
	char name[16];	  /* "": none */
	uint16_t company; /* phones: their own manufacturer data */
	uint8_t mfr[8];
	uint8_t mfr_len;
	uint16_t minor;	     /* iBeacon */
	uint8_t instance[6]; /* Eddystone UID */
	bool eddy_url;
	uint8_t pkt; /* BTHome packet id */
	int16_t temp, hum;
	uint32_t adv_count;
	/* the last advert, for GetManagedObjects and a return after removal */
	uint32_t last_seq;
	uint64_t last_us;
};

struct stats {
	uint64_t sent, send_errors, skipped, readded, removed, remove_unknown;
	uint64_t late_max_ns, late_over_1ms;
	uint64_t discovery_starts, discovery_stops, filters;
	uint64_t per_kind[KINDS];
};

struct fake {
	sd_event *ev;
	sd_bus *bus;
	sd_bus_track *sessions; /* clients with a discovery session */
	sd_event_source *timer;
	/* options */
	double rate, duration, settle, wait_s;
	uint32_t n_dev;
	bool keep;
	char adapter[32];
	char adapter_path[64];
	/* adapter */
	bool powered, discovering;
	char filter_transport[16];
	bool duplicate_data;
	/* devices and the load */
	struct device *dev;
	bool announced, started, done;
	uint64_t t0_ns, t_end_ns, total, next;
	uint64_t t0_realtime_us;
	uint32_t rng;
	struct stats st;
};

static uint64_t now_ns(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift: advert contents need only vary */
static uint32_t rnd(struct fake *f)
{
	f->rng ^= f->rng << 13;
	f->rng ^= f->rng >> 17;
	f->rng ^= f->rng << 5;
	return f->rng;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* ---- devices ------------------------------------------------------------ */

static enum kind kind_of(uint32_t i)
{
	unsigned k = (unsigned)(((uint64_t)i * 7919u + 13u) % 100u);

	return k < 20	? K_IBEACON
	       : k < 35 ? K_EDDYSTONE
	       : k < 70 ? K_PHONE
	       : k < 85 ? K_SENSOR
			: K_WEARABLE;
}

static void device_make(struct fake *f, struct device *d, uint32_t i)
{
	uint32_t h = rnd(f);

	d->kind = kind_of(i);
	d->addr[0] = (uint8_t)h;
	d->addr[1] = (uint8_t)(h >> 8);
	d->addr[2] = (uint8_t)(h >> 16);
	d->addr[3] = (uint8_t)(i >> 16);
	d->addr[4] = (uint8_t)(i >> 8);
	d->addr[5] = (uint8_t)i;
	d->random = true;
	d->tx_power = -127;
	switch (d->kind) {
	case K_PHONE:
		d->addr[0] = (uint8_t)(0x40 | (d->addr[0] & 0x3f)); /* resolvable private */
		break;
	case K_SENSOR:
		d->addr[0] = 0xa4; /* public, a Telink OUI */
		d->addr[1] = 0xc1;
		d->addr[2] = 0x38;
		d->random = false;
		break;
	case K_IBEACON:
	case K_EDDYSTONE:
	case K_WEARABLE:
		d->addr[0] |= 0xc0; /* random static */
		break;
	}
	snprintf(d->addr_str, sizeof(d->addr_str), "%02X:%02X:%02X:%02X:%02X:%02X", d->addr[0],
		 d->addr[1], d->addr[2], d->addr[3], d->addr[4], d->addr[5]);
	snprintf(d->path, sizeof(d->path), "%s/dev_%02X_%02X_%02X_%02X_%02X_%02X", f->adapter_path,
		 d->addr[0], d->addr[1], d->addr[2], d->addr[3], d->addr[4], d->addr[5]);
	d->rssi = (int16_t)(-95 + (int)(rnd(f) % 50));
	switch (d->kind) {
	case K_IBEACON:
		d->minor = (uint16_t)(100 + i);
		break;
	case K_EDDYSTONE:
		for (int k = 0; k < 6; k++)
			d->instance[k] = (uint8_t)rnd(f);
		d->eddy_url = rnd(f) & 1;
		break;
	case K_PHONE:
		if (rnd(f) % 4) {
			d->company = 0x004c; /* Apple Nearby Info */
			d->mfr[0] = 0x10;
			d->mfr[1] = 0x05;
			d->mfr_len = 7;
		} else {
			d->company = 0x0075; /* Samsung */
			d->mfr[0] = 0x42;
			d->mfr[1] = 0x04;
			d->mfr_len = 8;
		}
		for (int k = 2; k < d->mfr_len; k++)
			d->mfr[k] = (uint8_t)rnd(f);
		d->tx_power = rnd(f) & 1 ? 12 : -127;
		break;
	case K_SENSOR:
		snprintf(d->name, sizeof(d->name), "ATC_%02X%02X%02X", d->addr[3], d->addr[4],
			 d->addr[5]);
		d->temp = (int16_t)(1800 + (int)(rnd(f) % 800));
		d->hum = (int16_t)(3500 + (int)(rnd(f) % 3000));
		break;
	case K_WEARABLE:
		snprintf(d->name, sizeof(d->name), "HRM %02X%02X", d->addr[4], d->addr[5]);
		d->tx_power = (int16_t)(-4 + (int)(rnd(f) % 9));
		break;
		break;
	}
}

/* The device of an object path, or NULL. */
static struct device *device_by_path(struct fake *f, const char *path)
{
	unsigned a[6];
	size_t n = strlen(f->adapter_path);
	uint32_t i;

	if (strncmp(path, f->adapter_path, n) ||
	    sscanf(path + n, "/dev_%2X_%2X_%2X_%2X_%2X_%2X", &a[0], &a[1], &a[2], &a[3], &a[4],
		   &a[5]) != 6)
		return NULL;
	i = (uint32_t)(a[3] << 16 | a[4] << 8 | a[5]);
	if (i >= f->n_dev || strcmp(f->dev[i].path, path))
		return NULL;
	return &f->dev[i];
}

/* ---- writing properties ------------------------------------------------- */

static int append_bytes_variant(sd_bus_message *m, const void *p, size_t n)
{
	int rc = sd_bus_message_open_container(m, 'v', "ay");

	if (rc >= 0)
		rc = sd_bus_message_append_array(m, 'y', p, n);
	if (rc >= 0)
		rc = sd_bus_message_close_container(m);
	return rc;
}

/* {"Name", v} for a basic type */
#define APPEND_PROP(m, name, sig, ...) sd_bus_message_append(m, "{sv}", name, sig, __VA_ARGS__)

static int append_uuids(sd_bus_message *m, const struct device *d)
{
	switch (d->kind) {
	case K_EDDYSTONE:
		return APPEND_PROP(m, "UUIDs", "as", 1, "0000feaa" UUID_BASE_TAIL);
	case K_WEARABLE:
		return APPEND_PROP(m, "UUIDs", "as", 2, "0000180d" UUID_BASE_TAIL,
				   "0000180f" UUID_BASE_TAIL);
	case K_SENSOR:
		return APPEND_PROP(m, "UUIDs", "as", 1, "0000fcd2" UUID_BASE_TAIL);
	case K_IBEACON:
	case K_PHONE:
		break;
	}
	return APPEND_PROP(m, "UUIDs", "as", 0);
}

/* ManufacturerData a{qv}: the kind's own, then the sequence number */
static int append_mfr(sd_bus_message *m, const struct device *d, uint32_t seq, uint64_t sent_us)
{
	uint8_t own[23], tag[SEQ_LEN];
	size_t own_len = 0;
	uint16_t company = 0;
	int rc;

	switch (d->kind) {
	case K_IBEACON: {
		static const uint8_t uuid[16] = {0xe2, 0xc5, 0x6d, 0xb5, 0xdf, 0xfb, 0x48, 0xd2,
						 0xb0, 0x60, 0xd0, 0xf5, 0xa7, 0x10, 0x96, 0xe0};
		company = 0x004c;
		own[0] = 0x02; /* iBeacon type and length */
		own[1] = 0x15;
		memcpy(own + 2, uuid, 16);
		put_be(own + 18, 7, 2);
		put_be(own + 20, d->minor, 2);
		own[22] = (uint8_t)(int8_t)-59;
		own_len = 23;
		break;
	}
	case K_PHONE:
		company = d->company;
		memcpy(own, d->mfr, d->mfr_len);
		own_len = d->mfr_len;
		break;
	case K_EDDYSTONE:
	case K_SENSOR:
	case K_WEARABLE:
		break;
	}
	put_le(tag, seq, 4);
	put_le(tag + 4, sent_us, 8);
	if ((rc = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
	    (rc = sd_bus_message_append(m, "s", "ManufacturerData")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'v', "a{qv}")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'a', "{qv}")) < 0)
		return rc;
	if (own_len) {
		if ((rc = sd_bus_message_open_container(m, 'e', "qv")) < 0 ||
		    (rc = sd_bus_message_append(m, "q", company)) < 0 ||
		    (rc = append_bytes_variant(m, own, own_len)) < 0 ||
		    (rc = sd_bus_message_close_container(m)) < 0)
			return rc;
	}
	if ((rc = sd_bus_message_open_container(m, 'e', "qv")) < 0 ||
	    (rc = sd_bus_message_append(m, "q", (uint16_t)SEQ_COMPANY)) < 0 ||
	    (rc = append_bytes_variant(m, tag, sizeof(tag))) < 0 ||
	    (rc = sd_bus_message_close_container(m)) < 0)
		return rc;
	if ((rc = sd_bus_message_close_container(m)) < 0 ||
	    (rc = sd_bus_message_close_container(m)) < 0)
		return rc;
	return sd_bus_message_close_container(m);
}

/* ServiceData a{sv} for the kinds that send it (0: nothing appended) */
static int append_svc(struct fake *f, sd_bus_message *m, struct device *d)
{
	uint8_t s[20];
	size_t n = 0;
	const char *uuid = NULL;
	int rc;

	switch (d->kind) {
	case K_EDDYSTONE:
		uuid = "0000feaa" UUID_BASE_TAIL;
		if (rnd(f) % 5 == 0) {
			s[0] = 0x20; /* TLM, version 0 */
			s[1] = 0x00;
			put_be(s + 2, 2900 + rnd(f) % 200, 2);
			put_be(s + 4, (uint16_t)(21 * 256 + rnd(f) % 512), 2);
			put_be(s + 6, ++d->adv_count, 4);
			put_be(s + 10, d->adv_count * 3, 4);
			n = 14;
		} else if (d->eddy_url) {
			static const uint8_t url[] = {0x03, 'l', 'a', 'b', '-',	 'b',
						      'e',  'n', 'c', 'h', 0x07, 'r'};
			s[0] = 0x10;
			s[1] = (uint8_t)(int8_t)-20;
			memcpy(s + 2, url, sizeof(url));
			n = 2 + sizeof(url);
		} else {
			static const uint8_t ns[10] = {0xed, 0xd1, 0xeb, 0xea, 0xc0,
						       0x4e, 0x5d, 0xef, 0xa0, 0x17};
			s[0] = 0x00;
			s[1] = (uint8_t)(int8_t)-20;
			memcpy(s + 2, ns, 10);
			memcpy(s + 12, d->instance, 6);
			s[18] = s[19] = 0;
			n = 20;
		}
		break;
	case K_SENSOR:
		uuid = "0000fcd2" UUID_BASE_TAIL;
		d->temp = (int16_t)(d->temp + (int)(rnd(f) % 11) - 5);
		d->hum = (int16_t)(d->hum + (int)(rnd(f) % 41) - 20);
		s[0] = 0x40; /* BTHome v2, unencrypted */
		s[1] = 0x00;
		s[2] = ++d->pkt;
		s[3] = 0x01; /* battery % */
		s[4] = 87;
		s[5] = 0x02; /* temperature, 0.01 C */
		put_le(s + 6, (uint16_t)d->temp, 2);
		s[8] = 0x03; /* humidity, 0.01 % */
		put_le(s + 9, (uint16_t)d->hum, 2);
		n = 11;
		break;
	case K_IBEACON:
	case K_PHONE:
	case K_WEARABLE:
		return 0;
	}
	if ((rc = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
	    (rc = sd_bus_message_append(m, "s", "ServiceData")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'v', "a{sv}")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'a', "{sv}")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
	    (rc = sd_bus_message_append(m, "s", uuid)) < 0 ||
	    (rc = append_bytes_variant(m, s, n)) < 0)
		return rc;
	for (int i = 0; i < 4; i++)
		if ((rc = sd_bus_message_close_container(m)) < 0)
			return rc;
	return 0;
}

/* What changes with every advert: RSSI, manufacturer and service data. */
static int append_advert(struct fake *f, sd_bus_message *m, struct device *d)
{
	int rc;

	if (d->kind == K_PHONE && d->company == 0x004c && rnd(f) % 4 == 0)
		d->mfr[2] = (uint8_t)rnd(f); /* its status flags change */
	d->rssi = (int16_t)(d->rssi + (int)(rnd(f) % 7) - 3);
	if (d->rssi < -100)
		d->rssi = -100;
	if (d->rssi > -35)
		d->rssi = -35;
	if ((rc = APPEND_PROP(m, "RSSI", "n", d->rssi)) < 0 ||
	    (rc = append_mfr(m, d, d->last_seq, d->last_us)) < 0)
		return rc;
	return append_svc(f, m, d);
}

/* Device1's a{sv}: everything bluetoothd shows for a device; with the
 * advert (RSSI and data) once it was heard. */
static int append_device_props(struct fake *f, sd_bus_message *m, struct device *d, bool advert)
{
	static const uint8_t flags_le[1] = {0x06}, flags_phone[1] = {0x1a};
	int rc;

	if ((rc = sd_bus_message_open_container(m, 'a', "{sv}")) < 0 ||
	    (rc = APPEND_PROP(m, "Address", "s", d->addr_str)) < 0 ||
	    (rc = APPEND_PROP(m, "AddressType", "s", d->random ? "random" : "public")) < 0 ||
	    (rc = APPEND_PROP(m, "Alias", "s", d->name[0] ? d->name : d->addr_str)) < 0 ||
	    (rc = APPEND_PROP(m, "Paired", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "Bonded", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "Trusted", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "Blocked", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "LegacyPairing", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "Connected", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "ServicesResolved", "b", 0)) < 0 ||
	    (rc = APPEND_PROP(m, "Adapter", "o", f->adapter_path)) < 0 ||
	    (rc = append_uuids(m, d)) < 0)
		return rc;
	if (d->name[0] && (rc = APPEND_PROP(m, "Name", "s", d->name)) < 0)
		return rc;
	if (d->tx_power != -127 && (rc = APPEND_PROP(m, "TxPower", "n", d->tx_power)) < 0)
		return rc;
	if ((rc = sd_bus_message_open_container(m, 'e', "sv")) < 0 ||
	    (rc = sd_bus_message_append(m, "s", "AdvertisingFlags")) < 0 ||
	    (rc = append_bytes_variant(m, d->kind == K_PHONE ? flags_phone : flags_le, 1)) < 0 ||
	    (rc = sd_bus_message_close_container(m)) < 0)
		return rc;
	if (advert && (rc = append_advert(f, m, d)) < 0)
		return rc;
	return sd_bus_message_close_container(m);
}

/* One object's a{sa{sv}} */
static int append_device_object(struct fake *f, sd_bus_message *m, struct device *d, bool advert)
{
	int rc;

	if ((rc = sd_bus_message_open_container(m, 'a', "{sa{sv}}")) < 0 ||
	    (rc = sd_bus_message_open_container(m, 'e', "sa{sv}")) < 0 ||
	    (rc = sd_bus_message_append(m, "s", IFACE_DEVICE)) < 0 ||
	    (rc = append_device_props(f, m, d, advert)) < 0 ||
	    (rc = sd_bus_message_close_container(m)) < 0 ||
	    (rc = sd_bus_message_append(m, "{sa{sv}}", IFACE_PROPS, 0)) < 0)
		return rc;
	return sd_bus_message_close_container(m);
}

static int append_adapter_object(struct fake *f, sd_bus_message *m)
{
	return sd_bus_message_append(
		m, "a{sa{sv}}", 1, IFACE_ADAPTER, 7, "Address", "s", "00:1A:7D:DA:71:13",
		"AddressType", "s", "public", "Name", "s", "fake_bluez", "Alias", "s", "fake_bluez",
		"Powered", "b", f->powered, "Discovering", "b", f->discovering, "UUIDs", "as", 0);
}

static int send_interfaces_added(struct fake *f, struct device *d, bool advert)
{
	sd_bus_message *m = NULL;
	int rc = sd_bus_message_new_signal(f->bus, &m, "/", IFACE_OBJMGR, "InterfacesAdded");

	if (rc >= 0)
		rc = sd_bus_message_append(m, "o", d->path);
	if (rc >= 0)
		rc = append_device_object(f, m, d, advert);
	if (rc >= 0)
		rc = sd_bus_send(f->bus, m, NULL);
	sd_bus_message_unref(m);
	return rc;
}

static int emit_adapter_changed(struct fake *f, const char *prop, bool v)
{
	return sd_bus_emit_signal(f->bus, f->adapter_path, IFACE_PROPS, "PropertiesChanged",
				  "sa{sv}as", IFACE_ADAPTER, 1, prop, "b", v, 0);
}

/* ---- the load ----------------------------------------------------------- */

static uint64_t due_ns(const struct fake *f, uint64_t k)
{
	return f->t0_ns + (uint64_t)((double)k * 1e9 / f->rate);
}

static void send_advert(struct fake *f, uint64_t k)
{
	struct device *d = &f->dev[k % f->n_dev];
	sd_bus_message *m = NULL;
	int rc;

	d->last_seq = (uint32_t)k;
	d->last_us = now_ns(CLOCK_REALTIME) / 1000u;
	d->heard = true;
	f->st.per_kind[d->kind]++;
	if (!d->present) {
		/* removed by a client: found again, announced with the advert */
		d->present = true;
		f->st.readded++;
		rc = send_interfaces_added(f, d, true);
	} else {
		rc = sd_bus_message_new_signal(f->bus, &m, d->path, IFACE_PROPS,
					       "PropertiesChanged");
		if (rc >= 0)
			rc = sd_bus_message_append(m, "s", IFACE_DEVICE);
		if (rc >= 0)
			rc = sd_bus_message_open_container(m, 'a', "{sv}");
		if (rc >= 0)
			rc = append_advert(f, m, d);
		if (rc >= 0)
			rc = sd_bus_message_close_container(m);
		if (rc >= 0)
			rc = sd_bus_message_append(m, "as", 0);
		if (rc >= 0)
			rc = sd_bus_send(f->bus, m, NULL);
		sd_bus_message_unref(m);
	}
	if (rc < 0)
		f->st.send_errors++;
	else
		f->st.sent++;
}

static void finish(struct fake *f);

static int load_cb(sd_event_source *src, uint64_t usec, void *ud)
{
	struct fake *f = ud;
	uint64_t now = now_ns(CLOCK_MONOTONIC);

	while (f->next < f->total && due_ns(f, f->next) <= now) {
		uint64_t late = now - due_ns(f, f->next);

		if (late > f->st.late_max_ns)
			f->st.late_max_ns = late;
		if (late > 1000000)
			f->st.late_over_1ms++;
		if (f->discovering)
			send_advert(f, f->next);
		else
			f->st.skipped++;
		f->next++;
		now = now_ns(CLOCK_MONOTONIC);
	}
	if (f->next >= f->total) {
		f->t_end_ns = now;
		finish(f);
		return 0;
	}
	sd_event_source_set_time(src, due_ns(f, f->next) / 1000u);
	return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

static int start_cb(sd_event_source *src, uint64_t usec, void *ud)
{
	struct fake *f = ud;

	f->started = true;
	f->t0_ns = now_ns(CLOCK_MONOTONIC) + 1000000;
	f->t0_realtime_us = now_ns(CLOCK_REALTIME) / 1000u + 1000;
	printf("{\"event\":\"start\",\"t0_realtime_us\":%" PRIu64 ",\"devices\":%" PRIu32
	       ",\"target_adverts_per_s\":%.1f}\n",
	       f->t0_realtime_us, f->n_dev, f->rate);
	fflush(stdout);
	sd_event_source_set_time(src, f->t0_ns / 1000u);
	return sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
}

/* the one timer: the settle time after the announcement, then the load */
static int timer_cb(sd_event_source *src, uint64_t usec, void *ud)
{
	struct fake *f = ud;

	return f->started ? load_cb(src, usec, ud) : start_cb(src, usec, ud);
}

/* The first discovery session: the devices bluetoothd knows show up, and
 * the adverts begin after the settle time. */
static void announce(struct fake *f)
{
	if (f->announced)
		return;
	f->announced = true;
	for (uint32_t i = 0; i < f->n_dev; i++) {
		f->dev[i].present = true;
		if (send_interfaces_added(f, &f->dev[i], false) < 0)
			f->st.send_errors++;
	}
	sd_event_source_set_time(f->timer,
				 (now_ns(CLOCK_MONOTONIC) + (uint64_t)(f->settle * 1e9)) / 1000u);
	sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
}

static void finish(struct fake *f)
{
	double elapsed = f->started ? (double)(f->t_end_ns - f->t0_ns) / 1e9 : 0.0;

	f->done = true;
	sd_bus_flush(f->bus);
	printf("{\"target_adverts_per_s\":%.1f,\"duration_s\":%.3f,\"devices\":%" PRIu32
	       ",\"adverts_due\":%" PRIu64 ",\"adverts_sent\":%" PRIu64 ",\"send_errors\":%" PRIu64
	       ",\"skipped_not_discovering\":%" PRIu64 ",\"sent_adverts_per_s\":%.1f"
	       ",\"late_max_ms\":%.3f,\"late_over_1ms\":%" PRIu64 ",\"discovery_starts\":%" PRIu64
	       ",\"discovery_stops\":%" PRIu64 ",\"discovery_filters\":%" PRIu64
	       ",\"filter\":{\"transport\":\"%s\",\"duplicate_data\":%s}"
	       ",\"devices_removed\":%" PRIu64 ",\"remove_refused\":%" PRIu64
	       ",\"devices_readded\":%" PRIu64
	       ",\"seq_company\":\"%04x\",\"t0_realtime_us\":%" PRIu64 ",\"mix\":{",
	       f->rate, elapsed, f->n_dev, f->total, f->st.sent, f->st.send_errors, f->st.skipped,
	       elapsed > 0 ? (double)f->st.sent / elapsed : 0.0, (double)f->st.late_max_ns / 1e6,
	       f->st.late_over_1ms, f->st.discovery_starts, f->st.discovery_stops, f->st.filters,
	       f->filter_transport, f->duplicate_data ? "true" : "false", f->st.removed,
	       f->st.remove_unknown, f->st.readded, SEQ_COMPANY, f->t0_realtime_us);
	for (int k = 0; k < KINDS; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", kind_names[k], f->st.per_kind[k]);
	printf("}}\n");
	fflush(stdout);
	if (!f->keep)
		sd_event_exit(f->ev, f->st.send_errors ? 1 : 0);
}

static int wait_timeout_cb(sd_event_source *src, uint64_t usec, void *ud)
{
	struct fake *f = ud;

	if (f->announced)
		return 0;
	fprintf(stderr, "fake_bluez: nobody started discovery within %.0f s\n", f->wait_s);
	return sd_event_exit(f->ev, 1);
}

/* ---- Adapter1 ----------------------------------------------------------- */

static void discovery_set(struct fake *f, bool on)
{
	if (f->discovering == on)
		return;
	f->discovering = on;
	emit_adapter_changed(f, "Discovering", on);
	if (on)
		announce(f);
}

/* The last session's client left the bus or stopped. Returns 1: with 0,
 * sd-bus queues an empty track again and calls this at once, forever. */
static int sessions_empty(sd_bus_track *t, void *ud)
{
	struct fake *f = ud;

	if (sd_bus_track_count(t) == 0)
		discovery_set(f, false);
	return 1;
}

static int start_discovery(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	int rc;

	if (!f->powered)
		return sd_bus_error_set(err, "org.bluez.Error.NotReady", "Resource Not Ready");
	if (sd_bus_track_count_sender(f->sessions, m) > 0)
		return sd_bus_error_set(err, "org.bluez.Error.InProgress", "In Progress");
	if ((rc = sd_bus_track_add_sender(f->sessions, m)) < 0)
		return rc;
	f->st.discovery_starts++;
	rc = sd_bus_reply_method_return(m, NULL);
	discovery_set(f, true);
	return rc;
}

static int stop_discovery(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	int rc;

	if (sd_bus_track_count_sender(f->sessions, m) <= 0)
		return sd_bus_error_set(err, "org.bluez.Error.Failed", "No discovery started");
	sd_bus_track_remove_sender(f->sessions, m);
	f->st.discovery_stops++;
	rc = sd_bus_reply_method_return(m, NULL);
	if (sd_bus_track_count(f->sessions) == 0)
		discovery_set(f, false);
	return rc;
}

static int set_discovery_filter(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	int rc;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *k, *s;
		int b;

		if ((rc = sd_bus_message_read(m, "s", &k)) < 0)
			return rc;
		if (!strcmp(k, "Transport")) {
			if ((rc = sd_bus_message_read(m, "v", "s", &s)) < 0)
				return sd_bus_error_set(err, "org.bluez.Error.InvalidArguments",
							"Invalid arguments in method call");
			snprintf(f->filter_transport, sizeof(f->filter_transport), "%s", s);
		} else if (!strcmp(k, "DuplicateData")) {
			if ((rc = sd_bus_message_read(m, "v", "b", &b)) < 0)
				return sd_bus_error_set(err, "org.bluez.Error.InvalidArguments",
							"Invalid arguments in method call");
			f->duplicate_data = b;
		} else if ((rc = sd_bus_message_skip(m, "v")) < 0) {
			return rc;
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	f->st.filters++;
	return sd_bus_reply_method_return(m, NULL);
}

static int remove_device(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	const char *path;
	struct device *d;
	int rc = sd_bus_message_read(m, "o", &path);

	if (rc < 0)
		return rc;
	d = device_by_path(f, path);
	if (!d || !d->present) {
		if (f->st.remove_unknown++ < 5)
			fprintf(stderr, "fake_bluez: RemoveDevice of %s, which is not there\n",
				path);
		return sd_bus_error_set(err, "org.bluez.Error.DoesNotExist", "Does Not Exist");
	}
	d->present = false;
	f->st.removed++;
	rc = sd_bus_reply_method_return(m, NULL);
	sd_bus_emit_signal(f->bus, "/", IFACE_OBJMGR, "InterfacesRemoved", "oas", d->path, 2,
			   IFACE_DEVICE, IFACE_PROPS);
	return rc;
}

static int get_bool(sd_bus *bus, const char *path, const char *iface, const char *prop,
		    sd_bus_message *reply, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;

	return sd_bus_message_append(reply, "b",
				     !strcmp(prop, "Powered") ? f->powered : f->discovering);
}

static int get_str(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *reply, void *ud, sd_bus_error *err)
{
	if (!strcmp(prop, "Address"))
		return sd_bus_message_append(reply, "s", "00:1A:7D:DA:71:13");
	return sd_bus_message_append(reply, "s", "fake_bluez");
}

static int set_powered(sd_bus *bus, const char *path, const char *iface, const char *prop,
		       sd_bus_message *value, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	int b, rc = sd_bus_message_read(value, "b", &b);

	if (rc < 0)
		return rc;
	if (f->powered != !!b) {
		f->powered = b;
		emit_adapter_changed(f, "Powered", f->powered);
		if (!f->powered)
			discovery_set(f, false);
	}
	return 0;
}

static const sd_bus_vtable adapter_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("StartDiscovery", "", "", start_discovery, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("StopDiscovery", "", "", stop_discovery, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("SetDiscoveryFilter", "a{sv}", "", set_discovery_filter,
		      SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("RemoveDevice", "o", "", remove_device, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Address", "s", get_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_PROPERTY("Name", "s", get_str, 0, SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_WRITABLE_PROPERTY("Powered", "b", get_bool, set_powered, 0,
				 SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("Discovering", "b", get_bool, 0, 0),
	SD_BUS_VTABLE_END,
};

/* ---- ObjectManager at / ------------------------------------------------- */

static int root_cb(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct fake *f = ud;
	sd_bus_message *reply = NULL;
	int rc;

	if (!sd_bus_message_is_method_call(m, IFACE_OBJMGR, "GetManagedObjects"))
		return 0; /* not ours: sd-bus answers */
	rc = sd_bus_message_new_method_return(m, &reply);
	if (rc >= 0)
		rc = sd_bus_message_open_container(reply, 'a', "{oa{sa{sv}}}");
	if (rc >= 0)
		rc = sd_bus_message_open_container(reply, 'e', "oa{sa{sv}}");
	if (rc >= 0)
		rc = sd_bus_message_append(reply, "o", f->adapter_path);
	if (rc >= 0)
		rc = append_adapter_object(f, reply);
	if (rc >= 0)
		rc = sd_bus_message_close_container(reply);
	for (uint32_t i = 0; rc >= 0 && i < f->n_dev; i++) {
		struct device *d = &f->dev[i];

		if (!d->present)
			continue;
		rc = sd_bus_message_open_container(reply, 'e', "oa{sa{sv}}");
		if (rc >= 0)
			rc = sd_bus_message_append(reply, "o", d->path);
		if (rc >= 0)
			rc = append_device_object(f, reply, d, d->heard);
		if (rc >= 0)
			rc = sd_bus_message_close_container(reply);
	}
	if (rc >= 0)
		rc = sd_bus_message_close_container(reply);
	if (rc >= 0)
		rc = sd_bus_send(f->bus, reply, NULL);
	sd_bus_message_unref(reply);
	return rc < 0 ? rc : 1;
}

/* ---- main --------------------------------------------------------------- */

static int quit_cb(sd_event_source *src, const struct signalfd_siginfo *si, void *ud)
{
	struct fake *f = ud;

	if (!f->done) {
		/* interrupted: report what was done */
		f->t_end_ns = now_ns(CLOCK_MONOTONIC);
		f->keep = false;
		finish(f);
		return 0;
	}
	return sd_event_exit(f->ev, f->st.send_errors ? 1 : 0);
}

static void usage(void)
{
	fprintf(stderr, "usage: fake_bluez [-A BUS_ADDRESS] [-r ADVERTS_PER_S] [-d SECONDS] "
			"[-n DEVICES] [-i ADAPTER] [-w SETTLE_S] [-t WAIT_S] [-k]\n");
	exit(2);
}

static int bus_connect(const char *address, sd_bus **out)
{
	sd_bus *bus = NULL;
	int rc;

	if (!address)
		return sd_bus_open_system(out);
	if ((rc = sd_bus_new(&bus)) < 0)
		return rc;
	if ((rc = sd_bus_set_address(bus, address)) < 0 ||
	    (rc = sd_bus_set_bus_client(bus, 1)) < 0 || (rc = sd_bus_start(bus)) < 0) {
		sd_bus_unref(bus);
		return rc;
	}
	*out = bus;
	return 0;
}

int main(int argc, char **argv)
{
	static struct fake f = {.rate = 2000,
				.duration = 10,
				.settle = 0.5,
				.wait_s = 30,
				.n_dev = 1000,
				.powered = true,
				.filter_transport = "",
				.rng = 2463534242u};
	const char *address = NULL, *adapter = "hci0";
	sigset_t ss;
	int c, rc;

	while ((c = getopt(argc, argv, "A:r:d:n:i:w:t:k")) != -1) {
		switch (c) {
		case 'A':
			address = optarg;
			break;
		case 'r':
			f.rate = strtod(optarg, NULL);
			break;
		case 'd':
			f.duration = strtod(optarg, NULL);
			break;
		case 'n':
			f.n_dev = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			adapter = optarg;
			break;
		case 'w':
			f.settle = strtod(optarg, NULL);
			break;
		case 't':
			f.wait_s = strtod(optarg, NULL);
			break;
		case 'k':
			f.keep = true;
			break;
		default:
			usage();
		}
	}
	if (f.rate <= 0 || f.duration <= 0 || f.n_dev < 1 || f.n_dev > DEVICES_MAX ||
	    f.settle < 0 || f.wait_s <= 0 || !*adapter || strlen(adapter) >= sizeof(f.adapter) ||
	    strspn(adapter, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
		    strlen(adapter))
		usage();
	snprintf(f.adapter, sizeof(f.adapter), "%s", adapter);
	snprintf(f.adapter_path, sizeof(f.adapter_path), "/org/bluez/%s", adapter);
	f.total = (uint64_t)(f.rate * f.duration + 0.5);
	if (f.total > UINT32_MAX)
		usage(); /* the sequence number is 32 bits */
	f.dev = calloc(f.n_dev, sizeof(*f.dev));
	if (!f.dev) {
		fprintf(stderr, "fake_bluez: out of memory\n");
		return 1;
	}
	for (uint32_t i = 0; i < f.n_dev; i++)
		device_make(&f, &f.dev[i], i);

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	if ((rc = sd_event_default(&f.ev)) < 0 ||
	    (rc = sd_event_add_signal(f.ev, NULL, SIGTERM, quit_cb, &f)) < 0 ||
	    (rc = sd_event_add_signal(f.ev, NULL, SIGINT, quit_cb, &f)) < 0) {
		fprintf(stderr, "fake_bluez: event loop: %s\n", strerror(-rc));
		return 1;
	}
	if ((rc = bus_connect(address, &f.bus)) < 0) {
		fprintf(stderr, "fake_bluez: cannot connect to the bus: %s\n", strerror(-rc));
		return 1;
	}
	sd_bus_set_description(f.bus, "fake_bluez");
	rc = sd_bus_request_name(f.bus, BLUEZ, 0);
	if (rc < 0) {
		fprintf(stderr, "fake_bluez: cannot own %s: %s\n", BLUEZ, strerror(-rc));
		return 1;
	}
	if ((rc = sd_bus_track_new(f.bus, &f.sessions, sessions_empty, &f)) < 0 ||
	    (rc = sd_bus_add_object(f.bus, NULL, "/", root_cb, &f)) < 0 ||
	    (rc = sd_bus_add_object_vtable(f.bus, NULL, f.adapter_path, IFACE_ADAPTER,
					   adapter_vtable, &f)) < 0 ||
	    (rc = sd_bus_attach_event(f.bus, f.ev, SD_EVENT_PRIORITY_NORMAL)) < 0 ||
	    (rc = sd_event_add_time(f.ev, &f.timer, CLOCK_MONOTONIC, 0, 1, timer_cb, &f)) < 0 ||
	    (rc = sd_event_source_set_enabled(f.timer, SD_EVENT_OFF)) < 0 ||
	    (rc = sd_event_add_time_relative(f.ev, NULL, CLOCK_MONOTONIC,
					     (uint64_t)(f.wait_s * 1e6), 1000, wait_timeout_cb,
					     &f)) < 0) {
		fprintf(stderr, "fake_bluez: setting up: %s\n", strerror(-rc));
		return 1;
	}
	fprintf(stderr, "fake_bluez: %s on the bus, adapter %s, %" PRIu32 " devices\n", BLUEZ,
		f.adapter_path, f.n_dev);
	rc = sd_event_loop(f.ev);
	sd_bus_flush_close_unref(f.bus);
	sd_event_unref(f.ev);
	free(f.dev);
	return rc < 0 ? 1 : rc;
}
