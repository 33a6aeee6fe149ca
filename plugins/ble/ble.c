/* SPDX-License-Identifier: MIT */
/*
 * The ble radio module: a D-Bus client of bluetoothd (org.bluez) on the
 * system bus, through sd-bus driven by the daemon's loop (the bus fd through
 * the host's fd watch, sd-bus's timeout through a host timer).
 *
 * It follows bluetoothd's objects (ObjectManager InterfacesAdded/Removed,
 * PropertiesChanged), powers the configured adapter on, keeps one LE
 * discovery session with duplicate data on for every sandbox, and turns every
 * advertisement bluetoothd reports into an `rx.ble.adv` frame. BlueZ does not
 * hand the raw report over D-Bus: the module rebuilds the advertising data
 * from the properties (flags, name, TX power, appearance, UUIDs,
 * manufacturer and service data, and the other AD types bluetoothd passes
 * in AdvertisingData), then decodes that with the one AD parser (ad.c), so
 * `payload` is the advertising data as bluetoothd saw it.
 *
 * Devices claimed with an identity resolving key are followed across their
 * resolvable private addresses: only the keys sandboxes claimed are tried,
 * so nobody else's device is resolved.
 *
 * Advertising for a sandbox (a transmit without "dev", under the lease
 * `{radio}:adv`): an exported LEAdvertisement1 object registered with
 * LEAdvertisingManager1, ended when its time is up or the lease ends.
 *
 * Robustness: a watchdog restarts discovery when the adapter stops
 * discovering or no advert arrives for `discovery_stall`; bluetoothd going
 * away and coming back (NameOwnerChanged), the adapter disappearing and
 * reappearing, and the bus connection dropping are all recovered from
 * without a restart of the daemon. bluetoothd's device list is kept
 * bounded: devices nobody claimed and not heard for `device_ttl` are
 * removed from it, and beyond `max_devices` the longest unheard go first.
 *
 * Configuration ([radio NAME] with module = ble):
 *   adapter         = hci0   the controller (its object /org/bluez/hci0)
 *   power           = on     power the adapter on when it is off
 *   discovery_stall = 60s    restart discovery after this long without adverts
 *   device_ttl      = 3m     forget unclaimed devices not heard this long
 *   max_devices     = 2000   devices followed at most (bluetoothd's list too)
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include <labgw/plugin.h>

#include "ad.h"
#include "adv.h"
#include "base64.h"
#include "busloop.h"
#include "rpa.h"

#define BLUEZ		"org.bluez"
#define IFACE_ADAPTER	"org.bluez.Adapter1"
#define IFACE_DEVICE	"org.bluez.Device1"
#define IFACE_PROPS	"org.freedesktop.DBus.Properties"
#define IFACE_OBJMGR	"org.freedesktop.DBus.ObjectManager"
#define IFACE_ADVMGR	"org.bluez.LEAdvertisingManager1"
#define IFACE_ADV	"org.bluez.LEAdvertisement1"
#define IFACE_GATT_SVC	"org.bluez.GattService1"
#define IFACE_GATT_CHAR "org.bluez.GattCharacteristic1"
#define GATT_SVCS_MAX	256 /* services followed, over all connected devices */
#define GATT_CHARS_MAX	1024
#define GATT_VALUE_MAX	512
#define CONNECT_QUIET_MS                                                                           \
	10000 /* no discovery restart while a link comes up */ /* the longest attribute value      \
								  (Core Vol 3 Part F 3.2.9) */
#define PATH_MAX_LEN	   128
#define TICK_MS		   1000
#define RECONNECT_MS	   2000
#define SWEEP_EVERY_MS	   10000 /* at most; half of device_ttl when that is shorter */
#define DISCOVERY_GRACE_MS 5000	 /* a start that has not shown Discovering by then failed */
#define DEV_BUCKETS	   1024
#define DEV_MFR_MAX	   BLE_AD_MFR_MAX
#define DEV_SVC_MAX	   BLE_AD_SVC_MAX
#define DEV_OTHER_MAX	   8 /* other AD types from AdvertisingData */
#define DEV_BLOB_MAX	   BLE_AD_DATA_MAX
#define RPA_CACHE	   1024 /* direct-mapped by address */
#define IRKS_MAX	   4096 /* claims with keys followed at most */
#define ADV_LEGACY_MAX	   31	/* bytes of advertising data a sandbox may send */
#define ADV_DURATION_MAX   3600 /* s: an advertisement ends by then at the latest */
#define CALL_TIMEOUT_US	   (10 * 1000 * 1000)
/* after the bus had something, the next read waits this long: bluetoothd
 * sends one signal per advert, and so many adverts cost one wakeup and
 * leave as one WebSocket burst */
#define READ_HOLD_MS 5

struct blob {
	uint8_t len;
	uint8_t data[DEV_BLOB_MAX];
};

struct dev_mfr {
	uint16_t company;
	struct blob b;
};

struct dev_svc {
	struct ble_uuid uuid;
	struct blob b;
};

struct dev_other {
	uint8_t type;
	struct blob b;
};

/* What bluetoothd told about one device object. */
struct dev {
	struct dev *next;		 /* hash chain */
	struct dev *lru_prev, *lru_next; /* by last heard, oldest first */
	char path[PATH_MAX_LEN];
	char addr[BLE_ADDR_STR_LEN];
	bool random;
	bool has_rssi;
	int16_t rssi;
	bool has_tx_power;
	int16_t tx_power;
	bool has_name;
	char name[BLE_AD_NAME_MAX + 1];
	bool has_appearance;
	uint16_t appearance;
	bool has_flags;
	uint8_t flags;
	bool connected, paired;
	unsigned n_uuids;
	struct ble_uuid uuids[BLE_AD_UUIDS_MAX];
	unsigned n_mfr;
	struct dev_mfr mfr[DEV_MFR_MAX];
	unsigned n_svc;
	struct dev_svc svc[DEV_SVC_MAX];
	unsigned n_other;
	struct dev_other other[DEV_OTHER_MAX];
	uint64_t heard_ms; /* 0: not heard by us yet */
	bool removing;	   /* RemoveDevice sent */
	bool services_resolved;
	/* the identity address a claimed IRK resolved this address to */
	char identity[BLE_ADDR_STR_LEN];
	/* the sandbox that connected to it through us ("" none) */
	char gatt_sbx[64];
};

struct gatt_svc {
	char path[PATH_MAX_LEN];
	struct ble_uuid uuid;
	bool primary;
};

struct gatt_char {
	char path[PATH_MAX_LEN];
	char svc_path[PATH_MAX_LEN];
	struct ble_uuid uuid;
	char flags[128]; /* "read,notify" */
	bool notifying;
	bool ours; /* a sandbox asked for its notifications */
};

struct gatt_call;

/* A claimed identity resolving key, ready to resolve with. */
struct irk_ent {
	char identity[BLE_ADDR_STR_LEN];
	struct ble_irk *k;
};

/* What a resolvable private address resolved to, while the claims stay the
 * same: an index into irks, or -1 for nobody's claimed device. */
struct rpa_ent {
	bool used;
	uint8_t addr[BLE_ADDR_LEN];
	int irk;
};

struct ble;

/* An advertisement made on a sandbox's behalf: an exported
 * LEAdvertisement1 object that bluetoothd reads after RegisterAdvertisement. */
struct advert {
	struct advert *next;
	struct ble *s;
	char path[64];
	sd_bus_slot *slot; /* the exported object */
	sd_bus_slot *call; /* the pending Register/Unregister call */
	sd_bus_vtable vt[12];
	char sbx[64];
	char cmd_id[64];
	uint8_t ad[ADV_LEGACY_MAX];
	size_t ad_len;
	struct ble_ad parsed; /* points into ad */
	bool connectable;
	uint16_t timeout_s;
	uint64_t end_timer;
	bool registered, ending;
};

struct counters {
	uint64_t adverts, rpa_resolved, not_published, dbus_bad, discovery_starts,
		discovery_restarts, devices_removed, bluez_restarts, bus_reconnects, adv_registered,
		adv_failed, notifications;
};

struct ble {
	struct labgw_radio *r;
	const struct labgw_host *h;
	/* configuration */
	char adapter[32];
	char adapter_path[PATH_MAX_LEN];
	bool power;
	uint64_t stall_ms, ttl_ms;
	unsigned max_devices;
	struct busloop bl; /* the system bus */
	uint64_t tick;
	bool running;
	/* bluetoothd */
	bool objects_loaded;
	/* the adapter */
	bool adapter_present, powered, discovering;
	char adapter_addr[BLE_ADDR_STR_LEN];
	bool power_pending, discovery_pending;
	uint64_t discovery_started_ms; /* when we last asked to start */
	uint64_t last_advert_ms;
	uint64_t sweep_at_ms;
	/* discovery is left off until then: the kernel stops scanning to make
	 * a connection, and scanning again at once disturbs its set-up */
	uint64_t quiet_until_ms;
	char last_error[160];
	/* devices */
	struct dev *hash[DEV_BUCKETS];
	struct dev *lru_head, *lru_tail;
	unsigned n_dev;
	bool state_dirty;
	/* claimed identity resolving keys, reloaded when the claims change */
	bool irks_loaded;
	uint64_t irk_gen;
	struct irk_ent *irks;
	unsigned n_irks;
	struct rpa_ent rpa[RPA_CACHE];
	/* advertisements: the one on the air first, then those being ended */
	struct advert *adverts;
	unsigned adv_serial;
	/* GATT objects of connected devices, and operations in flight */
	struct gatt_svc svcs[GATT_SVCS_MAX];
	unsigned n_svcs;
	struct gatt_char chars[GATT_CHARS_MAX];
	unsigned n_chars;
	struct gatt_call *gcalls;
	struct counters cnt;
};

static uint64_t now_ms(struct ble *s)
{
	return s->h->now_ms(s->r);
}

static int publish_state(struct ble *s);
static int read_gatt_props(struct ble *s, sd_bus_message *m, const char *path, bool is_char,
			   struct blob *value, bool *has_value);
static void gatt_forget(struct ble *s, const char *path);
static struct gatt_char *chr_find(struct ble *s, const char *path);
static void publish_notify(struct ble *s, struct gatt_char *c, const struct blob *value);
static void gatt_close(struct ble *s, struct dev *d, const char *why);
static void gcall_fail_all(struct ble *s, const char *why);

static void note_error(struct ble *s, const char *what, const sd_bus_error *e, int rc)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", what,
		 e && e->message ? e->message : strerror(rc < 0 ? -rc : rc));
	s->h->log(s->r, LABGW_LOG_WARNING, "%s", s->last_error);
	s->state_dirty = true;
}

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return err;
}

/* ---- devices ------------------------------------------------------------ */

static unsigned path_hash(const char *p)
{
	uint32_t h = 2166136261u;

	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % DEV_BUCKETS;
}

static struct dev *dev_find(struct ble *s, const char *path)
{
	for (struct dev *d = s->hash[path_hash(path)]; d; d = d->next)
		if (!strcmp(d->path, path))
			return d;
	return NULL;
}

static void lru_unlink(struct ble *s, struct dev *d)
{
	if (d->lru_prev)
		d->lru_prev->lru_next = d->lru_next;
	else if (s->lru_head == d)
		s->lru_head = d->lru_next;
	if (d->lru_next)
		d->lru_next->lru_prev = d->lru_prev;
	else if (s->lru_tail == d)
		s->lru_tail = d->lru_prev;
	d->lru_prev = d->lru_next = NULL;
}

