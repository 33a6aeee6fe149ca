/* SPDX-License-Identifier: MIT */
/*
 * The cellular radio module: a D-Bus client of ModemManager
 * (org.freedesktop.ModemManager1) on the system bus, through sd-bus driven
 * by the daemon's loop (the bus fd through the host's fd watch, sd-bus's
 * timeout through a host timer).
 *
 * One radio is one modem: the module follows ModemManager's modems through
 * its ObjectManager (InterfacesAdded/Removed, so modems plugged in and out
 * are seen) and binds the first that matches `modem`. While none is bound
 * the radio is `absent` (host service radio_present), and it comes back by
 * itself when a modem appears or ModemManager restarts (NameOwnerChanged).
 *
 * What it publishes:
 *  - radio state details: ModemManager's state, the modem's state and
 *    failed reason, access technologies, signal quality, operator, 3GPP
 *    registration, manufacturer, model and firmware, on change. IMEI, IMSI,
 *    ICCID, the equipment id and the modem's own numbers are personal data:
 *    they go under `details.staff`, which the daemon shows to staff only.
 *  - `state.cellular.signal` frames from Modem.Signal (set up at
 *    `signal_interval`): the values of the current technology.
 *  - `rx.cellular.sms` frames for each SMS received (Messaging.Added, then
 *    the Sms object's properties), `dev` the sender; with
 *    `delete_after_read` the SMS is deleted from the modem once published.
 *
 * Transmits (op "tx", lease `{radio}:sms`, checked by the daemon): an SMS
 * `{"to": "+49...", "text": "..."}` through Messaging.Create and Sms.Send;
 * status `sent` once handed to the modem, `acked` when ModemManager says it
 * went out, `failed` with ModemManager's error text.
 *
 * Configuration ([radio NAME] with module = cellular):
 *   modem             = any   which modem: the first, or one whose
 *                             equipment id/IMEI, primary port or device matches
 *   signal_interval   = 10s   Modem.Signal refresh rate (1s to 1h)
 *   delete_after_read = yes   delete received SMS from the modem after publishing
 *   enable            = yes   enable a disabled modem
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

#include "busloop.h"
#include "frame_builder.h"
#include "mm.h"

#define MM_NAME		  "org.freedesktop.ModemManager1"
#define MM_PATH		  "/org/freedesktop/ModemManager1"
#define MM_MODEM_PREFIX	  MM_PATH "/Modem/"
#define IFACE_MODEM	  "org.freedesktop.ModemManager1.Modem"
#define IFACE_3GPP	  "org.freedesktop.ModemManager1.Modem.Modem3gpp"
#define IFACE_SIGNAL	  "org.freedesktop.ModemManager1.Modem.Signal"
#define IFACE_MESSAGING	  "org.freedesktop.ModemManager1.Modem.Messaging"
#define IFACE_SIM	  "org.freedesktop.ModemManager1.Sim"
#define IFACE_SMS	  "org.freedesktop.ModemManager1.Sms"
#define IFACE_PROPS	  "org.freedesktop.DBus.Properties"
#define IFACE_OBJMGR	  "org.freedesktop.DBus.ObjectManager"
#define PATH_MAX_LEN	  128
#define STR_MAX		  128
#define MODEMS_MAX	  16  /* modem objects followed */
#define NUMBERS_MAX	  4   /* own numbers kept */
#define SMS_IN_MAX	  64  /* received SMS being read at once */
#define SMS_OUT_MAX	  16  /* SMS being sent at once */
#define SEEN_MAX	  256 /* received SMS paths remembered as handled */
#define TEXT_MAX	  4096
#define SMS_TEXT_MAX	  640 /* bytes a sandbox may send (4 concatenated parts) */
#define TICK_MS		  1000
#define RECONNECT_MS	  2000
#define CALL_TIMEOUT_US	  (25 * 1000 * 1000)
#define SEND_TIMEOUT_US	  (120 * 1000 * 1000)
#define MM_STATE_DISABLED 3

struct cell;

/* What ModemManager told about one modem object. */
struct modem {
	bool used;
	char path[PATH_MAX_LEN];
	bool has_state;
	int32_t state;
	uint32_t failed_reason;
	uint32_t access_tech;
	uint32_t quality;
	bool quality_recent;
	char manufacturer[STR_MAX], model[STR_MAX], revision[STR_MAX];
	char equipment_id[64], device[STR_MAX], primary_port[64];
	char sim_path[PATH_MAX_LEN];
	char numbers[NUMBERS_MAX][MM_NUMBER_MAX];
	unsigned n_numbers;
	bool has_modem, has_3gpp, has_signal, has_messaging;
	char imei[32];
	bool has_reg;
	uint32_t reg;
	char op_code[16], op_name[64];
	uint32_t signal_rate;
	struct mm_signal sig[6]; /* by enum mm_family; [0] EV-DO */
};

/* A received SMS whose properties are being read. */
struct sms_in {
	struct sms_in *next;
	struct cell *s;
	char path[PATH_MAX_LEN];
	sd_bus_slot *call;
	bool receiving; /* still arriving in parts: read again when it is complete */
};

/* An SMS a sandbox sends. */
struct sms_out {
	struct sms_out *next;
	struct cell *s;
	char cmd_id[64];
	char sbx[64];
	char to[MM_NUMBER_MAX];
	char *text;
	char path[PATH_MAX_LEN]; /* the Sms object, once created */
	sd_bus_slot *call;
};

struct counters {
	uint64_t sms_received, sms_deleted, sms_sent, sms_failed, signal_frames, dbus_bad,
		mm_restarts, bus_reconnects, modems_added, modems_removed;
};

struct cell {
	struct labgw_radio *r;
	const struct labgw_host *h;
	/* configuration */
	char modem_sel[STR_MAX]; /* "" = any */
	uint64_t signal_ms;
	bool delete_after_read, enable;
	struct busloop bl; /* the system bus */
	uint64_t tick;
	bool running;
	/* ModemManager */
	bool objects_loaded;
	struct modem modems[MODEMS_MAX];
	int bound; /* index into modems, -1 none */
	bool present_told, present;
	char absent_why[96];
	sd_bus_slot *sim_call;
	char sim_imsi[32], sim_iccid[32];
	bool enable_sent, signal_setup_sent;
	char seen[SEEN_MAX][PATH_MAX_LEN];
	unsigned seen_next;
	struct sms_in *in;
	unsigned n_in;
	struct sms_out *out;
	unsigned n_out;
	char last_error[200];
	bool state_dirty;
	struct counters cnt;
};

static int publish_state(struct cell *s);
static void bind_update(struct cell *s);

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

static void note_error(struct cell *s, const char *what, const sd_bus_error *e, int rc)
{
	snprintf(s->last_error, sizeof(s->last_error), "%s: %s", what,
		 e && e->message ? e->message : strerror(rc < 0 ? -rc : rc));
	s->h->log(s->r, LABGW_LOG_WARNING, "%s", s->last_error);
	s->state_dirty = true;
}

static void bad_message(struct cell *s, const char *what, int rc)
{
	s->cnt.dbus_bad++;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_DEBUG, "%s from ModemManager not understood: %s", what,
		  strerror(-rc));
}

static struct modem *bound_modem(struct cell *s)
{
	return s->bound >= 0 ? &s->modems[s->bound] : NULL;
}

