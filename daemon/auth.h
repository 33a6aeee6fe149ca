/* Who is asking (DESIGN §2, §7). A key is "<key_id>.<secret>"; the id may be
 * logged, the secret never. Keys are checked by sandboxes_auth(). */
#ifndef LABGW_AUTH_H
#define LABGW_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#define AUTH_KEY_MAX 512

struct principal {
	char key_id[33];    /* loggable */
	char sbx[33];	    /* the sandbox of a sandbox key; "" for staff and kiosk */
	uint32_t rights;    /* RIGHT_* (sandbox.h) */
	uint32_t tx_techs;  /* tx:<tech> rights, OR of enum labgw_tech */
	int64_t expires_us; /* 0: never */
	/* requests that arrive through the broker, whose ACL checked the
	 * topic: the sandbox's own rights are implied */
	bool via_broker;
	/* a WebSocket session opened with {"op":"auth","anonymous":true}: no
	 * key, no rights; it reads labgw/v1/pub/... and nothing else */
	bool anonymous;
};

static inline bool principal_is_staff(const struct principal *p)
{
	return (p->rights & (1u << 4)) != 0; /* RIGHT_ADMIN */
}

/* Split "<key_id>.<secret>": 0, or -EINVAL with a reason safe to show. The
 * id part must be a valid key id; the secret is 43 base64url characters. */
int auth_split_key(const char *key, char id[33], const char **secret, const char **why);

#endif
