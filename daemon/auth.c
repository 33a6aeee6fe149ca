#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int auth_check(const char *key, struct principal *who, const char **why)
{
	size_t n = strlen(key);
	if (n == 0 || n > AUTH_KEY_MAX) {
		*why = "key must be 1 to 512 characters";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c <= 0x20 || c >= 0x7f) {
			*why = "key must be printable ASCII without spaces";
			return -EINVAL;
		}
	}
	const char *dot = strchr(key, '.');
	size_t idlen = dot ? (size_t)(dot - key) : 0;
	if (idlen == 0 || idlen > 64 || !dot[1]) {
		*why = "key must look like <key_id>.<secret>";
		return -EINVAL;
	}
	memset(who, 0, sizeof(*who));
	memcpy(who->key_id, key, idlen);
	who->staff = true;
	return 0;
}
