/* SPDX-License-Identifier: MIT */
/*
 * A strict JSON tokenizer (RFC 8259) that builds no tree: one pass checks
 * the whole document and writes a flat array of tokens in document order;
 * the accessors read keys, strings and numbers out of the text on demand.
 * Made for datagrams that are read once (the GWMP PUSH_DATA of the lorawan
 * module), where a jansson tree costs a malloc per value.
 *
 * Accepted is what jansson 2.14 accepts with JSON_DECODE_ANY, so that the
 * two can be swapped: a value nested at most JSONTOK_DEPTH_MAX deep (the
 * root is at depth 1), strings of valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) with the escapes of RFC 8259 and
 * \u surrogate pairs only as pairs, numbers per the RFC grammar, the
 * literals true, false and null, whitespace of space, tab, CR and LF, and
 * nothing after the root value. Two differences, which callers decide on:
 *  - a string with U+0000 (written \u0000) is accepted and flagged
 *    (JSONTOK_DOC_NUL); jansson refuses it without JSON_ALLOW_NUL, and in
 *    object keys always;
 *  - numbers are not converted while tokenizing: an integer beyond int64 or
 *    a number beyond the range of a double (1e400), which jansson refuses,
 *    is a valid token here; jsontok_num() reports it with -ERANGE.
 *
 * Pure: no globals and no I/O. Allocations: jsontok_load() for documents
 * beyond the caller's workspace, jsontok_num() for numbers of more than 63
 * characters and when the process runs in a locale whose decimal point is
 * not '.'.
 */
#ifndef LABGW_LORAWAN_JSONTOK_H
#define LABGW_LORAWAN_JSONTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONTOK_DEPTH_MAX 2048	      /* jansson's JSON_PARSER_MAX_DEPTH */
#define JSONTOK_LEN_MAX	  0x7fffffffu /* offsets and indices fit an int */

enum jsontok_type {
	JSONTOK_OBJECT = 1,
	JSONTOK_ARRAY,
	JSONTOK_STRING,
	JSONTOK_NUMBER,
	JSONTOK_TRUE,
	JSONTOK_FALSE,
	JSONTOK_NULL,
};

/* jsontok.flags */
#define JSONTOK_F_ESCAPED 0x01 /* a string with at least one backslash escape */
#define JSONTOK_F_INT	  0x02 /* a number without fraction or exponent */

/* One value, or one object key. An object's tokens are its members in
 * order, each a key (a STRING token) followed by the value's tokens; an
 * array's are its elements. */
struct jsontok {
	uint32_t start; /* offset of the text: '{' or '[', a string's first byte after the
			 * quote, a number's or literal's first character */
	uint32_t end;	/* one past the text: past '}' or ']', at a string's closing quote */
	uint32_t size;	/* object: members; array: elements; else 0 */
	uint32_t next;	/* index of the first token after this value and all it holds */
	uint8_t type;	/* enum jsontok_type */
	uint8_t flags;
};

/* jsontok_doc.flags */
#define JSONTOK_DOC_NUL 0x01 /* some string or key holds U+0000 */

struct jsontok_doc {
	const char *json; /* borrowed: the text must outlive the document */
	size_t len;
	struct jsontok *tok; /* tok[0] is the root value */
	size_t n;
	unsigned flags;
	bool owned; /* tok was allocated by jsontok_load() */
};

/* Checks json[0..len) and writes its tokens to tok[0..cap). Returns 0 with
 * *ntok tokens; -EINVAL when the text is not one JSON value (or len exceeds
 * JSONTOK_LEN_MAX); -ENOBUFS when it is valid but has *ntok > cap tokens
 * (tok then holds the first cap, not to be used). A document of len bytes
 * has at most (len + 1) / 2 tokens. doc_flags may be NULL. */
int jsontok_parse(const char *json, size_t len, struct jsontok *tok, size_t cap, size_t *ntok,
		  unsigned *doc_flags);

/* jsontok_parse() into the caller's workspace ws[0..cap) (may be 0 long);
 * when the document needs more tokens, into one allocation of exactly
 * enough. Returns 0, -EINVAL or -ENOMEM. Free with jsontok_doc_release(). */
int jsontok_load(struct jsontok_doc *d, const char *json, size_t len, struct jsontok *ws,
		 size_t cap);
void jsontok_doc_release(struct jsontok_doc *d);

static inline const struct jsontok *jsontok_at(const struct jsontok_doc *d, int i)
{
	return &d->tok[i];
}

static inline enum jsontok_type jsontok_type_of(const struct jsontok_doc *d, int i)
{
	return (enum jsontok_type)(i < 0 ? 0 : d->tok[i].type);
}

/* For every key in keys[0..nkeys) (distinct), the index of the value of the object's
 * member with that key into vals[], or -1 when there is none. Keys are
 * compared after unescaping; of duplicate keys the last one counts, as in
 * jansson. One pass over the members, however many keys. */
void jsontok_members(const struct jsontok_doc *d, int obj, const char *const *keys, size_t nkeys,
		     int *vals);
/* One key; -1 when absent or when obj is not an object. */
int jsontok_find(const struct jsontok_doc *d, int obj, const char *key);

/* Whether string token i, unescaped, is the C string s. */
bool jsontok_str_eq(const struct jsontok_doc *d, int i, const char *s);

/* Unescapes string token i into out (UTF-8) and returns its length in
 * bytes, which may hold U+0000. Like snprintf, at most cap - 1 bytes and a
 * NUL are written (nothing when cap is 0); a return >= cap means the string
 * did not fit. */
size_t jsontok_str(const struct jsontok_doc *d, int i, char *out, size_t cap);

/* The value of number token i, as jansson gives it: an integer (no
 * fraction or exponent) in int64 range is converted exactly and then to
 * double (so -0 reads as +0), any other number with strtod in the C
 * locale, whatever the process's locale. Returns 0; -ERANGE for the
 * numbers jansson refuses (an integer beyond int64, a number whose
 * magnitude overflows a double), with *out still the nearest double
 * (±HUGE_VAL on overflow); -ENOMEM when a number of more than 63
 * characters could not be copied. */
int jsontok_num(const struct jsontok_doc *d, int i, double *out);

#endif
