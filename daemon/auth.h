/* Who is asking: API keys (DESIGN §2, §7). A key is "<key_id>.<secret>"; the
 * id may be logged, the secret never.
 *
 * Foundation stage: every well-formed key is accepted with staff rights.
 * The sandbox issue replaces auth_check with the key store (hashes, rights,
 * expiry); callers already go through this one function. */
#ifndef LABGW_AUTH_H
#define LABGW_AUTH_H

#include <stdbool.h>

#define AUTH_KEY_MAX 512

struct principal {
	char key_id[65]; /* loggable */
	bool staff;
	char sbx[33]; /* the sandbox of a sandbox key, "" for staff */
};

/* 0 and *who filled, or -EACCES (unknown, revoked, expired) or -EINVAL
 * (malformed) with a reason safe to show the client (no secret in it). */
int auth_check(const char *key, struct principal *who, const char **why);

#endif