static void lru_push(struct ble *s, struct dev *d)
{
	d->lru_prev = s->lru_tail;
	d->lru_next = NULL;
	if (s->lru_tail)
		s->lru_tail->lru_next = d;
	else
		s->lru_head = d;
	s->lru_tail = d;
}

static void gatt_forget_under(struct ble *s, const char *dpath);

static void dev_free(struct ble *s, struct dev *d)
{
	gatt_forget_under(s, d->path);
	struct dev **pp = &s->hash[path_hash(d->path)];

	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp)
		*pp = d->next;
	lru_unlink(s, d);
	s->n_dev--;
	free(d);
	s->state_dirty = true;
}

/* every device is on the LRU list, so this empties the hash too */
static void dev_clear_all(struct ble *s)
{
	while (s->lru_head)
		dev_free(s, s->lru_head);
}

/* A device object under our adapter: /org/bluez/hci0/dev_XX_XX_... */
static bool our_device_path(const struct ble *s, const char *path)
{
	size_t n = strlen(s->adapter_path);

	return !strncmp(path, s->adapter_path, n) && !strncmp(path + n, "/dev_", 5) &&
	       strlen(path) < PATH_MAX_LEN && !strchr(path + n + 1, '/');
}

/* A GATT object under one of our device objects */
static bool our_gatt_path(const struct ble *s, const char *path)
{
	size_t n = strlen(s->adapter_path);
	const char *p = path + n;

	return !strncmp(path, s->adapter_path, n) && !strncmp(p, "/dev_", 5) &&
	       strchr(p + 1, '/') && strlen(path) < PATH_MAX_LEN;
}

static void remove_device(struct ble *s, struct dev *d);

static struct dev *dev_get(struct ble *s, const char *path)
{
	struct dev *d = dev_find(s, path);
	unsigned b;

	if (d)
		return d;
	if (s->n_dev >= s->max_devices && s->lru_head) {
		/* the longest unheard goes, also from bluetoothd's list */
		struct dev *old = s->lru_head;

		remove_device(s, old);
		dev_free(s, old);
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	snprintf(d->path, sizeof(d->path), "%s", path);
	b = path_hash(path);
	d->next = s->hash[b];
	s->hash[b] = d;
	lru_push(s, d);
	s->n_dev++;
	s->state_dirty = true;
	return d;
}

/* ---- reading bluetoothd's properties ----------------------------------- */

/* Reads an `ay` (at the current position) into a blob. */
static int read_bytes(sd_bus_message *m, struct blob *b)
{
	const void *p;
	size_t n;
	int rc = sd_bus_message_read_array(m, 'y', &p, &n);

	if (rc < 0)
		return rc;
	if (n > DEV_BLOB_MAX)
		return -E2BIG;
	b->len = (uint8_t)n;
	if (n)
		memcpy(b->data, p, n);
	return 0;
}

/* Enters a variant whose contents must be `sig`; -EBADMSG when it is not. */
static int enter_variant(sd_bus_message *m, const char *sig)
{
	const char *contents;
	char type;
	int rc = sd_bus_message_peek_type(m, &type, &contents);

	if (rc < 0)
		return rc;
	if (type != 'v' || !contents || strcmp(contents, sig))
		return -EBADMSG;
	return sd_bus_message_enter_container(m, 'v', sig);
}

static int read_variant_basic(sd_bus_message *m, char type, void *out)
{
	char sig[2] = {type, 0};
	int rc = enter_variant(m, sig);

	if (rc < 0)
		return rc;
	rc = sd_bus_message_read_basic(m, type, out);
	if (rc < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

union map_key {
	uint16_t q;
	const char *s;
	uint8_t y;
};

typedef void (*map_entry_fn)(struct dev *d, const union map_key *k, const struct blob *b);

/* A map of byte arrays in a variant, a{Kv} with v: ay, each entry to fn:
 * ManufacturerData a{qv}, ServiceData a{sv}, AdvertisingData a{yv}. */
static int read_bytes_map(sd_bus_message *m, char ktype, struct dev *d, map_entry_fn fn)
{
	char vsig[] = {'a', '{', ktype, 'v', '}', 0};
	int rc = enter_variant(m, vsig);

	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_enter_container(m, 'a', vsig + 1)) < 0)
		return rc;
	vsig[4] = 0; /* "a{Kv" + 2: the entry "Kv" */
	while ((rc = sd_bus_message_enter_container(m, 'e', vsig + 2)) > 0) {
		union map_key k;
		struct blob b;

		if ((rc = sd_bus_message_read_basic(m, ktype, &k)) < 0 ||
		    (rc = enter_variant(m, "ay")) < 0 || (rc = read_bytes(m, &b)) < 0 ||
		    (rc = sd_bus_message_exit_container(m)) < 0 ||
		    (rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
		fn(d, &k, &b);
	}
	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_exit_container(m)) < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

static void add_mfr(struct dev *d, const union map_key *k, const struct blob *b)
{
	if (d->n_mfr < DEV_MFR_MAX)
		d->mfr[d->n_mfr++] = (struct dev_mfr){.company = k->q, .b = *b};
}

static void add_svc(struct dev *d, const union map_key *k, const struct blob *b)
{
	struct ble_uuid u;

	if (d->n_svc < DEV_SVC_MAX && ble_uuid_parse(k->s, &u))
		d->svc[d->n_svc++] = (struct dev_svc){.uuid = u, .b = *b};
}

/* AdvertisingData: the AD types bluetoothd does not map to properties */
static void add_other(struct dev *d, const union map_key *k, const struct blob *b)
{
	if (d->n_other < DEV_OTHER_MAX)
		d->other[d->n_other++] = (struct dev_other){.type = k->y, .b = *b};
}

static int read_mfr(sd_bus_message *m, struct dev *d)
{
	d->n_mfr = 0;
	return read_bytes_map(m, 'q', d, add_mfr);
}

static int read_svc(sd_bus_message *m, struct dev *d)
{
	d->n_svc = 0;
	return read_bytes_map(m, 's', d, add_svc);
}

static int read_other(sd_bus_message *m, struct dev *d)
{
	d->n_other = 0;
	return read_bytes_map(m, 'y', d, add_other);
}

static int read_uuids(sd_bus_message *m, struct dev *d)
{
	const char *u;
	int rc = enter_variant(m, "as");

	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_enter_container(m, 'a', "s")) < 0)
		return rc;
	d->n_uuids = 0;
	while ((rc = sd_bus_message_read_basic(m, 's', &u)) > 0) {
		if (d->n_uuids < BLE_AD_UUIDS_MAX && ble_uuid_parse(u, &d->uuids[d->n_uuids]))
			d->n_uuids++;
	}
	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_exit_container(m)) < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

struct prop_sig {
	const char *name, *sig;
};

/* Device1 properties read, with their types in BlueZ's doc/device-api.txt */
static const struct prop_sig device_props[] = {
	{"Address", "s"},
	{"AddressType", "s"},
	{"Name", "s"},
	{"RSSI", "n"},
	{"TxPower", "n"},
	{"Appearance", "q"},
	{"Connected", "b"},
	{"Paired", "b"},
	{"ServicesResolved", "b"},
	{"UUIDs", "as"},
	{"ManufacturerData", "a{qv}"},
	{"ServiceData", "a{sv}"},
	{"AdvertisingFlags", "ay"},
	{"AdvertisingData", "a{yv}"},
	{NULL, NULL},
};

static const struct prop_sig adapter_props[] = {
	{"Powered", "b"},
	{"Discovering", "b"},
	{"Address", "s"},
	{NULL, NULL},
};

/*
 * Whether the variant next in m holds what `key` should hold: 1 yes (or a
 * key we do not read: the caller skips it), 0 a known key with another
 * type (counted), or a negative errno.
 */
static int variant_expected(struct ble *s, sd_bus_message *m, const struct prop_sig *table,
			    const char *key)
{
	const char *contents;
	char type;
	int rc;

	for (; table->name; table++) {
		if (strcmp(table->name, key))
			continue;
		rc = sd_bus_message_peek_type(m, &type, &contents);
		if (rc < 0)
			return rc;
		if (type == 'v' && contents && !strcmp(contents, table->sig))
			return 1;
		s->cnt.dbus_bad++;
		s->state_dirty = true;
		s->h->log(s->r, LABGW_LOG_DEBUG, "property %s of type %s, expected %s: ignored",
			  key, contents ? contents : "?", table->sig);
		return 0;
	}
	return 1;
}

/* Which properties mark a new observation of the device. */
enum {
	SEEN_ADV = 1, /* an advertisement's content or its RSSI */
};

/*
 * Reads a{sv} of Device1 properties into d; returns SEEN_ADV when the
 * changes amount to an advertisement heard, 0 otherwise, or a negative
 * errno for a message that does not parse (the device keeps what was read).
 * A property of another type than documented is skipped and counted.
 */
static int read_device_props(struct ble *s, sd_bus_message *m, struct dev *d)
{
	int rc, seen = 0;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *k, *str;
		int16_t n16;
		uint16_t q;
		int b;

		if ((rc = sd_bus_message_read_basic(m, 's', &k)) < 0)
			return rc;
		if ((rc = variant_expected(s, m, device_props, k)) < 0)
			return rc;
		if (rc == 0) {
			if ((rc = sd_bus_message_skip(m, "v")) < 0)
				return rc;
		} else if (!strcmp(k, "Address")) {
			uint8_t a[BLE_ADDR_LEN];

			if ((rc = read_variant_basic(m, 's', &str)) < 0)
				return rc;
			if (ble_addr_parse(str, a))
				ble_addr_str(a, d->addr);
		} else if (!strcmp(k, "AddressType")) {
			if ((rc = read_variant_basic(m, 's', &str)) < 0)
				return rc;
			d->random = !strcmp(str, "random");
		} else if (!strcmp(k, "Name")) {
			if ((rc = read_variant_basic(m, 's', &str)) < 0)
				return rc;
			d->has_name = strlen(str) <= BLE_AD_NAME_MAX;
			if (d->has_name)
				snprintf(d->name, sizeof(d->name), "%s", str);
			seen = SEEN_ADV;
		} else if (!strcmp(k, "RSSI")) {
			if ((rc = read_variant_basic(m, 'n', &n16)) < 0)
				return rc;
			d->has_rssi = true;
			d->rssi = n16;
			seen = SEEN_ADV;
		} else if (!strcmp(k, "TxPower")) {
			if ((rc = read_variant_basic(m, 'n', &n16)) < 0)
				return rc;
			d->has_tx_power = n16 >= -127 && n16 <= 127;
			d->tx_power = n16;
			seen = SEEN_ADV;
		} else if (!strcmp(k, "Appearance")) {
			if ((rc = read_variant_basic(m, 'q', &q)) < 0)
				return rc;
			d->has_appearance = true;
			d->appearance = q;
		} else if (!strcmp(k, "Connected")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			d->connected = b;
		} else if (!strcmp(k, "Paired")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			d->paired = b;
		} else if (!strcmp(k, "ServicesResolved")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			d->services_resolved = b;
		} else if (!strcmp(k, "UUIDs")) {
			if ((rc = read_uuids(m, d)) < 0)
				return rc;
		} else if (!strcmp(k, "ManufacturerData")) {
			if ((rc = read_mfr(m, d)) < 0)
				return rc;
			seen = SEEN_ADV;
		} else if (!strcmp(k, "ServiceData")) {
			if ((rc = read_svc(m, d)) < 0)
				return rc;
			seen = SEEN_ADV;
		} else if (!strcmp(k, "AdvertisingFlags")) {
			struct blob fl;

			if ((rc = enter_variant(m, "ay")) < 0 || (rc = read_bytes(m, &fl)) < 0 ||
			    (rc = sd_bus_message_exit_container(m)) < 0)
				return rc;
			d->has_flags = fl.len > 0;
			d->flags = fl.len ? fl.data[0] : 0;
			seen = SEEN_ADV;
		} else if (!strcmp(k, "AdvertisingData")) {
			if ((rc = read_other(m, d)) < 0)
				return rc;
			seen = SEEN_ADV;
		} else if ((rc = sd_bus_message_skip(m, "v")) < 0) {
			return rc;
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_exit_container(m)) < 0)
		return rc;
	return seen;
}