/* Tell the host whether the radio has its hardware (ABI 1.5). */
static void tell_present(struct cell *s, bool present, const char *why)
{
	if (s->present_told && s->present == present &&
	    (present || !strcmp(s->absent_why, why ? why : "")))
		return;
	s->present_told = true;
	s->present = present;
	snprintf(s->absent_why, sizeof(s->absent_why), "%s", present || !why ? "" : why);
	if (s->h->size >= offsetof(struct labgw_host, radio_present) + sizeof(void *) &&
	    s->h->radio_present)
		s->h->radio_present(s->r, present, present ? NULL : why);
}

/* ---- reading ModemManager's properties ---------------------------------- */

/*
 * Whether the variant next in m holds `sig`: 1 yes, 0 no (skipped and
 * counted), or a negative errno.
 */
static int variant_is(struct cell *s, sd_bus_message *m, const char *key, const char *sig)
{
	const char *contents;
	char type;
	int rc = sd_bus_message_peek_type(m, &type, &contents);

	if (rc < 0)
		return rc;
	if (type == 'v' && contents && !strcmp(contents, sig))
		return 1;
	s->cnt.dbus_bad++;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_DEBUG, "property %s of type %s, expected %s: ignored", key,
		  contents ? contents : "?", sig);
	if ((rc = sd_bus_message_skip(m, "v")) < 0)
		return rc;
	return 0;
}

static int read_v(sd_bus_message *m, char type, void *out)
{
	char sig[2] = {type, 0};
	int rc = sd_bus_message_enter_container(m, 'v', sig);

	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_read_basic(m, type, out)) < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

/* a string (or object path: type 'o') property into buf, cut at a
 * character boundary when too long */
