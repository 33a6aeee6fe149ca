/* The REST API under /api/v1/ (DESIGN §7, docs/api.md, docs/openapi.json):
 * routing, bearer authentication, request tokens, and the mapping of the
 * sandbox API (api_*) and the policy gate onto HTTP status codes and
 * application/problem+json errors.
 *
 * No libwebsockets here: http.c reads a request and hands it over in two
 * steps, its headers first and then, if the operation takes one, its body;
 * it writes the answer composed here. So whatever can be refused before the
 * body arrives (unknown path, method, authentication, request quota) is
 * refused without reading it. */
#ifndef LABGW_REST_H
#define LABGW_REST_H

#include <stdbool.h>
#include <stddef.h>

struct labgwd;
struct rest_call;

#define REST_PREFIX   "/api/v1/"
#define REST_BODY_MAX (64 * 1024) /* request bodies; TOO_LARGE beyond */
#define REST_ARGS_MAX 16	  /* query parameters */

enum rest_method {
	REST_GET = 1,
	REST_HEAD,
	REST_POST,
	REST_PUT,
	REST_PATCH,
	REST_DELETE,
	REST_OPTIONS,
};

/* A query parameter, percent-decoded ("+" already turned into a space). */
struct rest_arg {
	const char *name;
	const char *value;
};

/* What http.c learned from the request line and headers. Borrowed for the
 * call of rest_call_start(). */
struct rest_request {
	enum rest_method method;
	/* as libwebsockets hands it over: %XX decoded, "+" turned into a
	 * space, "//", "/./" and "/../" collapsed; the query is in args */
	const char *path;
	const struct rest_arg *args;
	size_t nargs;
	const char *authorization; /* the header's value; NULL when absent */
	const char *peer;	   /* the client's address */
};

/* The answer: status, body, and header lines to add to the common ones. */
struct rest_response {
	unsigned status;
	const char *content_type;
	const char *body; /* len bytes; points into owned or at static data */
	size_t len;
	char *owned;
	char headers[256]; /* "name: value\r\n" lines */
};

enum rest_next {
	REST_ANSWER,	/* *rs holds the answer */
	REST_READ_BODY, /* read the body, then rest_call_finish() */
};

/* A request's headers are in. has_body: the request announced a body
 * (Content-Length > 0). REST_ANSWER: *rs is filled, *call is NULL (an
 * operation that takes no body answers at once; what the client still sends
 * is to be discarded). REST_READ_BODY: *call holds the route and the
 * authenticated principal; read at most REST_BODY_MAX bytes and finish.
 * Release *rs with rest_response_release(). */
enum rest_next rest_call_start(struct labgwd *d, const struct rest_request *rq, bool has_body,
			       struct rest_call **call, struct rest_response *rs);
/* The body is in: parse it, run the operation, fill *rs. c stays the
 * caller's to free. */
void rest_call_finish(struct rest_call *c, const char *body, size_t len, struct rest_response *rs);
void rest_call_free(struct rest_call *c);

/* An application/problem+json answer with one of DESIGN §7's codes. */
void rest_problem(struct rest_response *rs, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void rest_response_release(struct rest_response *rs);

/* The OpenAPI document served at /api/v1/openapi.json (docs/openapi.json,
 * compiled in). */
const char *rest_openapi(size_t *len);
/* The AsyncAPI document (docs/asyncapi.yaml), compiled in likewise. */
const char *rest_asyncapi(size_t *len);

#endif