/* Properties that went away (PropertiesChanged's invalidated list). */
static int read_invalidated(sd_bus_message *m, struct dev *d)
{
	const char *k;
	int rc = sd_bus_message_enter_container(m, 'a', "s");

	if (rc < 0)
		return rc;
	while ((rc = sd_bus_message_read_basic(m, 's', &k)) > 0) {
		if (!strcmp(k, "RSSI"))
			d->has_rssi = false;
		else if (!strcmp(k, "TxPower"))
			d->has_tx_power = false;
		else if (!strcmp(k, "ManufacturerData"))
			d->n_mfr = 0;
		else if (!strcmp(k, "ServiceData"))
			d->n_svc = 0;
		else if (!strcmp(k, "AdvertisingData"))
			d->n_other = 0;
	}
	if (rc < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

/* ---- resolvable private addresses --------------------------------------- */

static void irks_free(struct ble *s)
{
	for (unsigned i = 0; i < s->n_irks; i++)
		ble_irk_free(s->irks[i].k);
	free(s->irks);
	s->irks = NULL;
	s->n_irks = 0;
	memset(s->rpa, 0, sizeof(s->rpa));
}

static void irk_collect(void *ud, const char *identity, const uint8_t irk[16])
{
	struct ble *s = ud;
	struct irk_ent *e;

	if (s->n_irks >= IRKS_MAX || strlen(identity) >= BLE_ADDR_STR_LEN)
		return;
	if (!(s->n_irks & 15)) {
		struct irk_ent *n = realloc(s->irks, (s->n_irks + 16) * sizeof(*n));

		if (!n)
			return;
		s->irks = n;
	}
	e = &s->irks[s->n_irks];
	e->k = ble_irk_new(irk);
	if (!e->k)
		return;
	snprintf(e->identity, sizeof(e->identity), "%s", identity);
	s->n_irks++;
}

/* The identity address of a claimed device that `addr` (an RPA) belongs
 * to, or NULL. Only keys that sandboxes claimed are tried: nobody else's
 * device is resolved. */
static const char *rpa_identity(struct ble *s, const uint8_t addr[BLE_ADDR_LEN])
{
	uint64_t gen = s->h->ble_irks(s->r, NULL, NULL);
	struct rpa_ent *c;
	unsigned slot;

	if (!s->irks_loaded || gen != s->irk_gen) {
		irks_free(s);
		s->irk_gen = s->h->ble_irks(s->r, irk_collect, s);
		s->irks_loaded = true;
	}
	if (!s->n_irks)
		return NULL;
	slot = ((unsigned)addr[3] << 16 | (unsigned)addr[4] << 8 | addr[5]) % RPA_CACHE;
	c = &s->rpa[slot];
	if (!c->used || memcmp(c->addr, addr, BLE_ADDR_LEN)) {
		c->used = true;
		memcpy(c->addr, addr, BLE_ADDR_LEN);
		c->irk = -1;
		for (unsigned i = 0; i < s->n_irks; i++) {
			if (ble_irk_resolve(s->irks[i].k, addr)) {
				c->irk = (int)i;
				break;
			}
		}
	}
	return c->irk >= 0 ? s->irks[c->irk].identity : NULL;
}

/* ---- advertisements as frames ------------------------------------------ */

/* The advertising data bluetoothd's view of the device amounts to. */
static size_t dev_ad(const struct dev *d, uint8_t *buf, size_t cap)
{
	struct ble_ad_builder b;

	ble_ad_builder_init(&b, buf, cap);
	/* each add writes all or nothing: what does not fit is left out */
	if (d->has_flags)
		ble_ad_add_flags(&b, d->flags);
	if (d->has_name)
		ble_ad_add_name(&b, d->name);
	if (d->has_tx_power)
		ble_ad_add_tx_power(&b, d->tx_power);
	if (d->has_appearance)
		ble_ad_add_appearance(&b, d->appearance);
	if (d->n_uuids)
		ble_ad_add_uuids(&b, d->uuids, d->n_uuids);
	for (unsigned i = 0; i < d->n_svc; i++)
		ble_ad_add_svc(&b, &d->svc[i].uuid, d->svc[i].b.data, d->svc[i].b.len);
	for (unsigned i = 0; i < d->n_mfr; i++)
		ble_ad_add_mfr(&b, d->mfr[i].company, d->mfr[i].b.data, d->mfr[i].b.len);
	for (unsigned i = 0; i < d->n_other; i++)
		ble_ad_add(&b, d->other[i].type, d->other[i].b.data, d->other[i].b.len);
	return b.len;
}

static void publish_adv(struct ble *s, struct dev *d)
{
	uint8_t buf[BLE_AD_MAX];
	struct ble_ad ad;
	struct ble_adv_meta meta = {
		.addr = d->addr,
		.random = d->random,
		.has_rssi = d->has_rssi,
		.rssi = d->rssi,
	};
	struct labgw_frame *f;
	size_t n;
	int rc;

	if (!d->addr[0]) {
		/* a device we met through a change only (we had let it go
		 * while bluetoothd still had it): its path names it */
		const char *p = strrchr(d->path, '/');
		char a[BLE_ADDR_STR_LEN];
		uint8_t b[BLE_ADDR_LEN];

		if (p && strlen(p) == 5 + 17 && !strncmp(p, "/dev_", 5)) {
			snprintf(a, sizeof(a), "%s", p + 5);
			for (char *c = a; *c; c++)
				if (*c == '_')
					*c = ':';
			if (ble_addr_parse(a, b))
				ble_addr_str(b, d->addr);
		}
		if (!d->addr[0]) {
			s->cnt.not_published++;
			return;
		}
	}
	if (d->random) {
		uint8_t a[BLE_ADDR_LEN];

		if (ble_addr_parse(d->addr, a) && ble_rpa_is_resolvable(a)) {
			meta.identity = rpa_identity(s, a);
			if (meta.identity)
				s->cnt.rpa_resolved++;
		}
		snprintf(d->identity, sizeof(d->identity), "%s",
			 meta.identity ? meta.identity : "");
	}
	d->heard_ms = now_ms(s);
	s->last_advert_ms = d->heard_ms;
	lru_unlink(s, d);
	lru_push(s, d);
	s->cnt.adverts++;
	s->state_dirty = true; /* counters: at most one state a second */
	n = dev_ad(d, buf, sizeof(buf));
	if (ble_ad_parse(buf, n, &ad) < 0) {
		s->cnt.not_published++;
		return;
	}
	f = s->h->frame_new(s->r, LABGW_TECH_BLE, "rx.ble.adv");
	if (!f) {
		s->cnt.not_published++;
		return;
	}
	rc = ble_adv_fields(s->h, f, &meta, &ad);
	if (rc == 0 && n)
		rc = s->h->frame_set_payload(f, buf, n);
	if (rc < 0) {
		s->cnt.not_published++;
		s->h->log(s->r, LABGW_LOG_DEBUG, "advert of %s not published: %s", d->addr,
			  strerror(-rc));
		s->h->frame_discard(f);
		return;
	}
	if (s->h->publish(f) < 0)
		s->cnt.not_published++;
}

/* ---- the adapter -------------------------------------------------------- */

static void adv_free_all(struct ble *s);

static void adapter_reset(struct ble *s)
{
	s->adapter_present = s->powered = s->discovering = false;
	s->power_pending = s->discovery_pending = false;
	s->adapter_addr[0] = 0;
	dev_clear_all(s);
	s->n_svcs = s->n_chars = 0;
	/* an adapter that went away took its advertisements along */
	adv_free_all(s);
	s->state_dirty = true;
}

static int read_adapter_props(struct ble *s, sd_bus_message *m)
{
	int rc;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *k, *str;
		int b;

		if ((rc = sd_bus_message_read_basic(m, 's', &k)) < 0)
			return rc;
		if ((rc = variant_expected(s, m, adapter_props, k)) < 0)
			return rc;
		if (rc == 0) {
			if ((rc = sd_bus_message_skip(m, "v")) < 0)
				return rc;
		} else if (!strcmp(k, "Powered")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			s->powered = b;
		} else if (!strcmp(k, "Discovering")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			s->discovering = b;
		} else if (!strcmp(k, "Address")) {
			uint8_t a[BLE_ADDR_LEN];

			if ((rc = read_variant_basic(m, 's', &str)) < 0)
				return rc;
			if (ble_addr_parse(str, a))
				ble_addr_str(a, s->adapter_addr);
		} else if ((rc = sd_bus_message_skip(m, "v")) < 0) {
			return rc;
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	s->state_dirty = true;
	return sd_bus_message_exit_container(m);
}

static int power_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;

	s->power_pending = false;
	if (sd_bus_message_is_method_error(m, NULL))
		note_error(s, "powering the adapter on", sd_bus_message_get_error(m), 0);
	return 0;
}

static int discovery_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	s->discovery_pending = false;
	/* InProgress: our session is already on */
	if (e && !sd_bus_error_has_name(e, "org.bluez.Error.InProgress"))
		note_error(s, "starting discovery", e, 0);
	return 0;
}

static int filter_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;

	/* a bluetoothd without the filter still discovers; say so and go on */
	if (sd_bus_message_is_method_error(m, NULL))
		note_error(s, "setting the discovery filter", sd_bus_message_get_error(m), 0);
	return 0;
}

/* An asynchronous call of org.bluez; `types` and the rest as for
 * sd_bus_message_append. */
static void call(struct ble *s, const char *path, const char *iface, const char *method,
		 sd_bus_message_handler_t cb, const char *what, const char *types, ...)
{
	sd_bus_message *m = NULL;
	va_list ap;
	int rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, path, iface, method);

	if (rc >= 0 && types) {
		va_start(ap, types);
		rc = sd_bus_message_appendv(m, types, ap);
		va_end(ap);
	}
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, NULL, m, cb, s, CALL_TIMEOUT_US);
	sd_bus_message_unref(m);
	if (rc < 0)
		note_error(s, what, NULL, rc);
}

static void discovery_start(struct ble *s)
{
	sd_bus_message *m = NULL;
	int rc;

	if (s->discovery_pending)
		return;
	/* LE only, every advert reported (not only changed ones) */
	rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, s->adapter_path, IFACE_ADAPTER,
					    "SetDiscoveryFilter");
	if (rc >= 0)
		rc = sd_bus_message_append(m, "a{sv}", 2, "Transport", "s", "le", "DuplicateData",
					   "b", 1);
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, NULL, m, filter_done, s, CALL_TIMEOUT_US);
	sd_bus_message_unref(m);
	if (rc < 0)
		note_error(s, "setting the discovery filter", NULL, rc);
	s->discovery_pending = true;
	s->discovery_started_ms = now_ms(s);
	s->cnt.discovery_starts++;
	call(s, s->adapter_path, IFACE_ADAPTER, "StartDiscovery", discovery_done,
	     "starting discovery", NULL);
}

