/* Base64 (RFC 4648 §4, standard alphabet), pure: one implementation for the
 * daemon and the radio modules. */
#ifndef LABGW_BASE64_H
#define LABGW_BASE64_H

#include <stddef.h>
#include <stdint.h>

size_t base64_encoded_len(size_t n);
/* Writes base64 of data and a NUL into out (base64_encoded_len(n) + 1 bytes). */
void base64_encode(const void *data, size_t n, char *out);
/* Strict decoding of `len` characters: padding optional but correct, no
 * other characters. Returns the bytes written, or -1 for bad input or an
 * output beyond `cap`. */
long base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);

#endif