static int read_v_strt(sd_bus_message *m, char type, char *buf, size_t cap)
{
	const char *v;
	int rc = read_v(m, type, &v);
	size_t n;

	if (rc < 0)
		return rc;
	n = strlen(v);
	if (n >= cap) {
		n = cap - 1;
		while (n && ((unsigned char)v[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(buf, v, n);
	buf[n] = 0;
	return 0;
}

static int read_v_str(sd_bus_message *m, char *buf, size_t cap)
{
	return read_v_strt(m, 's', buf, cap);
}

/* Reads an a{sv} of Modem.Signal's per-technology values into sig. */
static int read_signal_dict(struct cell *s, sd_bus_message *m, struct mm_signal *sig)
{
	int rc;

	memset(sig, 0, sizeof(*sig));
	if ((rc = sd_bus_message_enter_container(m, 'v', "a{sv}")) < 0 ||
	    (rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;
		double v;

		if ((rc = sd_bus_message_read_basic(m, 's', &key)) < 0)
			return rc;
		if ((rc = variant_is(s, m, key, "d")) < 0)
			return rc;
		if (rc > 0) {
			if ((rc = read_v(m, 'd', &v)) < 0)
				return rc;
			mm_signal_take(sig, key, v);
		}
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_exit_container(m)) < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

enum {
	CHANGED_SIGNAL = 1, /* extended signal values */
	CHANGED_SIM = 2,    /* the SIM object */
	CHANGED_STATE = 4,  /* the modem's state */
};

static int signal_slot(const char *key)
{
	/* by enum mm_family, EV-DO in the unused slot 0 */
	static const char *const props[] = {"Evdo", "Gsm", "Umts", "Lte", "Nr5g", "Cdma"};

	for (int i = 0; i < 6; i++)
		if (!strcmp(key, props[i]))
			return i;
	return -1;
}

/*
 * One interface's a{sv} into the modem; returns CHANGED_* bits, or a
 * negative errno for a message that does not parse (what was read stays).
 */
static int read_modem_props(struct cell *s, sd_bus_message *m, const char *iface, struct modem *md)
{
	enum { I_MODEM, I_3GPP, I_SIGNAL, I_OTHER } which;
	int rc, changed = 0;

	which = !strcmp(iface, IFACE_MODEM)    ? I_MODEM
		: !strcmp(iface, IFACE_3GPP)   ? I_3GPP
		: !strcmp(iface, IFACE_SIGNAL) ? I_SIGNAL
					       : I_OTHER;
	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;
		const char *sig = NULL;

		if ((rc = sd_bus_message_read_basic(m, 's', &key)) < 0)
			return rc;
		/* the type each property has in ModemManager's API */
		switch (which) {
		case I_MODEM:
			sig = !strcmp(key, "State")		    ? "i"
			      : !strcmp(key, "StateFailedReason")   ? "u"
			      : !strcmp(key, "AccessTechnologies")  ? "u"
			      : !strcmp(key, "SignalQuality")	    ? "(ub)"
			      : !strcmp(key, "Manufacturer")	    ? "s"
			      : !strcmp(key, "Model")		    ? "s"
			      : !strcmp(key, "Revision")	    ? "s"
			      : !strcmp(key, "EquipmentIdentifier") ? "s"
			      : !strcmp(key, "Device")		    ? "s"
			      : !strcmp(key, "PrimaryPort")	    ? "s"
			      : !strcmp(key, "OwnNumbers")	    ? "as"
			      : !strcmp(key, "Sim")		    ? "o"
								    : NULL;
			break;
		case I_3GPP:
			sig = !strcmp(key, "Imei")		  ? "s"
			      : !strcmp(key, "RegistrationState") ? "u"
			      : !strcmp(key, "OperatorCode")	  ? "s"
			      : !strcmp(key, "OperatorName")	  ? "s"
								  : NULL;
			break;
		case I_SIGNAL:
			sig = !strcmp(key, "Rate") ? "u" : signal_slot(key) >= 0 ? "a{sv}" : NULL;
			break;
		case I_OTHER:
			break;
		}
		if (!sig) {
			rc = sd_bus_message_skip(m, "v");
		} else if ((rc = variant_is(s, m, key, sig)) > 0) {
			s->state_dirty = true;
			if (!strcmp(key, "State")) {
				rc = read_v(m, 'i', &md->state);
				md->has_state = true;
				changed |= CHANGED_STATE;
			} else if (!strcmp(key, "StateFailedReason")) {
				rc = read_v(m, 'u', &md->failed_reason);
			} else if (!strcmp(key, "AccessTechnologies")) {
				rc = read_v(m, 'u', &md->access_tech);
				changed |= CHANGED_SIGNAL;
			} else if (!strcmp(key, "SignalQuality")) {
				int recent = 0;

				if ((rc = sd_bus_message_enter_container(m, 'v', "(ub)")) >= 0)
					rc = sd_bus_message_read(m, "(ub)", &md->quality, &recent);
				if (rc >= 0)
					rc = sd_bus_message_exit_container(m);
				md->quality_recent = recent;
				if (md->quality > 100)
					md->quality = 100;
			} else if (!strcmp(key, "Manufacturer")) {
				rc = read_v_str(m, md->manufacturer, sizeof(md->manufacturer));
			} else if (!strcmp(key, "Model")) {
				rc = read_v_str(m, md->model, sizeof(md->model));
			} else if (!strcmp(key, "Revision")) {
				rc = read_v_str(m, md->revision, sizeof(md->revision));
			} else if (!strcmp(key, "EquipmentIdentifier")) {
				rc = read_v_str(m, md->equipment_id, sizeof(md->equipment_id));
			} else if (!strcmp(key, "Device")) {
				rc = read_v_str(m, md->device, sizeof(md->device));
			} else if (!strcmp(key, "PrimaryPort")) {
				rc = read_v_str(m, md->primary_port, sizeof(md->primary_port));
			} else if (!strcmp(key, "Sim")) {
				char old[PATH_MAX_LEN];

				snprintf(old, sizeof(old), "%s", md->sim_path);
				rc = read_v_strt(m, 'o', md->sim_path, sizeof(md->sim_path));
				if (strcmp(old, md->sim_path))
					changed |= CHANGED_SIM;
			} else if (!strcmp(key, "OwnNumbers")) {
				const char *num;

				md->n_numbers = 0;
				if ((rc = sd_bus_message_enter_container(m, 'v', "as")) >= 0 &&
				    (rc = sd_bus_message_enter_container(m, 'a', "s")) >= 0) {
					while ((rc = sd_bus_message_read_basic(m, 's', &num)) > 0)
						if (md->n_numbers < NUMBERS_MAX &&
						    mm_sender(num, md->numbers[md->n_numbers]) >= 0)
							md->n_numbers++;
					if (rc >= 0)
						rc = sd_bus_message_exit_container(m);
					if (rc >= 0)
						rc = sd_bus_message_exit_container(m);
				}
			} else if (!strcmp(key, "Imei")) {
				rc = read_v_str(m, md->imei, sizeof(md->imei));
			} else if (!strcmp(key, "RegistrationState")) {
				rc = read_v(m, 'u', &md->reg);
				md->has_reg = true;
				changed |= CHANGED_SIGNAL;
			} else if (!strcmp(key, "OperatorCode")) {
				rc = read_v_str(m, md->op_code, sizeof(md->op_code));
			} else if (!strcmp(key, "OperatorName")) {
				rc = read_v_str(m, md->op_name, sizeof(md->op_name));
			} else if (!strcmp(key, "Rate")) {
				rc = read_v(m, 'u', &md->signal_rate);
			} else {
				int slot = signal_slot(key);
				enum mm_family fam = mm_family_of(md->access_tech);

				rc = read_signal_dict(s, m, &md->sig[slot]);
				/* only the current technology's values make a frame */
				if (slot == (int)fam || (slot == 0 && fam == MM_FAMILY_CDMA))
					changed |= CHANGED_SIGNAL;
			}
		}
		if (rc < 0)
			return rc;
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if ((rc = sd_bus_message_exit_container(m)) < 0)
		return rc;
	return changed;
}

/* ---- calls -------------------------------------------------------------- */

static int call(struct cell *s, sd_bus_slot **slot, const char *path, const char *iface,
		const char *method, sd_bus_message_handler_t cb, void *ud, uint64_t timeout_us,
		const char *types, ...)
{
	sd_bus_message *m = NULL;
	va_list ap;
	int rc;

	if (!s->bl.bus)
		return -ENOTCONN;
	rc = sd_bus_message_new_method_call(s->bl.bus, &m, MM_NAME, path, iface, method);
	if (rc >= 0 && types) {
		va_start(ap, types);
		rc = sd_bus_message_appendv(m, types, ap);
		va_end(ap);
	}
	if (rc >= 0)
		rc = sd_bus_call_async(s->bl.bus, slot, m, cb, ud, timeout_us);
	sd_bus_message_unref(m);
	return rc;
}

/* ---- frames ------------------------------------------------------------- */

/* state.cellular.signal: the values of the technology the modem is on */
static void publish_signal(struct cell *s, struct modem *md)
{
	enum mm_family fam = mm_family_of(md->access_tech);
	const struct mm_signal *v;
	struct fb b = {.h = s->h, .err = 0};

	if (fam == MM_FAMILY_NONE)
		return;
	v = &md->sig[fam];
	if (fam == MM_FAMILY_CDMA && mm_signal_empty(v))
		v = &md->sig[0]; /* EV-DO */
	if (mm_signal_empty(v))
		return;
	b.f = s->h->frame_new(s->r, LABGW_TECH_CELLULAR, "state.cellular.signal");
	if (!b.f)
		return;
	if (v->has_rssi)
		fb_double(&b, LABGW_SIG, "rssi", v->rssi);
	if (v->has_rscp)
		fb_double(&b, LABGW_SIG, "rscp", v->rscp);
	if (v->has_ecio)
		fb_double(&b, LABGW_SIG, "ecio", v->ecio);
	if (v->has_rsrp)
		fb_double(&b, LABGW_SIG, "rsrp", v->rsrp);
	if (v->has_rsrq)
		fb_double(&b, LABGW_SIG, "rsrq", v->rsrq);
	/* ModemManager's "snr" of LTE and 5G NR is what the modems report as
	 * SINR; one name for it across radios */
	if (v->has_sinr)
		fb_double(&b, LABGW_SIG, "sinr", v->sinr);
	else if (v->has_snr)
		fb_double(&b, LABGW_SIG, "sinr", v->snr);
	if (v->has_io)
		fb_double(&b, LABGW_SIG, "io", v->io);
	fb_str(&b, LABGW_DATA, "access_tech", mm_family_name(fam));
	if (md->op_code[0])
		fb_str(&b, LABGW_DATA, "operator_code", md->op_code);
	if (md->op_name[0])
		fb_str(&b, LABGW_DATA, "operator_name", md->op_name);
	if (md->has_reg && mm_registration_name(md->reg))
		fb_str(&b, LABGW_DATA, "registration", mm_registration_name(md->reg));
	if (b.err < 0) {
		s->h->frame_discard(b.f);
		return;
	}
	if (s->h->publish(b.f) >= 0)
		s->cnt.signal_frames++;
}

/* ---- received SMS ------------------------------------------------------- */

static bool seen_has(struct cell *s, const char *path)
{
	for (unsigned i = 0; i < SEEN_MAX; i++)
		if (s->seen[i][0] && !strcmp(s->seen[i], path))
			return true;
	return false;
}

static void seen_add(struct cell *s, const char *path)
{
	if (seen_has(s, path))
		return;
	snprintf(s->seen[s->seen_next], PATH_MAX_LEN, "%s", path);
	s->seen_next = (s->seen_next + 1) % SEEN_MAX;
}

static void sms_in_free(struct cell *s, struct sms_in *x)
{
	struct sms_in **pp = &s->in;

	while (*pp && *pp != x)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = x->next;
		s->n_in--;
	}
	sd_bus_slot_unref(x->call);
	free(x);
}

static struct sms_in *sms_in_find(struct cell *s, const char *path)
{
	for (struct sms_in *x = s->in; x; x = x->next)
		if (!strcmp(x->path, path))
			return x;
	return NULL;
}

struct sms_props {
	bool has_state;
	uint32_t state;
	char number[STR_MAX];
	char text[TEXT_MAX];
	bool has_text;
	char timestamp[64];
	char smsc[STR_MAX];
};

static int read_sms_props(struct cell *s, sd_bus_message *m, struct sms_props *p)
{
	int rc;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;
		const char *sig;

		if ((rc = sd_bus_message_read_basic(m, 's', &key)) < 0)
			return rc;
		sig = !strcmp(key, "State")	  ? "u"
		      : !strcmp(key, "Number")	  ? "s"
		      : !strcmp(key, "Text")	  ? "s"
		      : !strcmp(key, "Timestamp") ? "s"
		      : !strcmp(key, "SMSC")	  ? "s"
						  : NULL;
		if (!sig) {
			rc = sd_bus_message_skip(m, "v");
		} else if ((rc = variant_is(s, m, key, sig)) > 0) {
			if (!strcmp(key, "State")) {
				rc = read_v(m, 'u', &p->state);
				p->has_state = true;
			} else if (!strcmp(key, "Number")) {
				rc = read_v_str(m, p->number, sizeof(p->number));
			} else if (!strcmp(key, "Text")) {
				rc = read_v_str(m, p->text, sizeof(p->text));
				p->has_text = true;
			} else if (!strcmp(key, "Timestamp")) {
				rc = read_v_str(m, p->timestamp, sizeof(p->timestamp));
			} else {
				rc = read_v_str(m, p->smsc, sizeof(p->smsc));
			}
		}
		if (rc < 0)
			return rc;
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	return sd_bus_message_exit_container(m);
}

static void publish_sms(struct cell *s, const struct sms_props *p)
{
	struct fb b = {.h = s->h, .err = 0};
	char dev[MM_NUMBER_MAX], ts[MM_TIME_LEN];
	int kind = mm_sender(p->number, dev);

	b.f = s->h->frame_new(s->r, LABGW_TECH_CELLULAR, "rx.cellular.sms");
	if (!b.f)
		return;
	if (kind >= 0)
		fb_dev(&b, dev);
	if (b.err >= 0 && p->text[0])
		b.err = s->h->frame_set_payload(b.f, p->text, strlen(p->text));
	fb_str(&b, LABGW_DATA, "number", kind >= 0 ? dev : p->number);
	fb_str(&b, LABGW_DATA, "text", p->text);
	if (mm_timestamp_utc(p->timestamp, ts) == 0)
		fb_str(&b, LABGW_DATA, "timestamp", ts);
	if (b.err < 0) {
		s->h->frame_discard(b.f);
		s->h->log(s->r, LABGW_LOG_WARNING, "an SMS could not be made a frame: %s",
			  strerror(-b.err));
		return;
	}
	if (s->h->publish(b.f) >= 0)
		s->cnt.sms_received++;
	s->state_dirty = true;
}

static int sms_deleted(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	if (e)
		note_error(s, "deleting an SMS from the modem", e, 0);
	else
		s->cnt.sms_deleted++;
	s->state_dirty = true;
	return 0;
}

static void sms_delete(struct cell *s, const char *path)
{
	struct modem *md = bound_modem(s);

	if (md && call(s, NULL, md->path, IFACE_MESSAGING, "Delete", sms_deleted, s,
		       CALL_TIMEOUT_US, "o", path) < 0)
		note_error(s, "deleting an SMS from the modem", NULL, -EIO);
}

static int sms_props_got(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct sms_in *x = ud;
	struct cell *s = x->s;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	struct sms_props *p;
	int rc;

	x->call = sd_bus_slot_unref(x->call);
	if (e) {
		/* gone meanwhile (deleted by someone else) */
		s->h->log(s->r, LABGW_LOG_DEBUG, "reading SMS %s: %s", x->path, e->message);
		sms_in_free(s, x);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		sms_in_free(s, x);
		return 0;
	}
	rc = read_sms_props(s, m, p);
	if (rc < 0) {
		bad_message(s, "SMS properties", rc);
	} else if (p->has_state && p->state == MM_SMS_STATE_RECEIVING) {
		x->receiving = true; /* PropertiesChanged of State brings it back */
		free(p);
		return 0;
	} else if (p->has_state && p->state == MM_SMS_STATE_RECEIVED) {
		if (!seen_has(s, x->path)) {
			seen_add(s, x->path);
			publish_sms(s, p);
			if (s->delete_after_read)
				sms_delete(s, x->path);
		}
	}
	free(p);
	sms_in_free(s, x);
	return 0;
}

/* Read an SMS ModemManager announced (or listed) and publish it once. */
static void sms_read(struct cell *s, const char *path)
{
	struct sms_in *x = sms_in_find(s, path);

	if (seen_has(s, path) || (x && x->call))
		return;
	if (!x) {
		if (s->n_in >= SMS_IN_MAX || strlen(path) >= PATH_MAX_LEN) {
			note_error(s, "too many SMS arriving at once", NULL, -ENOBUFS);
			return;
		}
		x = calloc(1, sizeof(*x));
		if (!x)
			return;
		x->s = s;
		snprintf(x->path, sizeof(x->path), "%s", path);
		x->next = s->in;
		s->in = x;
		s->n_in++;
	}
	x->receiving = false;
	if (call(s, &x->call, path, IFACE_PROPS, "GetAll", sms_props_got, x, CALL_TIMEOUT_US, "s",
		 IFACE_SMS) < 0)
		sms_in_free(s, x);
}

static int messages_listed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	const char *path;
	int rc;

	if (sd_bus_message_is_method_error(m, NULL)) {
		note_error(s, "listing the modem's SMS", sd_bus_message_get_error(m), 0);
		return 0;
	}
	if ((rc = sd_bus_message_enter_container(m, 'a', "o")) < 0) {
		bad_message(s, "Messaging.List", rc);
		return 0;
	}
	while ((rc = sd_bus_message_read_basic(m, 'o', &path)) > 0) {
		/* stored SMS are published when they are deleted after: kept
		 * ones would come again at every start */
		if (s->delete_after_read)
			sms_read(s, path);
		else
			seen_add(s, path);
	}
	if (rc < 0)
		bad_message(s, "Messaging.List", rc);
	return 0;
}

static int on_sms_added(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	struct modem *md = bound_modem(s);
	const char *spath = sd_bus_message_get_path(m), *path;
	int received = 0, rc;

	if (!md || !spath || strcmp(spath, md->path) || !busloop_from_service(&s->bl, m))
		return 0;
	if ((rc = sd_bus_message_read(m, "ob", &path, &received)) < 0) {
		bad_message(s, "Messaging.Added", rc);
		return 0;
	}
	if (received)
		sms_read(s, path);
	return 0;
}

/* ---- sending SMS -------------------------------------------------------- */

static void sms_out_free(struct cell *s, struct sms_out *o)
{
	struct sms_out **pp = &s->out;

	while (*pp && *pp != o)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = o->next;
		s->n_out--;
	}
	sd_bus_slot_unref(o->call);
	free(o->text);
	free(o);
}

static void sms_out_fail(struct cell *s, struct sms_out *o, const char *why)
{
	s->cnt.sms_failed++;
	s->state_dirty = true;
	s->h->tx_status(s->r, o->cmd_id, LABGW_TX_FAILED, why);
	if (o->path[0])
		sms_delete(s, o->path);
	sms_out_free(s, o);
}

static void sms_out_fail_all(struct cell *s, const char *why)
{
	while (s->out) {
		s->out->path[0] = 0; /* nothing left to delete it with */
		sms_out_fail(s, s->out, why);
	}
}

static int sms_sent(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct sms_out *o = ud;
	struct cell *s = o->s;
	const sd_bus_error *e = sd_bus_message_get_error(m);

	o->call = sd_bus_slot_unref(o->call);
	if (e) {
		char why[300];

		snprintf(why, sizeof(why), "ModemManager could not send the SMS: %s",
			 e->message ? e->message : e->name);
		s->h->log(s->r, LABGW_LOG_WARNING, "SMS %s of %s: %s", o->cmd_id,
			  o->sbx[0] ? o->sbx : "staff", why);
		sms_out_fail(s, o, why);
		return 0;
	}
	s->cnt.sms_sent++;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_INFO, "SMS %s of %s sent", o->cmd_id,
		  o->sbx[0] ? o->sbx : "staff");
	s->h->tx_status(s->r, o->cmd_id, LABGW_TX_ACKED, NULL);
	/* sent SMS stay in ModemManager's list until deleted */
	sms_delete(s, o->path);
	sms_out_free(s, o);
	return 0;
}

static int sms_created(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct sms_out *o = ud;
	struct cell *s = o->s;
	const sd_bus_error *e = sd_bus_message_get_error(m);
	const char *path;
	int rc;

	o->call = sd_bus_slot_unref(o->call);
	if (e) {
		char why[300];

		snprintf(why, sizeof(why), "ModemManager could not create the SMS: %s",
			 e->message ? e->message : e->name);
		sms_out_fail(s, o, why);
		return 0;
	}
	if ((rc = sd_bus_message_read_basic(m, 'o', &path)) < 0 || strlen(path) >= PATH_MAX_LEN) {
		bad_message(s, "Messaging.Create", rc < 0 ? rc : -E2BIG);
		sms_out_fail(s, o, "ModemManager's answer to Create was not understood");
		return 0;
	}
	snprintf(o->path, sizeof(o->path), "%s", path);
	rc = call(s, &o->call, o->path, IFACE_SMS, "Send", sms_sent, o, SEND_TIMEOUT_US, NULL);
	if (rc < 0) {
		sms_out_fail(s, o, "cannot talk to ModemManager");
		return 0;
	}
	s->h->tx_status(s->r, o->cmd_id, LABGW_TX_SENT, NULL);
	return 0;
}

static bool utf8_valid(const char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)p[i];
		size_t k = c < 0x80		? 1
			   : (c & 0xe0) == 0xc0 ? 2
			   : (c & 0xf0) == 0xe0 ? 3
			   : (c & 0xf8) == 0xf0 ? 4
						: 0;

		if (!k || i + k > n || (k == 2 && c < 0xc2) || c == 0)
			return false;
		for (size_t j = 1; j < k; j++)
			if (((unsigned char)p[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

static int sms_send(struct cell *s, const struct labgw_command *cmd, json_t *body, char *errbuf,
		    size_t errlen)
{
	json_t *jto = json_object_get(body, "to"), *jtext = json_object_get(body, "text");
	struct modem *md = bound_modem(s);
	struct sms_out *o;
	const char *to, *text;
	size_t tlen;
	int rc;

	if (!json_is_string(jto) || !json_is_string(jtext))
		return refuse(errbuf, errlen, -EINVAL,
			      "an SMS is {\"to\": \"+4915112345678\", \"text\": \"...\"}");
	to = json_string_value(jto);
	text = json_string_value(jtext);
	tlen = json_string_length(jtext);
	if (!mm_is_e164(to))
		return refuse(errbuf, errlen, -EINVAL,
			      "\"to\" must be an E.164 number like +4915112345678");
	if (!tlen || tlen > SMS_TEXT_MAX || strlen(text) != tlen || !utf8_valid(text, tlen))
		return refuse(errbuf, errlen, -EINVAL, "\"text\" must be 1 to %d bytes of UTF-8",
			      SMS_TEXT_MAX);
	if (!s->bl.bus || !md)
		return refuse(errbuf, errlen, -ENODEV, "no modem");
	if (!md->has_messaging)
		return refuse(errbuf, errlen, -ENODEV,
			      "the modem cannot send SMS now (not enabled, or no SMS support)");
	if (s->n_out >= SMS_OUT_MAX)
		return refuse(errbuf, errlen, -EBUSY, "%d SMS are being sent", SMS_OUT_MAX);
	o = calloc(1, sizeof(*o));
	if (!o || !(o->text = strdup(text))) {
		free(o);
		return refuse(errbuf, errlen, -ENOMEM, "out of memory");
	}
	o->s = s;
	snprintf(o->cmd_id, sizeof(o->cmd_id), "%s", cmd->id);
	snprintf(o->sbx, sizeof(o->sbx), "%s", cmd->sbx ? cmd->sbx : "");
	snprintf(o->to, sizeof(o->to), "%s", to);
	rc = call(s, &o->call, md->path, IFACE_MESSAGING, "Create", sms_created, o, CALL_TIMEOUT_US,
		  "a{sv}", 2, "number", "s", o->to, "text", "s", o->text);
	if (rc < 0) {
		sd_bus_slot_unref(o->call);
		free(o->text);
		free(o);
		return refuse(errbuf, errlen, -EIO, "cannot talk to ModemManager: %s",
			      strerror(-rc));
	}
	o->next = s->out;
	s->out = o;
	s->n_out++;
	return 0;
}

/* ---- the SIM ------------------------------------------------------------ */

static int sim_got(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	int rc;

	s->sim_call = sd_bus_slot_unref(s->sim_call);
	if (sd_bus_message_is_method_error(m, NULL)) {
		note_error(s, "reading the SIM", sd_bus_message_get_error(m), 0);
		return 0;
	}
	if ((rc = sd_bus_message_enter_container(m, 'a', "{sv}")) < 0)
		goto bad;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
		const char *key;

		if ((rc = sd_bus_message_read_basic(m, 's', &key)) < 0)
			goto bad;
		if (!strcmp(key, "Imsi") || !strcmp(key, "SimIdentifier")) {
			bool imsi = key[0] == 'I';

			rc = variant_is(s, m, key, "s");
			if (rc > 0)
				rc = read_v_str(m, imsi ? s->sim_imsi : s->sim_iccid,
						imsi ? sizeof(s->sim_imsi) : sizeof(s->sim_iccid));
		} else {
			rc = sd_bus_message_skip(m, "v");
		}
		if (rc < 0 || (rc = sd_bus_message_exit_container(m)) < 0)
			goto bad;
	}
	if (rc < 0)
		goto bad;
	s->state_dirty = true;
	return 0;
bad:
	bad_message(s, "SIM properties", rc);
	return 0;
}

static void sim_read(struct cell *s, struct modem *md)
{
	s->sim_call = sd_bus_slot_unref(s->sim_call);
	s->sim_imsi[0] = s->sim_iccid[0] = 0;
	s->state_dirty = true;
	if (!md->sim_path[0] || !strcmp(md->sim_path, "/"))
		return;
	if (call(s, &s->sim_call, md->sim_path, IFACE_PROPS, "GetAll", sim_got, s, CALL_TIMEOUT_US,
		 "s", IFACE_SIM) < 0)
		note_error(s, "reading the SIM", NULL, -EIO);
}

/* ---- modems ------------------------------------------------------------- */

static struct modem *modem_find(struct cell *s, const char *path)
{
	for (unsigned i = 0; i < MODEMS_MAX; i++)
		if (s->modems[i].used && !strcmp(s->modems[i].path, path))
			return &s->modems[i];
	return NULL;
}

static struct modem *modem_get(struct cell *s, const char *path)
{
	struct modem *md = modem_find(s, path);

	if (md)
		return md;
	if (strlen(path) >= PATH_MAX_LEN)
		return NULL;
	for (unsigned i = 0; i < MODEMS_MAX; i++) {
		if (s->modems[i].used)
			continue;
		md = &s->modems[i];
		memset(md, 0, sizeof(*md));
		md->used = true;
		snprintf(md->path, sizeof(md->path), "%s", path);
		s->cnt.modems_added++;
		return md;
	}
	return NULL;
}

static bool modem_matches(const struct cell *s, const struct modem *md)
{
	const char *sel = s->modem_sel;
	const char *base;

	if (!md->has_modem)
		return false;
	if (!sel[0])
		return true;
	base = strrchr(md->device, '/');
	return !strcmp(sel, md->equipment_id) || !strcmp(sel, md->imei) ||
	       !strcmp(sel, md->primary_port) || !strcmp(sel, md->device) ||
	       (base && !strcmp(sel, base + 1)) || !strcmp(sel, md->path);
}

static void unbind(struct cell *s, const char *why)
{
	struct modem *md = bound_modem(s);

	if (!md)
		return;
	s->h->log(s->r, LABGW_LOG_NOTICE, "modem %s: %s", md->path, why);
	s->bound = -1;
	s->sim_call = sd_bus_slot_unref(s->sim_call);
	s->sim_imsi[0] = s->sim_iccid[0] = 0;
	while (s->in)
		sms_in_free(s, s->in);
	sms_out_fail_all(s, "the modem went away");
	s->state_dirty = true;
}

static int signal_set_up(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;

	if (sd_bus_message_is_method_error(m, NULL))
		note_error(s, "setting up the extended signal information",
			   sd_bus_message_get_error(m), 0);
	return 0;
}

static int enabled(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;

	if (sd_bus_message_is_method_error(m, NULL))
		note_error(s, "enabling the modem", sd_bus_message_get_error(m), 0);
	return 0;
}

/* What a bound modem needs from us as its interfaces come and go. */
static void modem_drive(struct cell *s)
{
	struct modem *md = bound_modem(s);

	if (!md)
		return;
	if (s->enable && md->has_state && md->state == MM_STATE_DISABLED && !s->enable_sent) {
		s->enable_sent = true;
		s->h->log(s->r, LABGW_LOG_INFO, "enabling modem %s", md->path);
		if (call(s, NULL, md->path, IFACE_MODEM, "Enable", enabled, s, CALL_TIMEOUT_US, "b",
			 1) < 0)
			note_error(s, "enabling the modem", NULL, -EIO);
	}
	if (md->has_state && md->state != MM_STATE_DISABLED)
		s->enable_sent = false; /* disabled again later: enable again */
	if (md->has_signal && !s->signal_setup_sent) {
		s->signal_setup_sent = true;
		if (call(s, NULL, md->path, IFACE_SIGNAL, "Setup", signal_set_up, s,
			 CALL_TIMEOUT_US, "u", (uint32_t)(s->signal_ms / 1000)) < 0)
			note_error(s, "setting up the extended signal information", NULL, -EIO);
	}
	if (!md->has_signal)
		s->signal_setup_sent = false;
}

/* Bind a modem when none is, or drop one that went. */
static void bind_update(struct cell *s)
{
	if (!s->bl.bus) {
		tell_present(s, false, "no system bus");
		return;
	}
	if (!s->bl.owner[0]) {
		tell_present(s, false, "ModemManager is not running");
		return;
	}
	if (!s->objects_loaded)
		return;
	if (s->bound < 0) {
		for (unsigned i = 0; i < MODEMS_MAX; i++) {
			struct modem *md = &s->modems[i];

			if (!md->used || !modem_matches(s, md))
				continue;
			s->bound = (int)i;
			s->enable_sent = s->signal_setup_sent = false;
			s->h->log(s->r, LABGW_LOG_NOTICE, "modem %s: %s %s", md->path,
				  md->manufacturer[0] ? md->manufacturer : "?",
				  md->model[0] ? md->model : "?");
			sim_read(s, md);
			if (md->has_messaging &&
			    call(s, NULL, md->path, IFACE_MESSAGING, "List", messages_listed, s,
				 CALL_TIMEOUT_US, NULL) < 0)
				note_error(s, "listing the modem's SMS", NULL, -EIO);
			s->state_dirty = true;
			break;
		}
	}
	if (s->bound < 0) {
		tell_present(s, false,
			     s->modem_sel[0] ? "no modem matching 'modem' in ModemManager"
					     : "no modem in ModemManager");
		return;
	}
	tell_present(s, true, NULL);
	modem_drive(s);
}

/* One object's a{sa{sv}} (InterfacesAdded, GetManagedObjects). */
static int read_object(struct cell *s, sd_bus_message *m, const char *path)
{
	struct modem *md = NULL;
	bool is_modem_path = !strncmp(path, MM_MODEM_PREFIX, strlen(MM_MODEM_PREFIX));
	int rc, changed = 0;

	if ((rc = sd_bus_message_enter_container(m, 'a', "{sa{sv}}")) < 0)
		return rc;
	while ((rc = sd_bus_message_enter_container(m, 'e', "sa{sv}")) > 0) {
		const char *iface;

		if ((rc = sd_bus_message_read_basic(m, 's', &iface)) < 0)
			return rc;
		if (is_modem_path && !md)
			md = modem_get(s, path);
		if (!md || strncmp(iface, IFACE_MODEM, strlen(IFACE_MODEM))) {
			rc = sd_bus_message_skip(m, "a{sv}");
		} else {
			if (!strcmp(iface, IFACE_MODEM))
				md->has_modem = true;
			else if (!strcmp(iface, IFACE_3GPP))
				md->has_3gpp = true;
			else if (!strcmp(iface, IFACE_SIGNAL))
				md->has_signal = true;
			else if (!strcmp(iface, IFACE_MESSAGING) && !md->has_messaging) {
				md->has_messaging = true;
				/* SMS support appears when the modem is enabled */
				if (md == bound_modem(s) &&
				    call(s, NULL, md->path, IFACE_MESSAGING, "List",
					 messages_listed, s, CALL_TIMEOUT_US, NULL) < 0)
					note_error(s, "listing the modem's SMS", NULL, -EIO);
			}
			rc = read_modem_props(s, m, iface, md);
			if (rc > 0)
				changed |= rc;
		}
		if (rc < 0)
			return rc;
		if ((rc = sd_bus_message_exit_container(m)) < 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	if (md && md == bound_modem(s)) {
		if (changed & CHANGED_SIM)
			sim_read(s, md);
		if (changed & CHANGED_SIGNAL)
			publish_signal(s, md);
	}
	s->state_dirty = true;
	return sd_bus_message_exit_container(m);
}

static int on_interfaces_added(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	const char *path;
	int rc;

	if (!busloop_from_service(&s->bl, m) || !s->objects_loaded)
		return 0;
	rc = sd_bus_message_read_basic(m, 'o', &path);
	if (rc >= 0)
		rc = read_object(s, m, path);
	if (rc < 0)
		bad_message(s, "InterfacesAdded", rc);
	bind_update(s);
	return 0;
}

static int on_interfaces_removed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	const char *path, *iface;
	struct modem *md;
	int rc;

	if (!busloop_from_service(&s->bl, m))
		return 0;
	if ((rc = sd_bus_message_read_basic(m, 'o', &path)) < 0 ||
	    (rc = sd_bus_message_enter_container(m, 'a', "s")) < 0) {
		bad_message(s, "InterfacesRemoved", rc);
		return 0;
	}
	md = modem_find(s, path);
	while ((rc = sd_bus_message_read_basic(m, 's', &iface)) > 0) {
		if (!md)
			continue;
		if (!strcmp(iface, IFACE_MODEM)) {
			if (md == bound_modem(s))
				unbind(s, "went away");
			md->used = false;
			s->cnt.modems_removed++;
			s->state_dirty = true;
			md = NULL;
		} else if (!strcmp(iface, IFACE_3GPP)) {
			md->has_3gpp = md->has_reg = false;
			md->op_code[0] = md->op_name[0] = 0;
		} else if (!strcmp(iface, IFACE_SIGNAL)) {
			md->has_signal = false;
			memset(md->sig, 0, sizeof(md->sig));
		} else if (!strcmp(iface, IFACE_MESSAGING)) {
			md->has_messaging = false;
		}
		s->state_dirty = true;
	}
	if (rc < 0)
		bad_message(s, "InterfacesRemoved", rc);
	bind_update(s);
	return 0;
}

static int on_properties_changed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	const char *path = sd_bus_message_get_path(m), *iface;
	struct modem *md;
	int rc;

	if (!busloop_from_service(&s->bl, m) || !path || !s->objects_loaded)
		return 0;
	if ((rc = sd_bus_message_read_basic(m, 's', &iface)) < 0) {
		bad_message(s, "PropertiesChanged", rc);
		return 0;
	}
	if (!strcmp(iface, IFACE_SMS)) {
		struct sms_in *x = sms_in_find(s, path);

		/* a multi-part SMS complete: read it again */
		if (x && x->receiving)
			sms_read(s, path);
		return 0;
	}
	if (!strcmp(iface, IFACE_SIM)) {
		md = bound_modem(s);
		if (md && !strcmp(path, md->sim_path))
			sim_read(s, md);
		return 0;
	}
	md = modem_find(s, path);
	if (!md || strncmp(iface, IFACE_MODEM, strlen(IFACE_MODEM)))
		return 0;
	rc = read_modem_props(s, m, iface, md);
	if (rc < 0) {
		bad_message(s, "PropertiesChanged", rc);
		return 0;
	}
	if (md == bound_modem(s)) {
		if (rc & CHANGED_SIM)
			sim_read(s, md);
		if (rc & CHANGED_SIGNAL)
			publish_signal(s, md);
		if (rc & CHANGED_STATE)
			modem_drive(s);
	} else if (s->bound < 0) {
		bind_update(s); /* an identifier that matches may have come */
	}
	return 0;
}

static int objects_loaded(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct cell *s = ud;
	int rc;

	if (sd_bus_message_is_method_error(m, NULL)) {
		note_error(s, "listing ModemManager's modems", sd_bus_message_get_error(m), 0);
		return 0;
	}
	rc = sd_bus_message_enter_container(m, 'a', "{oa{sa{sv}}}");
	while (rc >= 0 && (rc = sd_bus_message_enter_container(m, 'e', "oa{sa{sv}}")) > 0) {
		const char *path;

		if ((rc = sd_bus_message_read_basic(m, 'o', &path)) < 0 ||
		    (rc = read_object(s, m, path)) < 0 ||
		    (rc = sd_bus_message_exit_container(m)) < 0)
			break;
	}
	if (rc < 0)
		bad_message(s, "GetManagedObjects", rc);
	s->objects_loaded = true;
	s->state_dirty = true;
	bind_update(s);
	return 0;
}

static void mm_forget(struct cell *s)
{
	unbind(s, "ModemManager left");
	memset(s->modems, 0, sizeof(s->modems));
	s->objects_loaded = false;
	s->state_dirty = true;
}

static void mm_appeared(void *ud, const char *owner, bool restart)
{
	struct cell *s = ud;

	if (restart)
		s->cnt.mm_restarts++;
	s->objects_loaded = false;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_NOTICE, "ModemManager is on the bus (%s)", owner);
	if (call(s, NULL, MM_PATH, IFACE_OBJMGR, "GetManagedObjects", objects_loaded, s,
		 CALL_TIMEOUT_US, NULL) < 0)
		note_error(s, "listing ModemManager's modems", NULL, -EIO);
}

static void mm_gone(void *ud)
{
	struct cell *s = ud;

	mm_forget(s);
	s->h->log(s->r, LABGW_LOG_WARNING, "ModemManager left the bus: waiting for it to return");
	bind_update(s);
}

static void mm_absent(void *ud)
{
	struct cell *s = ud;

	s->h->log(s->r, LABGW_LOG_WARNING,
		  "ModemManager is not on the bus: waiting for it to appear");
	s->state_dirty = true;
	bind_update(s);
}

/* ---- the bus connection ------------------------------------------------- */

/* The connection is closing: what was under way with ModemManager ends. */
static void bus_closing(void *ud)
{
	struct cell *s = ud;

	sms_out_fail_all(s, "the connection to ModemManager was closed");
	mm_forget(s);
	while (s->in)
		sms_in_free(s, s->in);
	s->sim_call = sd_bus_slot_unref(s->sim_call);
}

static void bus_lost(void *ud)
{
	bind_update(ud);
}

static void bus_processed(void *ud)
{
	struct cell *s = ud;

	if (s->state_dirty)
		publish_state(s);
}

static const char *const matches[] = {
	"type='signal',interface='org.freedesktop.DBus.ObjectManager',"
	"member='InterfacesAdded',path='/org/freedesktop/ModemManager1'",
	"type='signal',interface='org.freedesktop.DBus.ObjectManager',"
	"member='InterfacesRemoved',path='/org/freedesktop/ModemManager1'",
	"type='signal',interface='org.freedesktop.DBus.Properties',"
	"member='PropertiesChanged',path_namespace='/org/freedesktop/ModemManager1'",
	"type='signal',interface='org.freedesktop.ModemManager1.Modem.Messaging',"
	"member='Added',path_namespace='/org/freedesktop/ModemManager1'",
};

static int bus_open(struct cell *s)
{
	static const sd_bus_message_handler_t handlers[] = {
		on_interfaces_added,
		on_interfaces_removed,
		on_properties_changed,
		on_sms_added,
	};

	return busloop_open(&s->bl, "labgw-cellular", matches, handlers,
			    sizeof(matches) / sizeof(matches[0]));
}

static int bus_reopen(void *ud)
{
	struct cell *s = ud;

	if (!s->running)
		return 0;
	if (bus_open(s) < 0)
		return -1;
	s->cnt.bus_reconnects++;
	s->h->log(s->r, LABGW_LOG_NOTICE, "back on the system bus");
	return 0;
}

/* ---- state -------------------------------------------------------------- */

static int publish_state(struct cell *s)
{
	struct modem *md = bound_modem(s);
	struct fb b = {.h = s->h, .err = 0};
	const char *mm = !s->bl.bus ? "no system bus" : s->bl.owner[0] ? "running" : "absent";

	b.f = s->h->frame_new(s->r, LABGW_TECH_NONE, "state.radio");
	if (!b.f)
		return -ENOMEM;
	fb_str(&b, LABGW_DATA, "modemmanager", mm);
	if (s->modem_sel[0])
		fb_str(&b, LABGW_DATA, "modem_selector", s->modem_sel);
	/* the modem's fields form one object, replaced as a whole: what a
	 * modem that went told does not stay */
	fb_bool(&b, LABGW_DATA, "modem.present", md != NULL);
	/* personal data (IMEI, IMSI, ICCID, own numbers): the daemon shows
	 * `staff` to staff keys only */
	fb_bool(&b, LABGW_DATA, "staff.present", md != NULL);
	if (md) {
		const char *at[24];
		size_t n_at = mm_access_tech_names(md->access_tech, at, 24);
		const char *name;

		fb_str(&b, LABGW_DATA, "modem.path", md->path);
		if (md->has_state && (name = mm_state_name(md->state)))
			fb_str(&b, LABGW_DATA, "modem.state", name);
		if (md->has_state && md->state == -1 &&
		    (name = mm_failed_reason_name(md->failed_reason)))
			fb_str(&b, LABGW_DATA, "modem.failed_reason", name);
		if ((name = mm_family_name(mm_family_of(md->access_tech))))
			fb_str(&b, LABGW_DATA, "modem.access_tech", name);
		for (size_t i = 0; i < n_at; i++)
			fb_append(&b, LABGW_DATA, "modem.access_technologies", at[i]);
		if (!n_at)
			fb_str(&b, LABGW_DATA, "modem.access_technologies", "");
		fb_int(&b, LABGW_DATA, "modem.signal_quality", md->quality);
		fb_bool(&b, LABGW_DATA, "modem.signal_recent", md->quality_recent);
		if (md->has_reg && (name = mm_registration_name(md->reg)))
			fb_str(&b, LABGW_DATA, "modem.registration", name);
		if (md->op_code[0])
			fb_str(&b, LABGW_DATA, "modem.operator_code", md->op_code);
		if (md->op_name[0])
			fb_str(&b, LABGW_DATA, "modem.operator_name", md->op_name);
		if (md->manufacturer[0])
			fb_str(&b, LABGW_DATA, "modem.manufacturer", md->manufacturer);
		if (md->model[0])
			fb_str(&b, LABGW_DATA, "modem.model", md->model);
		if (md->revision[0])
			fb_str(&b, LABGW_DATA, "modem.firmware", md->revision);
		if (md->primary_port[0])
			fb_str(&b, LABGW_DATA, "modem.primary_port", md->primary_port);
		fb_bool(&b, LABGW_DATA, "modem.sms", md->has_messaging);
		fb_bool(&b, LABGW_DATA, "modem.signal_setup", md->has_signal);
		if (md->has_signal)
			fb_int(&b, LABGW_DATA, "modem.signal_rate_s", md->signal_rate);
		if (md->imei[0])
			fb_str(&b, LABGW_DATA, "staff.imei", md->imei);
		if (md->equipment_id[0])
			fb_str(&b, LABGW_DATA, "staff.equipment_id", md->equipment_id);
		if (s->sim_imsi[0])
			fb_str(&b, LABGW_DATA, "staff.imsi", s->sim_imsi);
		if (s->sim_iccid[0])
			fb_str(&b, LABGW_DATA, "staff.iccid", s->sim_iccid);
		for (unsigned i = 0; i < md->n_numbers; i++)
			fb_append(&b, LABGW_DATA, "staff.own_numbers", md->numbers[i]);
	}
	{
		unsigned n = 0;

		for (unsigned i = 0; i < MODEMS_MAX; i++)
			n += s->modems[i].used;
		fb_int(&b, LABGW_DATA, "modems", n);
	}
	if (s->last_error[0])
		fb_str(&b, LABGW_DATA, "last_error", s->last_error);
#define CNT(name) fb_int(&b, LABGW_DATA, "counters." #name, (int64_t)s->cnt.name)
	CNT(sms_received);
	CNT(sms_deleted);
	CNT(sms_sent);
	CNT(sms_failed);
	CNT(signal_frames);
	CNT(dbus_bad);
	CNT(mm_restarts);
	CNT(bus_reconnects);
	CNT(modems_added);
	CNT(modems_removed);
#undef CNT
	if (b.err < 0) {
		s->h->frame_discard(b.f);
		return b.err;
	}
	s->state_dirty = false;
	return s->h->state_update(b.f);
}

static int tick_cb(void *ud)
{
	struct cell *s = ud;

	if (s->bl.bus)
		busloop_arm(&s->bl); /* calls made outside the bus callbacks wait to be written */
	if (s->state_dirty)
		publish_state(s);
	return 0;
}

/* ---- module entry points ------------------------------------------------ */

static int cell_init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct cell *s;
	const char *sel;
	int rc = 0, rcs[3];

	if (host->size < offsetof(struct labgw_host, reserved))
		return -EINVAL; /* needs ABI 1.4: tx_status of every kind */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->h = host;
	s->bl = (struct busloop){.h = host,
				 .r = r,
				 .ud = s,
				 .reconnect_ms = RECONNECT_MS,
				 .closing = bus_closing,
				 .lost = bus_lost,
				 .processed = bus_processed,
				 .reopen = bus_reopen,
				 .service = MM_NAME,
				 .appeared = mm_appeared,
				 .gone = mm_gone,
				 .absent = mm_absent};
	s->bound = -1;
	sel = host->config_get(r, "modem");
	rcs[0] = host->config_get_duration_ms(r, "signal_interval", 1000, 3600000, 10000,
					      &s->signal_ms);
	rcs[1] = host->config_get_bool(r, "delete_after_read", true, &s->delete_after_read);
	rcs[2] = host->config_get_bool(r, "enable", true, &s->enable);
	for (size_t i = 0; i < 3; i++)
		if (rcs[i] < 0)
			rc = rcs[i];
	if (s->signal_ms % 1000) {
		host->config_error(r, "signal_interval",
				   "ModemManager takes whole seconds (1s to 1h)");
		rc = -EINVAL;
	}
	if (sel && strcmp(sel, "any")) {
		if (!*sel || strlen(sel) >= sizeof(s->modem_sel) ||
		    strspn(sel, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				"_-.:/") != strlen(sel)) {
			host->config_error(r, "modem",
					   "'%s' is not 'any', an equipment id/IMEI, a port like "
					   "cdc-wdm0 or a device path",
					   sel);
			rc = -EINVAL;
		} else {
			snprintf(s->modem_sel, sizeof(s->modem_sel), "%s", sel);
		}
	}
	if (rc < 0) {
		free(s);
		return rc;
	}
	host->radio_set_techs(r, LABGW_TECH_CELLULAR);
	*state = s;
	return 0;
}

static int cell_start(void *state)
{
	struct cell *s = state;
	int rc;

	if (s->running)
		return 0;
	s->present_told = false;
	rc = bus_open(s);
	if (rc < 0) {
		s->h->log(s->r, LABGW_LOG_ERROR, "cannot reach the system bus: %s", strerror(-rc));
		return -ENODEV; /* no system bus: as good as no modem */
	}
	s->tick = s->h->timer_add(s->r, TICK_MS, TICK_MS, tick_cb, s);
	if (!s->tick) {
		busloop_close(&s->bl);
		return -ENOMEM;
	}
	s->running = true;
	/* absent until a modem is bound */
	tell_present(s, false, "waiting for ModemManager");
	publish_state(s);
	return 0;
}

static int cell_command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct cell *s = state;
	json_t *body = json_loadb(cmd->body, cmd->body_len, 0, NULL);
	int rc;

	if (!json_is_object(body)) {
		json_decref(body);
		return refuse(errbuf, errlen, -EINVAL, "the body is not a JSON object");
	}
	if (!strcmp(cmd->op, "lease.ended") || !strcmp(cmd->op, "claim.ended")) {
		/* an SMS handed to the modem cannot be called back */
		rc = refuse(errbuf, errlen, -ENOTSUP, "nothing to stop");
	} else if (strcmp(cmd->op, "tx")) {
		rc = refuse(errbuf, errlen, -ENOTSUP, "the cellular radio has no operation \"%s\"",
			    cmd->op);
	} else {
		rc = sms_send(s, cmd, body, errbuf, errlen);
	}
	json_decref(body);
	if (s->bl.bus)
		busloop_arm(&s->bl); /* the call waits to be written */
	return rc;
}

static void cell_stop(void *state)
{
	struct cell *s = state;

	s->running = false;
	if (s->tick)
		s->h->timer_cancel(s->r, s->tick);
	s->tick = 0;
	busloop_stop(&s->bl);
}

static void cell_exit(void *state)
{
	struct cell *s = state;

	if (!s)
		return;
	while (s->in)
		sms_in_free(s, s->in);
	while (s->out)
		sms_out_free(s, s->out);
	free(s);
}

LABGW_PLUGIN_DEFINE(.name = "cellular", .version = LABGW_VERSION, .techs = LABGW_TECH_CELLULAR,
		    .init = cell_init, .start = cell_start, .command = cell_command,
		    .stop = cell_stop, .exit = cell_exit);