static int restart_stop_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;

	/* whatever the answer (NotReady, Failed: no session), start again */
	s->discovery_pending = false;
	if (s->adapter_present && s->powered)
		discovery_start(s);
	return 0;
}

static void discovery_restart(struct ble *s, const char *why)
{
	s->h->log(s->r, LABGW_LOG_NOTICE, "restarting discovery on %s: %s", s->adapter, why);
	s->cnt.discovery_restarts++;
	s->discovery_pending = true;
	s->discovery_started_ms = now_ms(s);
	call(s, s->adapter_path, IFACE_ADAPTER, "StopDiscovery", restart_stop_done,
	     "stopping discovery", NULL);
}

/* Bring the adapter to where the configuration wants it. */
static void adapter_drive(struct ble *s)
{
	if (!s->bl.bus || !s->adapter_present)
		return;
	if (!s->powered) {
		if (s->power && !s->power_pending) {
			s->power_pending = true;
			call(s, s->adapter_path, IFACE_PROPS, "Set", power_done,
			     "powering the adapter on", "ssv", IFACE_ADAPTER, "Powered", "b", 1);
		}
		return;
	}
	if (!s->discovering && !s->discovery_pending && now_ms(s) >= s->quiet_until_ms)
		discovery_start(s);
}

/* ---- bluetoothd's objects ----------------------------------------------- */

/* One object's a{sa{sv}} (InterfacesAdded, GetManagedObjects). */
static int read_object(struct ble *s, sd_bus_message *m, const char *path, bool announce)
{
	int rc;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sa{sv}}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		const char *iface;

		if ((rc = sd_bus_message_read_basic(m, 's', &iface)) < 0)
			return rc;
		if (!strcmp(iface, IFACE_ADAPTER) && !strcmp(path, s->adapter_path)) {
			bool was = s->adapter_present;

			s->adapter_present = true;
			if ((rc = read_adapter_props(s, m)) < 0)
				return rc;
			if (!was)
				s->h->log(s->r, LABGW_LOG_NOTICE, "adapter %s (%s) is there",
					  s->adapter, s->adapter_addr);
		} else if (!strcmp(iface, IFACE_DEVICE) && our_device_path(s, path)) {
			struct dev *d = dev_get(s, path);

			if (!d)
				return -ENOMEM;
			rc = read_device_props(s, m, d);
			if (rc < 0)
				return rc;
			/* a device that arrives with an RSSI was just heard;
			 * one from bluetoothd's cache has none */
			if (announce && d->has_rssi)
				publish_adv(s, d);
		} else if ((!strcmp(iface, IFACE_GATT_SVC) || !strcmp(iface, IFACE_GATT_CHAR)) &&
			   our_gatt_path(s, path)) {
			struct blob value;
			bool has_value = false;

			rc = read_gatt_props(s, m, path, !strcmp(iface, IFACE_GATT_CHAR), &value,
					     &has_value);
			if (rc < 0)
				return rc;
		} else if ((rc = sd_bus_message_skip(m, "a{sv}")) < 0) {
			return rc;
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

static bool from_bluez(struct ble *s, sd_bus_message *m)
{
	return busloop_from_service(&s->bl, m);
}

static void bad_message(struct ble *s, const char *what, int rc)
{
	s->cnt.dbus_bad++;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_DEBUG, "%s from bluetoothd not understood: %s", what,
		  strerror(-rc));
}

static int on_interfaces_added(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	const char *path;
	int rc;

	if (!from_bluez(s, m) || !s->objects_loaded)
		return 0;
	rc = sd_bus_message_read_basic(m, 'o', &path);
	if (rc >= 0)
		rc = read_object(s, m, path, true);
	if (rc < 0)
		bad_message(s, "InterfacesAdded", rc);
	adapter_drive(s);
	return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	const char *path, *iface;
	int rc;

	if (!from_bluez(s, m))
		return 0;
	if ((rc = sd_bus_message_read_basic(m, 'o', &path)) < 0 ||
	    (rc = sd_bus_message_enter_container(m, 'a', "s")) < 0) {
		bad_message(s, "InterfacesRemoved", rc);
		return 0;
	}
	while ((rc = sd_bus_message_read_basic(m, 's', &iface)) > 0) {
		if (!strcmp(iface, IFACE_ADAPTER) && !strcmp(path, s->adapter_path)) {
			s->h->log(s->r, LABGW_LOG_NOTICE, "adapter %s went away", s->adapter);
			adapter_reset(s);
		} else if (!strcmp(iface, IFACE_DEVICE)) {
			struct dev *d = dev_find(s, path);

			if (d)
				dev_free(s, d);
		} else if (!strcmp(iface, IFACE_GATT_SVC) || !strcmp(iface, IFACE_GATT_CHAR)) {
			gatt_forget(s, path);
		}
	}
	if (rc < 0)
		bad_message(s, "InterfacesRemoved", rc);
	return 0;
}

static int on_properties_changed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	const char *path = sd_bus_message_get_path(m), *iface;
	int rc;

	if (!from_bluez(s, m) || !path || !s->objects_loaded)
		return 0;
	if ((rc = sd_bus_message_read_basic(m, 's', &iface)) < 0) {
		bad_message(s, "PropertiesChanged", rc);
		return 0;
	}
	if (!strcmp(iface, IFACE_ADAPTER) && !strcmp(path, s->adapter_path) && s->adapter_present) {
		bool was = s->discovering;

		if ((rc = read_adapter_props(s, m)) < 0)
			bad_message(s, "PropertiesChanged", rc);
		if (was && !s->discovering)
			s->h->log(s->r, LABGW_LOG_INFO, "discovery on %s stopped", s->adapter);
		adapter_drive(s);
	} else if (!strcmp(iface, IFACE_DEVICE) && our_device_path(s, path)) {
		struct dev *d = dev_get(s, path);

		if (!d)
			return 0;
		rc = read_device_props(s, m, d);
		if (rc >= 0) {
			int seen = rc;

			rc = read_invalidated(m, d);
			if (seen == SEEN_ADV)
				publish_adv(s, d);
		}
		if (rc < 0)
			bad_message(s, "PropertiesChanged", rc);
		if (!d->connected && d->gatt_sbx[0]) {
			/* the link went down: what a sandbox opened is gone */
			size_t n = strlen(d->path);

			for (unsigned i = 0; i < s->n_chars; i++)
				if (!strncmp(s->chars[i].path, d->path, n))
					s->chars[i].ours = false;
			d->gatt_sbx[0] = 0;
		}
	} else if (!strcmp(iface, IFACE_GATT_CHAR) && our_gatt_path(s, path)) {
		struct blob value;
		bool has_value = false;
		struct gatt_char *c;

		rc = read_gatt_props(s, m, path, true, &value, &has_value);
		if (rc < 0)
			bad_message(s, "PropertiesChanged", rc);
		else if (has_value && (c = chr_find(s, path)) && c->ours)
			publish_notify(s, c, &value);
	}
	return 0;
}

static int objects_loaded(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	int rc;

	if (sd_bus_message_is_method_error(m, NULL)) {
		note_error(s, "listing bluetoothd's objects", sd_bus_message_get_error(m), 0);
		return 0;
	}
	rc = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (rc >= 0 && (rc = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
		const char *path;

		if ((rc = sd_bus_message_read_basic(m, 'o', &path)) < 0 ||
		    (rc = read_object(s, m, path, false)) < 0 ||
		    (rc = sd_bus_message_exit_container(m)) < 0)
			break;
	}
	if (rc < 0)
		bad_message(s, "GetManagedObjects", rc);
	s->objects_loaded = true;
	if (!s->adapter_present)
		s->h->log(s->r, LABGW_LOG_WARNING,
			  "bluetoothd has no adapter %s (yet): waiting for it", s->adapter);
	s->state_dirty = true;
	adapter_drive(s);
	return 0;
}

static void bluez_appeared(void *ud, const char *owner, bool restart)
{
	struct ble *s = ud;

	if (restart)
		s->cnt.bluez_restarts++;
	s->objects_loaded = false;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_NOTICE, "bluetoothd is on the bus (%s)", owner);
	call(s, "/", IFACE_OBJMGR, "GetManagedObjects", objects_loaded,
	     "listing bluetoothd's objects", NULL);
}

static void bluez_gone(void *ud)
{
	struct ble *s = ud;

	s->objects_loaded = false;
	adapter_reset(s);
	s->h->log(s->r, LABGW_LOG_WARNING, "bluetoothd left the bus: waiting for it to return");
}

static void bluez_absent(void *ud)
{
	struct ble *s = ud;

	s->h->log(s->r, LABGW_LOG_WARNING,
		  "bluetoothd is not on the bus: waiting for it to appear");
	s->state_dirty = true;
}

/* ---- the bus connection ------------------------------------------------- */

/* The connection is closing: bluetoothd drops a leaving client's
 * advertisements, and its calls will not be answered. */
static void bus_closing(void *ud)
{
	struct ble *s = ud;

	adv_free_all(s);
	gcall_fail_all(s, "the connection to bluetoothd was closed");
	s->objects_loaded = false;
	adapter_reset(s);
}

static const char *const matches[] = {
	"type='signal',interface='org.freedesktop.DBus.ObjectManager',"
	"member='InterfacesAdded',path='/'",
	"type='signal',interface='org.freedesktop.DBus.ObjectManager',"
	"member='InterfacesRemoved',path='/'",
	"type='signal',interface='org.freedesktop.DBus.Properties',"
	"member='PropertiesChanged',path_namespace='/org/bluez'",
};

static int bus_open(struct ble *s)
{
	static const sd_bus_message_handler_t handlers[] = {
		on_interfaces_added,
		on_interfaces_removed,
		on_properties_changed,
	};

	return busloop_open(&s->bl, "labgw-ble", matches, handlers,
			    sizeof(matches) / sizeof(matches[0]));
}

static int bus_reopen(void *ud)
{
	struct ble *s = ud;
	int rc;

	if (!s->running)
		return 0;
	rc = bus_open(s);
	if (rc < 0)
		return rc;
	s->cnt.bus_reconnects++;
	s->h->log(s->r, LABGW_LOG_NOTICE, "back on the system bus");
	return 0;
}

/* ---- advertising for a sandbox ------------------------------------------ */

