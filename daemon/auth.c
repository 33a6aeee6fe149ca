#include "auth.h"

#include <errno.h>
#include <string.h>

#include "util.h"

#define SECRET_LEN 43 /* 32 bytes in unpadded base64url */

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int auth_split_key(const char *key, char id[33], const char **secret, const char **why)
{
	const char *dot = strchr(key, '.');
	size_t idlen = dot ? (size_t)(dot - key) : 0;
	if (!dot || idlen == 0 || idlen > 32) {
		*why = "a key looks like <key_id>.<secret>";
		return -EINVAL;
	}
	memcpy(id, key, idlen);
	id[idlen] = '\0';
	if (!ident_valid(id, 32)) {
		*why = "a key looks like <key_id>.<secret>";
		return -EINVAL;
	}
	const char *s = dot + 1;
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++) {
		if (!b64url_char(s[i])) {
			*why = "a key looks like <key_id>.<secret>";
			return -EINVAL;
		}
	}
	if (n != SECRET_LEN) {
		*why = "a key looks like <key_id>.<secret>";
		return -EINVAL;
	}
	*secret = s;
	return 0;
}