static int adv_get(sd_bus *bus, const char *path, const char *iface, const char *prop,
		   sd_bus_message *reply, void *ud, sd_bus_error *err)
{
	struct advert *a = ud;
	const struct ble_ad *ad = &a->parsed;
	char u[BLE_UUID_STR_LEN];
	int rc = 0;

	if (!strcmp(prop, "Type"))
		return sd_bus_message_append(reply, "s",
					     a->connectable ? "peripheral" : "broadcast");
	if (!strcmp(prop, "LocalName"))
		return sd_bus_message_append(reply, "s", ad->name);
	if (!strcmp(prop, "Appearance"))
		return sd_bus_message_append(reply, "q", ad->appearance);
	if (!strcmp(prop, "Timeout"))
		return sd_bus_message_append(reply, "q", a->timeout_s);
	if (!strcmp(prop, "Includes"))
		return sd_bus_message_append(reply, "as", 1, "tx-power");
	if (!strcmp(prop, "ServiceUUIDs")) {
		if ((rc = sd_bus_message_open_container(reply, 'a', "s")) < 0)
			return rc;
		for (size_t i = 0; i < ad->n_uuids && rc >= 0; i++) {
			ble_uuid_str(&ad->uuids[i].uuid, u);
			rc = sd_bus_message_append(reply, "s", u);
		}
		return rc < 0 ? rc : sd_bus_message_close_container(reply);
	}
	if (!strcmp(prop, "ManufacturerData")) {
		if ((rc = sd_bus_message_open_container(reply, 'a', "{qv}")) < 0)
			return rc;
		for (size_t i = 0; i < ad->n_mfr && rc >= 0; i++) {
			if ((rc = sd_bus_message_open_container(reply, 'e', "qv")) < 0 ||
			    (rc = sd_bus_message_append(reply, "q", ad->mfr[i].company)) < 0 ||
			    (rc = sd_bus_message_open_container(reply, 'v', "ay")) < 0 ||
			    (rc = sd_bus_message_append_array(reply, 'y', ad->mfr[i].data,
							      ad->mfr[i].len)) < 0 ||
			    (rc = sd_bus_message_close_container(reply)) < 0)
				break;
			rc = sd_bus_message_close_container(reply);
		}
		return rc < 0 ? rc : sd_bus_message_close_container(reply);
	}
	if (!strcmp(prop, "ServiceData")) {
		if ((rc = sd_bus_message_open_container(reply, 'a', "{sv}")) < 0)
			return rc;
		for (size_t i = 0; i < ad->n_svc && rc >= 0; i++) {
			ble_uuid_str(&ad->svc[i].uuid, u);
			if ((rc = sd_bus_message_open_container(reply, 'e', "sv")) < 0 ||
			    (rc = sd_bus_message_append(reply, "s", u)) < 0 ||
			    (rc = sd_bus_message_open_container(reply, 'v', "ay")) < 0 ||
			    (rc = sd_bus_message_append_array(reply, 'y', ad->svc[i].data,
							      ad->svc[i].len)) < 0 ||
			    (rc = sd_bus_message_close_container(reply)) < 0)
				break;
			rc = sd_bus_message_close_container(reply);
		}
		return rc < 0 ? rc : sd_bus_message_close_container(reply);
	}
	return sd_bus_error_setf(err, SD_BUS_ERROR_UNKNOWN_PROPERTY, "no property %s", prop);
}

static void adv_free(struct ble *s, struct advert *a)
{
	struct advert **pp = &s->adverts;

	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	if (a->end_timer)
		s->h->timer_cancel(s->r, a->end_timer);
	/* a call still pending is cancelled: its answer finds nothing */
	sd_bus_slot_unref(a->call);
	sd_bus_slot_unref(a->slot);
	free(a);
	s->state_dirty = true;
}

static void adv_free_all(struct ble *s)
{
	while (s->adverts)
		adv_free(s, s->adverts);
}

static int adv_unregistered(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct advert *a = ud;

	a->call = sd_bus_slot_unref(a->call);
	/* answered either way: bluetoothd no longer reads the object */
	adv_free(a->s, a);
	return 0;
}

/* Take an advertisement off the air and, once bluetoothd confirms, free it. */
static void adv_end(struct ble *s, struct advert *a, const char *why)
{
	sd_bus_message *m = NULL;
	int rc;

	if (a->ending)
		return;
	a->ending = true;
	if (a->end_timer)
		s->h->timer_cancel(s->r, a->end_timer);
	a->end_timer = 0;
	s->h->log(s->r, LABGW_LOG_INFO, "advertisement %s of %s ends: %s", a->cmd_id,
		  a->sbx[0] ? a->sbx : "staff", why);
	s->state_dirty = true;
	if (!a->registered) {
		/* still being registered: adv_registered takes it off */
		return;
	}
	if (!s->bl.bus || !s->adapter_present) {
		adv_free(s, a);
		return;
	}
	rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, s->adapter_path, IFACE_ADVMGR,
					    "UnregisterAdvertisement");
	if (rc >= 0)
		rc = sd_bus_message_append(m, "o", a->path);
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, &a->call, m, adv_unregistered, a,
				       CALL_TIMEOUT_US);
	sd_bus_message_unref(m);
	if (rc < 0)
		adv_free(s, a);
}

static int adv_end_cb(void *ud)
{
	struct advert *a = ud;

	a->end_timer = 0;
	adv_end(a->s, a, "its time is up");
	return 0;
}

/* bluetoothd gave the advertisement up itself (its Timeout, a reset) */
static int adv_release(sd_bus_message *m, void *ud, sd_bus_error *err)
{
	struct advert *a = ud;
	struct ble *s = a->s;
	int rc = sd_bus_reply_method_return(m, NULL);

	s->h->log(s->r, LABGW_LOG_INFO, "bluetoothd released advertisement %s", a->cmd_id);
	adv_free(s, a);
	return rc;
}

static int adv_registered(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct advert *a = ud;
	struct ble *s = a->s;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	a->call = sd_bus_slot_unref(a->call);
	if (e) {
		char reason[200];

		/* the kernel gives a non-connectable advertisement a private
		 * address, which a controller without extended advertising
		 * cannot change while it scans (and this radio always scans) */
		snprintf(reason, sizeof(reason), "bluetoothd refused the advertisement: %s%s",
			 e->message ? e->message : e->name,
			 !a->connectable && s->discovering
				 ? " (a non-connectable advertisement needs a private address, "
				   "which this controller cannot take while it scans: try "
				   "\"connectable\": true)"
				 : "");
		s->cnt.adv_failed++;
		s->h->tx_status(s->r, a->cmd_id, LABGW_TX_FAILED, reason);
		adv_free(s, a);
		return 0;
	}
	a->registered = true;
	s->cnt.adv_registered++;
	s->state_dirty = true;
	s->h->tx_status(s->r, a->cmd_id, LABGW_TX_ACKED, NULL);
	if (a->ending) { /* ended while bluetoothd was answering */
		a->ending = false;
		adv_end(s, a, "ended before it was registered");
	}
	return 0;
}

/*
 * A transmit on a BLE radio without "dev": advertise `payload` (AD
 * structures, legacy size) for `duration_s` or until the lease ends. The
 * lease is exclusive, so one advertisement is on the air at a time: a new
 * one replaces the last.
 */
static int adv_start(struct ble *s, const struct labgw_command *cmd, json_t *body, char *errbuf,
		     size_t errlen)
{
	const char *p64 = json_string_value(json_object_get(body, "payload"));
	json_t *dur = json_object_get(body, "duration_s");
	json_t *conn = json_object_get(body, "connectable");
	struct advert *a;
	int64_t duration = ADV_DURATION_MAX;
	long n;
	size_t k = 0;
	int rc;

	if (!p64)
		return refuse(errbuf, errlen, -EINVAL,
			      "\"payload\" (base64 of the AD structures) is required");
	if (dur && (!json_is_integer(dur) || json_integer_value(dur) < 1 ||
		    json_integer_value(dur) > ADV_DURATION_MAX))
		return refuse(errbuf, errlen, -EINVAL, "\"duration_s\" is 1 to %d seconds",
			      ADV_DURATION_MAX);
	if (conn && !json_is_boolean(conn))
		return refuse(errbuf, errlen, -EINVAL, "\"connectable\" is true or false");
	if (dur)
		duration = json_integer_value(dur);
	if (cmd->size >= offsetof(struct labgw_command, lease_end_us) + sizeof(int64_t) &&
	    cmd->lease_end_us > 0) {
		struct timespec ts;
		int64_t now_us, left;

		clock_gettime(CLOCK_REALTIME, &ts);
		now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		left = (cmd->lease_end_us - now_us + 999999) / 1000000;
		if (left < duration)
			duration = left < 1 ? 1 : left;
	}
	if (!s->bl.bus || !s->adapter_present || !s->powered)
		return refuse(errbuf, errlen, -ENODEV, "adapter %s is not ready", s->adapter);
	a = calloc(1, sizeof(*a));
	if (!a)
		return refuse(errbuf, errlen, -ENOMEM, "out of memory");
	n = base64_decode(p64, strlen(p64), a->ad, sizeof(a->ad));
	if (n <= 0) {
		free(a);
		return refuse(errbuf, errlen, -EINVAL,
			      "\"payload\" is not base64 of 1 to %d bytes (legacy advertising)",
			      ADV_LEGACY_MAX);
	}
	a->ad_len = (size_t)n;
	if (ble_ad_parse(a->ad, a->ad_len, &a->parsed) < 0 || a->parsed.truncated ||
	    a->parsed.n_malformed || a->parsed.bad_name || a->parsed.uuids_over ||
	    a->parsed.mfr_over || a->parsed.svc_over) {
		free(a);
		return refuse(errbuf, errlen, -EINVAL,
			      "\"payload\" is not a sequence of well-formed AD structures");
	}
	if (a->parsed.n_unknown) {
		free(a);
		return refuse(errbuf, errlen, -EINVAL,
			      "\"payload\" holds AD types bluetoothd cannot advertise for us "
			      "(known: flags, names, TX power, appearance, service UUIDs, "
			      "service data, manufacturer data)");
	}
	a->s = s;
	a->connectable = conn && json_is_true(conn);
	a->timeout_s = (uint16_t)duration;
	snprintf(a->sbx, sizeof(a->sbx), "%s", cmd->sbx ? cmd->sbx : "");
	snprintf(a->cmd_id, sizeof(a->cmd_id), "%s", cmd->id);
	snprintf(a->path, sizeof(a->path), "/org/labgw/%s/adv%u", s->adapter, ++s->adv_serial);
	a->vt[k++] = (sd_bus_vtable)SD_BUS_VTABLE_START(0);
	a->vt[k++] = (sd_bus_vtable)SD_BUS_METHOD("Release", "", "", adv_release, 0);
	a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("Type", "s", adv_get, 0, 0);
	a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("Timeout", "q", adv_get, 0, 0);
	if (a->parsed.n_uuids)
		a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("ServiceUUIDs", "as", adv_get, 0, 0);
	if (a->parsed.n_mfr)
		a->vt[k++] =
			(sd_bus_vtable)SD_BUS_PROPERTY("ManufacturerData", "a{qv}", adv_get, 0, 0);
	if (a->parsed.n_svc)
		a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("ServiceData", "a{sv}", adv_get, 0, 0);
	if (a->parsed.has_name)
		a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("LocalName", "s", adv_get, 0, 0);
	if (a->parsed.has_appearance)
		a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("Appearance", "q", adv_get, 0, 0);
	if (a->parsed.has_tx_power)
		a->vt[k++] = (sd_bus_vtable)SD_BUS_PROPERTY("Includes", "as", adv_get, 0, 0);
	a->vt[k++] = (sd_bus_vtable)SD_BUS_VTABLE_END;
	rc = sd_bus_add_object_vtable(s->bl.bus, &a->slot, a->path, IFACE_ADV, a->vt, a);
	if (rc >= 0)
		rc = sd_bus_call_method_async(s->bl.bus, &a->call, BLUEZ, s->adapter_path,
					      IFACE_ADVMGR, "RegisterAdvertisement", adv_registered,
					      a, "oa{sv}", a->path, 0);
	if (rc < 0) {
		sd_bus_slot_unref(a->call);
		sd_bus_slot_unref(a->slot);
		free(a);
		return refuse(errbuf, errlen, -EIO, "cannot talk to bluetoothd: %s", strerror(-rc));
	}
	/* the one on the air before goes (the lease is the same sandbox's) */
	for (struct advert *o = s->adverts; o; o = o->next)
		adv_end(s, o, "replaced by a newer advertisement");
	a->next = s->adverts;
	s->adverts = a;
	/* bluetoothd ends it at Timeout; this ends it if it does not */
	a->end_timer = s->h->timer_add(s->r, (uint64_t)duration * 1000 + 1000, 0, adv_end_cb, a);
	s->h->tx_status(s->r, cmd->id, LABGW_TX_SENT, NULL);
	s->state_dirty = true;
	return 0;
}

/* The host says a sandbox's lease ended: what it allowed stops now. */
static int lease_ended(struct ble *s, json_t *body)
{
	const char *res = json_string_value(json_object_get(body, "resource"));
	const char *sbx = json_string_value(json_object_get(body, "sbx"));
	const char *kind = res ? strrchr(res, ':') : NULL;
	struct advert *a, *next;

	if (kind && sbx && !strcmp(kind, ":gatt") && s->bl.bus) {
		for (struct dev *d = s->lru_head; d; d = d->lru_next)
			if (d->gatt_sbx[0] && !strcmp(d->gatt_sbx, sbx))
				gatt_close(s, d, "the lease ended");
		return 0;
	}
	if (!kind || !sbx || strcmp(kind, ":adv"))
		return 0;
	for (a = s->adverts; a; a = next) {
		next = a->next;
		if (!strcmp(a->sbx, sbx))
			adv_end(s, a, "the lease ended");
	}
	return 0;
}

/* ---- GATT for claimed devices ------------------------------------------- */

static struct gatt_svc *svc_find(struct ble *s, const char *path)
{
	for (unsigned i = 0; i < s->n_svcs; i++)
		if (!strcmp(s->svcs[i].path, path))
			return &s->svcs[i];
	return NULL;
}

static struct gatt_char *chr_find(struct ble *s, const char *path)
{
	for (unsigned i = 0; i < s->n_chars; i++)
		if (!strcmp(s->chars[i].path, path))
			return &s->chars[i];
	return NULL;
}

/* the device object a GATT object lies under, or NULL */
static struct dev *gatt_owner(struct ble *s, const char *path)
{
	char dpath[PATH_MAX_LEN];
	const char *p = path + strlen(s->adapter_path) + 1;
	const char *slash = strchr(p, '/');

	if (!slash || (size_t)(slash - path) >= sizeof(dpath))
		return NULL;
	snprintf(dpath, sizeof(dpath), "%.*s", (int)(slash - path), path);
	return dev_find(s, dpath);
}

static void gatt_forget_under(struct ble *s, const char *dpath)
{
	size_t n = strlen(dpath);

	for (unsigned i = 0; i < s->n_chars;) {
		if (!strncmp(s->chars[i].path, dpath, n) && s->chars[i].path[n] == '/')
			s->chars[i] = s->chars[--s->n_chars];
		else
			i++;
	}
	for (unsigned i = 0; i < s->n_svcs;) {
		if (!strncmp(s->svcs[i].path, dpath, n) && s->svcs[i].path[n] == '/')
			s->svcs[i] = s->svcs[--s->n_svcs];
		else
			i++;
	}
}

static void gatt_forget(struct ble *s, const char *path)
{
	struct gatt_char *c = chr_find(s, path);
	struct gatt_svc *v = svc_find(s, path);

	if (c)
		*c = s->chars[--s->n_chars];
	if (v)
		*v = s->svcs[--s->n_svcs];
}

/* GattService1 / GattCharacteristic1 properties (InterfacesAdded and
 * PropertiesChanged); returns the Value read, if any, through *value. */
static int read_gatt_props(struct ble *s, sd_bus_message *m, const char *path, bool is_char,
			   struct blob *value, bool *has_value)
{
	struct gatt_char *c = is_char ? chr_find(s, path) : NULL;
	struct gatt_svc *v = is_char ? NULL : svc_find(s, path);
	int rc;

	if (is_char && !c) {
		if (s->n_chars >= GATT_CHARS_MAX)
			return sd_bus_message_skip(m, "a{sv}");
		c = &s->chars[s->n_chars++];
		memset(c, 0, sizeof(*c));
		snprintf(c->path, sizeof(c->path), "%s", path);
	}
	if (!is_char && !v) {
		if (s->n_svcs >= GATT_SVCS_MAX)
			return sd_bus_message_skip(m, "a{sv}");
		v = &s->svcs[s->n_svcs++];
		memset(v, 0, sizeof(*v));
		snprintf(v->path, sizeof(v->path), "%s", path);
	}
	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *k, *str;
		const char *contents;
		char type;
		int b;

		if ((rc = sd_bus_message_read_basic(m, 's', &k)) < 0 ||
		    (rc = sd_bus_message_peek_type(m, &type, &contents)) < 0)
			return rc;
		if (!strcmp(k, "UUID") && contents && !strcmp(contents, "s")) {
			if ((rc = read_variant_basic(m, 's', &str)) < 0)
				return rc;
			if (!ble_uuid_parse(str, is_char ? &c->uuid : &v->uuid))
				s->cnt.dbus_bad++;
		} else if (!strcmp(k, "Service") && is_char && contents && !strcmp(contents, "o")) {
			if ((rc = read_variant_basic(m, 'o', &str)) < 0)
				return rc;
			snprintf(c->svc_path, sizeof(c->svc_path), "%s", str);
		} else if (!strcmp(k, "Primary") && !is_char && contents &&
			   !strcmp(contents, "b")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			v->primary = b;
		} else if (!strcmp(k, "Notifying") && is_char && contents &&
			   !strcmp(contents, "b")) {
			if ((rc = read_variant_basic(m, 'b', &b)) < 0)
				return rc;
			c->notifying = b;
		} else if (!strcmp(k, "Flags") && is_char && contents && !strcmp(contents, "as")) {
			if ((rc = enter_variant(m, "as")) < 0 ||
			    (rc = sd_bus_message_enter_container(m, 'a', "s")) < 0)
				return rc;
			c->flags[0] = 0;
			while ((rc = sd_bus_message_read_basic(m, 's', &str)) > 0) {
				size_t used = strlen(c->flags);

				snprintf(c->flags + used, sizeof(c->flags) - used, "%s%s",
					 used ? "," : "", str);
			}
			if (rc < 0 || (rc = sd_bus_message_exit_container(m)) < 0 ||
			    (rc = sd_bus_message_exit_container(m)) < 0)
				return rc;
		} else if (!strcmp(k, "Value") && is_char && contents && !strcmp(contents, "ay")) {
			if ((rc = enter_variant(m, "ay")) < 0 || (rc = read_bytes(m, value)) < 0 ||
			    (rc = sd_bus_message_exit_container(m)) < 0)
				return rc;
			*has_value = true;
		} else if ((rc = sd_bus_message_skip(m, "v")) < 0) {
			return rc;
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

/* A notification (or indication) of a characteristic a sandbox subscribed. */
static void publish_notify(struct ble *s, struct gatt_char *c, const struct blob *value)
{
	struct dev *d = gatt_owner(s, c->path);
	struct gatt_svc *v = svc_find(s, c->svc_path);
	struct labgw_frame *f;
	char u[BLE_UUID_STR_LEN];
	int rc;

	if (!d || !d->addr[0] || !c->ours)
		return;
	f = s->h->frame_new(s->r, LABGW_TECH_BLE, "rx.ble.notify");
	if (!f)
		return;
	s->cnt.notifications++;
	s->state_dirty = true;
	rc = s->h->frame_set_dev(f, d->identity[0] ? d->identity : d->addr);
	ble_uuid_str(&c->uuid, u);
	if (rc >= 0)
		rc = s->h->frame_set_str(f, LABGW_DATA, "char", u);
	if (rc >= 0 && v) {
		ble_uuid_str(&v->uuid, u);
		rc = s->h->frame_set_str(f, LABGW_DATA, "service", u);
	}
	if (rc >= 0)
		rc = s->h->frame_set_hex(f, LABGW_DATA, "value", value->data, value->len);
	if (rc >= 0 && value->len)
		rc = s->h->frame_set_payload(f, value->data, value->len);
	if (rc < 0) {
		s->h->frame_discard(f);
		return;
	}
	s->h->publish(f);
}

/* An operation in flight: its answer settles the transmit's status. */
struct gatt_call {
	struct gatt_call *next;
	struct ble *s;
	sd_bus_slot *slot;
	char cmd_id[64];
	char path[PATH_MAX_LEN]; /* the device or characteristic */
	char sbx[64];
	enum gatt_op {
		G_CONNECT,
		G_DISCONNECT,
		G_READ,
		G_WRITE,
		G_NOTIFY,
		G_UNNOTIFY,
	} op;
};

static void gcall_free(struct ble *s, struct gatt_call *g)
{
	struct gatt_call **pp = &s->gcalls;

	while (*pp && *pp != g)
		pp = &(*pp)->next;
	if (*pp)
		*pp = g->next;
	sd_bus_slot_unref(g->slot);
	free(g);
}

/* bluetoothd went away or we stopped: the operations in flight failed */
static void gcall_fail_all(struct ble *s, const char *why)
{
	while (s->gcalls) {
		s->h->tx_status(s->r, s->gcalls->cmd_id, LABGW_TX_FAILED, why);
		gcall_free(s, s->gcalls);
	}
}

static int gcall_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct gatt_call *g = ud;
	struct ble *s = g->s;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	char reason[200];

	if (e) {
		snprintf(reason, sizeof(reason), "bluetoothd: %s",
			 e->message ? e->message : e->name);
		s->h->tx_status(s->r, g->cmd_id, LABGW_TX_FAILED, reason);
		gcall_free(s, g);
		return 0;
	}
	switch (g->op) {
	case G_CONNECT: {
		struct dev *d = dev_find(s, g->path);

		if (d)
			snprintf(d->gatt_sbx, sizeof(d->gatt_sbx), "%s", g->sbx);
		/* and while its services are discovered */
		s->quiet_until_ms = now_ms(s) + CONNECT_QUIET_MS / 2;
		s->h->tx_status(s->r, g->cmd_id, LABGW_TX_ACKED, NULL);
		break;
	}
	case G_READ: {
		const void *p;
		size_t n = 0;
		char *b64 = NULL, *json = NULL;
		int rc = sd_bus_message_read_array(m, 'y', &p, &n);

		if (rc >= 0 && n <= GATT_VALUE_MAX && (b64 = malloc(base64_encoded_len(n) + 1))) {
			base64_encode(p, n, b64);
			json = malloc(strlen(b64) + 16);
		}
		if (json) {
			sprintf(json, "{\"value\":\"%s\"}", b64);
			s->h->tx_result(s->r, g->cmd_id, LABGW_TX_ACKED, NULL, json);
		} else {
			s->h->tx_status(s->r, g->cmd_id, LABGW_TX_FAILED,
					"the value read could not be passed on");
		}
		free(b64);
		free(json);
		break;
	}
	case G_NOTIFY:
	case G_UNNOTIFY: {
		struct gatt_char *c = chr_find(s, g->path);

		if (c)
			c->ours = g->op == G_NOTIFY;
		s->h->tx_status(s->r, g->cmd_id, LABGW_TX_ACKED, NULL);
		break;
	}
	case G_DISCONNECT:
	case G_WRITE:
		s->h->tx_status(s->r, g->cmd_id, LABGW_TX_ACKED, NULL);
		break;
	}
	gcall_free(s, g);
	return 0;
}

/* Starts op on `path` (iface.method with `types` and arguments). */
static int gcall(struct ble *s, const struct labgw_command *cmd, enum gatt_op op, const char *path,
		 const char *iface, const char *method, sd_bus_message *args, char *errbuf,
		 size_t errlen)
{
	struct gatt_call *g = calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return refuse(errbuf, errlen, -ENOMEM, "out of memory");
	g->s = s;
	g->op = op;
	snprintf(g->cmd_id, sizeof(g->cmd_id), "%s", cmd->id);
	snprintf(g->path, sizeof(g->path), "%s", path);
	snprintf(g->sbx, sizeof(g->sbx), "%s", cmd->sbx ? cmd->sbx : "");
	if (args) {
		rc = sd_bus_call_async(s->bl.bus, &g->slot, args, gcall_done, g,
				       op == G_CONNECT ? 30 * 1000 * 1000 : CALL_TIMEOUT_US);
	} else {
		rc = sd_bus_call_method_async(s->bl.bus, &g->slot, BLUEZ, path, iface, method,
					      gcall_done, g, NULL);
	}
	if (rc < 0) {
		free(g);
		return refuse(errbuf, errlen, -EIO, "cannot talk to bluetoothd: %s", strerror(-rc));
	}
	g->next = s->gcalls;
	s->gcalls = g;
	s->h->tx_status(s->r, cmd->id, LABGW_TX_SENT, NULL);
	return 0;
}

static int connect_now(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct gatt_call *g = ud;
	struct ble *s = g->s;
	sd_bus_message *c = NULL;
	int rc;

	/* whatever StopDiscovery answered (no session of ours: fine) */
	g->slot = sd_bus_slot_unref(g->slot);
	rc = sd_bus_message_new_method_call(s->bl.bus, &c, BLUEZ, g->path, IFACE_DEVICE, "Connect");
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, &g->slot, c, gcall_done, g, 30 * 1000 * 1000);
	sd_bus_message_unref(c);
	if (rc < 0) {
		s->h->tx_status(s->r, g->cmd_id, LABGW_TX_FAILED, "cannot talk to bluetoothd");
		gcall_free(s, g);
	}
	return 0;
}

/*
 * Connect to a device. Discovery is stopped first and stays off while the
 * link comes up and its services are discovered (measured with btvirt: a
 * scan running, or restarted at once after the kernel stopped it to
 * connect, kept the services from resolving); the watchdog starts it again
 * after CONNECT_QUIET_MS.
 */
static int gatt_connect(struct ble *s, const struct labgw_command *cmd, struct dev *d, char *errbuf,
			size_t errlen)
{
	struct gatt_call *g = calloc(1, sizeof(*g));
	int rc;

	if (!g)
		return refuse(errbuf, errlen, -ENOMEM, "out of memory");
	g->s = s;
	g->op = G_CONNECT;
	snprintf(g->cmd_id, sizeof(g->cmd_id), "%s", cmd->id);
	snprintf(g->path, sizeof(g->path), "%s", d->path);
	snprintf(g->sbx, sizeof(g->sbx), "%s", cmd->sbx ? cmd->sbx : "");
	s->quiet_until_ms = now_ms(s) + CONNECT_QUIET_MS;
	rc = sd_bus_call_method_async(s->bl.bus, &g->slot, BLUEZ, s->adapter_path, IFACE_ADAPTER,
				      "StopDiscovery", connect_now, g, NULL);
	if (rc < 0) {
		free(g);
		return refuse(errbuf, errlen, -EIO, "cannot talk to bluetoothd: %s", strerror(-rc));
	}
	g->next = s->gcalls;
	s->gcalls = g;
	s->h->tx_status(s->r, cmd->id, LABGW_TX_SENT, NULL);
	return 0;
}

static struct dev *dev_by_addr(struct ble *s, const char *addr)
{
	/* the address heard, or the identity address a claimed key resolved */
	for (struct dev *d = s->lru_tail; d; d = d->lru_prev)
		if (!strcasecmp(d->addr, addr) || !strcasecmp(d->identity, addr))
			return d;
	return NULL;
}

static struct gatt_char *chr_of(struct ble *s, const struct dev *d, const char *uuid_s)
{
	struct ble_uuid u;
	size_t n = strlen(d->path);

	if (!uuid_s || !ble_uuid_parse(uuid_s, &u))
		return NULL;
	for (unsigned i = 0; i < s->n_chars; i++)
		if (!strncmp(s->chars[i].path, d->path, n) && s->chars[i].path[n] == '/' &&
		    ble_uuid_equal(&s->chars[i].uuid, &u))
			return &s->chars[i];
	return NULL;
}

/* {"services":[{"uuid","primary","chars":[{"uuid","flags":[...]}]}]} */
static char *services_json(struct ble *s, const struct dev *d)
{
	json_t *list = json_array(), *out;
	size_t n = strlen(d->path);
	char u[BLE_UUID_STR_LEN], *text;

	for (unsigned i = 0; list && i < s->n_svcs; i++) {
		const struct gatt_svc *v = &s->svcs[i];
		json_t *chars = json_array();

		if (strncmp(v->path, d->path, n) || v->path[n] != '/')
			continue;
		for (unsigned k = 0; chars && k < s->n_chars; k++) {
			const struct gatt_char *c = &s->chars[k];
			json_t *flags = json_array();
			char tmp[sizeof(c->flags)], *save = NULL;

			if (strcmp(c->svc_path, v->path))
				continue;
			snprintf(tmp, sizeof(tmp), "%s", c->flags);
			for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
				json_array_append_new(flags, json_string(t));
			ble_uuid_str(&c->uuid, u);
			json_array_append_new(chars,
					      json_pack("{s:s,s:o}", "uuid", u, "flags", flags));
		}
		ble_uuid_str(&v->uuid, u);
		json_array_append_new(list, json_pack("{s:s,s:b,s:o}", "uuid", u, "primary",
						      v->primary, "chars", chars));
	}
	out = json_pack("{s:o}", "services", list);
	text = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	return text;
}

/*
 * A transmit with "dev": a GATT operation on a claimed device (the host has
 * checked the claim and the lease {radio}:gatt). "op" is connect,
 * disconnect, services, read, write (the default when "value" is given),
 * notify or unnotify; "char" names a characteristic by UUID.
 */
static int gatt_start(struct ble *s, const struct labgw_command *cmd, json_t *body, char *errbuf,
		      size_t errlen)
{
	const char *addr = json_string_value(json_object_get(body, "dev"));
	const char *op = json_string_value(json_object_get(body, "op"));
	const char *uuid = json_string_value(json_object_get(body, "char"));
	const char *value = json_string_value(json_object_get(body, "value"));
	json_t *nr = json_object_get(body, "without_response");
	struct gatt_char *c = NULL;
	struct dev *d;

	if (!op)
		op = value ? "write" : NULL;
	if (!addr || !op)
		return refuse(errbuf, errlen, -EINVAL,
			      "a GATT request needs \"dev\" and \"op\" (connect, disconnect, "
			      "services, read, write, notify, unnotify)");
	if (!s->bl.bus || !s->adapter_present || !s->powered)
		return refuse(errbuf, errlen, -ENODEV, "adapter %s is not ready", s->adapter);
	d = dev_by_addr(s, addr);
	if (!d)
		return refuse(errbuf, errlen, -EINVAL,
			      "%s is not known here: it has not been heard lately", addr);
	if (!strcmp(op, "connect"))
		return gatt_connect(s, cmd, d, errbuf, errlen);
	if (!strcmp(op, "disconnect"))
		return gcall(s, cmd, G_DISCONNECT, d->path, IFACE_DEVICE, "Disconnect", NULL,
			     errbuf, errlen);
	if (!d->connected)
		return refuse(errbuf, errlen, -EINVAL,
			      "%s is not connected: \"op\":\"connect\" first", addr);
	if (!strcmp(op, "services")) {
		char *json;

		if (!d->services_resolved)
			return refuse(errbuf, errlen, -EBUSY,
				      "the services of %s are not resolved yet", addr);
		json = services_json(s, d);
		if (!json)
			return refuse(errbuf, errlen, -ENOMEM, "out of memory");
		s->h->tx_result(s->r, cmd->id, LABGW_TX_ACKED, NULL, json);
		free(json);
		return 0;
	}
	c = chr_of(s, d, uuid);
	if (!c)
		return refuse(errbuf, errlen, -EINVAL,
			      "\"char\" must name a characteristic of %s by UUID (see "
			      "\"op\":\"services\")",
			      addr);
	if (!strcmp(op, "read")) {
		sd_bus_message *m = NULL;
		int rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, c->path,
							IFACE_GATT_CHAR, "ReadValue");

		if (rc >= 0)
			rc = sd_bus_message_append(m, "a{sv}", 0);
		rc = rc < 0 ? refuse(errbuf, errlen, -ENOMEM, "out of memory")
			    : gcall(s, cmd, G_READ, c->path, NULL, NULL, m, errbuf, errlen);
		sd_bus_message_unref(m);
		return rc;
	}
	if (!strcmp(op, "write")) {
		uint8_t buf[GATT_VALUE_MAX];
		long n = value ? base64_decode(value, strlen(value), buf, sizeof(buf)) : -1;
		sd_bus_message *m = NULL;
		int rc;

		if (n < 0)
			return refuse(errbuf, errlen, -EINVAL,
				      "\"value\" is base64 of at most %d bytes", GATT_VALUE_MAX);
		if (nr && !json_is_boolean(nr))
			return refuse(errbuf, errlen, -EINVAL,
				      "\"without_response\" is true or false");
		rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, c->path, IFACE_GATT_CHAR,
						    "WriteValue");
		if (rc >= 0)
			rc = sd_bus_message_append_array(m, 'y', buf, (size_t)n);
		if (rc >= 0)
			rc = sd_bus_message_append(m, "a{sv}", 1, "type", "s",
						   json_is_true(nr) ? "command" : "request");
		rc = rc < 0 ? refuse(errbuf, errlen, -ENOMEM, "out of memory")
			    : gcall(s, cmd, G_WRITE, c->path, NULL, NULL, m, errbuf, errlen);
		sd_bus_message_unref(m);
		return rc;
	}
	if (!strcmp(op, "notify"))
		return gcall(s, cmd, G_NOTIFY, c->path, IFACE_GATT_CHAR, "StartNotify", NULL,
			     errbuf, errlen);
	if (!strcmp(op, "unnotify"))
		return gcall(s, cmd, G_UNNOTIFY, c->path, IFACE_GATT_CHAR, "StopNotify", NULL,
			     errbuf, errlen);
	return refuse(errbuf, errlen, -EINVAL,
		      "unknown GATT \"op\" \"%.32s\" (connect, disconnect, services, read, write, "
		      "notify, unnotify)",
		      op);
}

static int ignore_reply(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	return 0;
}

/* What a sandbox opened on a device ends: notifications off, disconnected. */
static void gatt_close(struct ble *s, struct dev *d, const char *why)
{
	size_t n = strlen(d->path);

	s->h->log(s->r, LABGW_LOG_INFO, "closing GATT with %s: %s", d->addr, why);
	for (unsigned i = 0; i < s->n_chars; i++) {
		struct gatt_char *c = &s->chars[i];

		if (c->ours && !strncmp(c->path, d->path, n) && c->path[n] == '/') {
			sd_bus_call_method_async(s->bl.bus, NULL, BLUEZ, c->path, IFACE_GATT_CHAR,
						 "StopNotify", ignore_reply, s, NULL);
			c->ours = false;
		}
	}
	if (d->connected)
		sd_bus_call_method_async(s->bl.bus, NULL, BLUEZ, d->path, IFACE_DEVICE,
					 "Disconnect", ignore_reply, s, NULL);
	d->gatt_sbx[0] = 0;
}

/* The host says a claim ended: GATT with that device closes. */
static int claim_ended(struct ble *s, json_t *body)
{
	const char *dev = json_string_value(json_object_get(body, "dev"));
	const char *sbx = json_string_value(json_object_get(body, "sbx"));

	if (!dev || !sbx || !s->bl.bus)
		return 0;
	for (struct dev *d = s->lru_head; d; d = d->lru_next)
		if (d->gatt_sbx[0] && !strcmp(d->gatt_sbx, sbx) &&
		    (!strcasecmp(d->addr, dev) || !strcasecmp(d->identity, dev)))
			gatt_close(s, d, "the claim ended");
	return 0;
}

/* ---- housekeeping ------------------------------------------------------- */

static int remove_done(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct ble *s = ud;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	/* DoesNotExist: bluetoothd dropped it first */
	if (e && !sd_bus_error_has_name(e, "org.bluez.Error.DoesNotExist"))
		s->h->log(s->r, LABGW_LOG_DEBUG, "RemoveDevice: %s", e->message);
	return 0;
}

/* Ask bluetoothd to forget a device (InterfacesRemoved then frees ours). */
static void remove_device(struct ble *s, struct dev *d)
{
	sd_bus_message *m = NULL;
	int rc;

	if (d->removing || !s->bl.bus || !s->adapter_present)
		return;
	rc = sd_bus_message_new_method_call(s->bl.bus, &m, BLUEZ, s->adapter_path, IFACE_ADAPTER,
					    "RemoveDevice");
	if (rc >= 0)
		rc = sd_bus_message_append(m, "o", d->path);
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, NULL, m, remove_done, s, CALL_TIMEOUT_US);
	sd_bus_message_unref(m);
	if (rc >= 0) {
		d->removing = true;
		s->cnt.devices_removed++;
	}
}

static bool dev_kept(struct ble *s, const struct dev *d)
{
	/* in use, or a team's device */
	return d->connected || d->paired ||
	       (d->addr[0] && s->h->device_claimed && s->h->device_claimed(s->r, d->addr));
}

static void sweep(struct ble *s)
{
	uint64_t now = now_ms(s);
	struct dev *d, *next;

	for (d = s->lru_head; d; d = next) {
		next = d->lru_next;
		/* devices from bluetoothd's cache count from when we met them */
		if (!d->heard_ms)
			d->heard_ms = now;
		if (now - d->heard_ms < s->ttl_ms)
			break; /* the rest were heard later */
		if (!dev_kept(s, d))
			remove_device(s, d);
	}
}

static int tick_cb(void *ud)
{
	struct ble *s = ud;
	uint64_t now = now_ms(s);

	if (s->bl.bus && s->objects_loaded && s->adapter_present && s->powered &&
	    now >= s->quiet_until_ms) {
		if (!s->discovering && !s->discovery_pending &&
		    now - s->discovery_started_ms >= DISCOVERY_GRACE_MS) {
			discovery_restart(s, "the adapter is not discovering");
		} else if (s->discovering && !s->discovery_pending &&
			   now - s->last_advert_ms >= s->stall_ms &&
			   now - s->discovery_started_ms >= s->stall_ms) {
			discovery_restart(s, "no advertisement for a while");
		}
	}
	if (s->bl.bus && s->objects_loaded && now >= s->sweep_at_ms) {
		s->sweep_at_ms =
			now + (s->ttl_ms / 2 < SWEEP_EVERY_MS ? s->ttl_ms / 2 : SWEEP_EVERY_MS);
		sweep(s);
	}
	if (s->bl.bus)
		busloop_arm(&s->bl); /* calls made here wait to be written */
	if (s->state_dirty)
		publish_state(s);
	return 0;
}

static int publish_state(struct ble *s)
{
	struct labgw_frame *f = s->h->frame_new(s->r, LABGW_TECH_NONE, "state.radio");
	const char *bluez = !s->bl.bus ? "no system bus" : s->bl.owner[0] ? "running" : "absent";
	int rc = 0;

	if (!f)
		return -ENOMEM;
#define SET(call)                                                                                  \
	do {                                                                                       \
		if (rc >= 0)                                                                       \
			rc = (call);                                                               \
	} while (0)
	SET(s->h->frame_set_str(f, LABGW_DATA, "adapter", s->adapter));
	SET(s->h->frame_set_str(f, LABGW_DATA, "bluetoothd", bluez));
	SET(s->h->frame_set_bool(f, LABGW_DATA, "adapter_present", s->adapter_present));
	if (s->adapter_addr[0])
		SET(s->h->frame_set_str(f, LABGW_DATA, "address", s->adapter_addr));
	SET(s->h->frame_set_bool(f, LABGW_DATA, "powered", s->powered));
	SET(s->h->frame_set_bool(f, LABGW_DATA, "discovering", s->discovering));
	SET(s->h->frame_set_int(f, LABGW_DATA, "devices", s->n_dev));
	if (s->adverts && !s->adverts->ending) {
		SET(s->h->frame_set_str(f, LABGW_DATA, "advertising.tx", s->adverts->cmd_id));
		SET(s->h->frame_set_bool(f, LABGW_DATA, "advertising.registered",
					 s->adverts->registered));
	} else {
		SET(s->h->frame_set_bool(f, LABGW_DATA, "advertising.registered", false));
	}
	if (s->last_error[0])
		SET(s->h->frame_set_str(f, LABGW_DATA, "last_error", s->last_error));
#define CNT(name) SET(s->h->frame_set_int(f, LABGW_DATA, "counters." #name, (int64_t)s->cnt.name))
	CNT(adverts);
	CNT(rpa_resolved);
	CNT(not_published);
	CNT(dbus_bad);
	CNT(discovery_starts);
	CNT(discovery_restarts);
	CNT(devices_removed);
	CNT(bluez_restarts);
	CNT(bus_reconnects);
	CNT(adv_registered);
	CNT(adv_failed);
	CNT(notifications);
#undef CNT
#undef SET
	if (rc < 0) {
		s->h->frame_discard(f);
		return rc;
	}
	s->state_dirty = false;
	return s->h->state_update(f);
}

/* ---- module entry points ------------------------------------------------ */

static int ble_init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct ble *s;
	const char *adapter;
	long long maxdev = 0;
	int rc = 0, rcs[4];

	if (host->size < offsetof(struct labgw_host, reserved))
		return -EINVAL; /* needs ABI 1.4: device_claimed, ble_irks */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->h = host;
	s->bl = (struct busloop){.h = host,
				 .r = r,
				 .ud = s,
				 .hold_ms = READ_HOLD_MS,
				 .reconnect_ms = RECONNECT_MS,
				 .closing = bus_closing,
				 .reopen = bus_reopen,
				 .service = BLUEZ,
				 .appeared = bluez_appeared,
				 .gone = bluez_gone,
				 .absent = bluez_absent};
	adapter = host->config_get(r, "adapter");
	rcs[0] = host->config_get_bool(r, "power", true, &s->power);
	rcs[1] = host->config_get_duration_ms(r, "discovery_stall", 5000, 3600000, 60000,
					      &s->stall_ms);
	rcs[2] = host->config_get_duration_ms(r, "device_ttl", 10000, 86400000, 180000, &s->ttl_ms);
	rcs[3] = host->config_get_int(r, "max_devices", 16, 100000, 2000, &maxdev);
	for (size_t i = 0; i < 4; i++)
		if (rcs[i] < 0)
			rc = rcs[i];
	if (!adapter)
		adapter = "hci0";
	if (!*adapter || strlen(adapter) >= sizeof(s->adapter) ||
	    strspn(adapter, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
		    strlen(adapter)) {
		host->config_error(r, "adapter",
				   "'%s' is not an adapter name like hci0 (letters, digits, _)",
				   adapter);
		rc = -EINVAL;
	}
	if (rc < 0) {
		free(s);
		return rc;
	}
	snprintf(s->adapter, sizeof(s->adapter), "%s", adapter);
	snprintf(s->adapter_path, sizeof(s->adapter_path), "/org/bluez/%s", adapter);
	s->max_devices = (unsigned)maxdev;
	host->radio_set_techs(r, LABGW_TECH_BLE);
	*state = s;
	return 0;
}

static int ble_start(void *state)
{
	struct ble *s = state;
	int rc;

	if (s->running)
		return 0;
	rc = bus_open(s);
	if (rc < 0) {
		s->h->log(s->r, LABGW_LOG_ERROR, "cannot reach the system bus: %s", strerror(-rc));
		/* no system bus here: as good as no Bluetooth */
		return -ENODEV;
	}
	s->tick = s->h->timer_add(s->r, TICK_MS, TICK_MS, tick_cb, s);
	if (!s->tick) {
		busloop_close(&s->bl);
		return -ENOMEM;
	}
	s->running = true;
	s->last_advert_ms = s->discovery_started_ms = now_ms(s);
	s->sweep_at_ms = now_ms(s) + SWEEP_EVERY_MS;
	publish_state(s);
	return 0;
}

static int ble_command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct ble *s = state;
	json_t *body = json_loadb(cmd->body, cmd->body_len, 0, NULL);
	int rc;

	if (!json_is_object(body)) {
		json_decref(body);
		return refuse(errbuf, errlen, -EINVAL, "the body is not a JSON object");
	}
	if (!strcmp(cmd->op, "lease.ended")) {
		rc = lease_ended(s, body);
	} else if (!strcmp(cmd->op, "claim.ended")) {
		rc = claim_ended(s, body);
	} else if (strcmp(cmd->op, "tx")) {
		rc = refuse(errbuf, errlen, -ENOTSUP, "the ble radio has no operation \"%s\"",
			    cmd->op);
	} else if (json_object_get(body, "dev")) {
		rc = gatt_start(s, cmd, body, errbuf, errlen);
	} else {
		rc = adv_start(s, cmd, body, errbuf, errlen);
	}
	json_decref(body);
	return rc;
}

static void ble_stop(void *state)
{
	struct ble *s = state;

	s->running = false;
	if (s->tick)
		s->h->timer_cancel(s->r, s->tick);
	s->tick = 0;
	/* closing the connection ends our discovery session and our
	 * advertisements in bluetoothd */
	busloop_stop(&s->bl);
}

static void ble_exit(void *state)
{
	struct ble *s = state;

	if (!s)
		return;
	dev_clear_all(s);
	adv_free_all(s);
	irks_free(s);
	free(s);
}

LABGW_PLUGIN_DEFINE(.name = "ble", .version = LABGW_VERSION, .techs = LABGW_TECH_BLE,
		    .init = ble_init, .start = ble_start, .command = ble_command, .stop = ble_stop,
		    .exit = ble_exit);
