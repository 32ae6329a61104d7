/* emu: the emulator's shared context (configuration, districts, tokens, faults, request
 * counts) and the reply path every provider route goes through, so faults and statistics
 * apply the same way everywhere. */
#ifndef EMU_EMU_H
#define EMU_EMU_H

#include "buf.h"
#include "district.h"
#include "faults.h"
#include "page_tokens.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define EMU_MAX_DISTRICTS 64

struct emu_config {
    char *google_client_id;
    char *google_client_secret;
    char *ms_client_id;
    char *ms_client_secret;
    char *districts;     /* PANEL_EMULATOR_DISTRICTS */
    char *consent;       /* auto | page | deny */
    char *delta_expired; /* syncstate | gone */
    char *admin_addr;
    long long admin_port;
    long long token_ttl; /* access tokens, seconds */
    long long code_ttl;  /* authorization codes, seconds */
    long long page_ttl;  /* Google page tokens and Graph skip tokens, seconds */
    long long delta_ttl; /* Graph delta tokens, seconds */
};

enum emu_route {
    R_GOOGLE_AUTH = 0,
    R_GOOGLE_TOKEN,
    R_GOOGLE_REVOKE,
    R_GOOGLE_TOKENINFO,
    R_GOOGLE_USERS,
    R_GOOGLE_ORGUNITS,
    R_GOOGLE_DEVICES,
    R_MS_CONSENT,
    R_MS_TOKEN,
    R_GRAPH_USERS,
    R_GRAPH_DELTA,
    R_COUNT
};

struct google_oauth;
struct emu_signin;

struct emu {
    const struct emu_config *cfg;
    pthread_rwlock_t lock; /* guards the district list (districts are never removed) */
    struct district *districts[EMU_MAX_DISTRICTS];
    size_t ndistricts;
    struct page_tokens *tokens;
    struct faults *faults;
    struct google_oauth *google;
    struct emu_signin *signin; /* OpenID Connect keys and sign-in people */
    _Atomic uint64_t requests[R_COUNT];
    /* requests held by a "slow" fault right now, and the most at once since the last
     * reset-stats: a test sees whether a client's requests overlapped */
    _Atomic int slowed_now, slowed_at_once_max;
};

/* Build the context (tokens, faults, oauth store) and seed cfg->districts. NULL + err. */
struct emu *emu_new(const struct emu_config *cfg, char *err, size_t errlen);
void emu_destroy(struct emu *e);
/* Register a generated district (the emu owns it). 0, -1 (id exists), -2 (full). */
int emu_district_add(struct emu *e, struct district *d) __attribute__((warn_unused_result));
/* Lookups; results are borrowed and stay valid for the process's life. */
struct district *emu_district(struct emu *e, const char *id);
struct district *emu_district_by_domain(struct emu *e, const char *domain);
struct district *emu_district_by_tenant(struct emu *e, const char *tenant);
/* The district an email belongs to (by its domain), or the only district when email is
 * NULL/empty and exactly one exists. */
struct district *emu_district_for_hint(struct emu *e, const char *email);
size_t emu_district_count(struct emu *e);
struct district *emu_district_at(struct emu *e, size_t i);
const char *emu_route_name(enum emu_route r);

/* A reply being built. */
struct reply {
    int status;
    const char *ctype;
    struct buf body;
    char headers[1024]; /* extra "Name: v\r\n" lines */
};
void reply_init(struct reply *r);
void reply_free(struct reply *r);
/* The reply's body becomes *body (taken: *body is left empty), with status. */
void reply_take_body(struct reply *r, int status, struct buf *body);
void reply_header(struct reply *r, const char *name, const char *value);
/* Google's {"error":{"code","message","errors":[{"message","domain","reason"}],"status"}}. */
void reply_google_error(struct reply *r, int status, const char *reason, const char *message);
/* Graph's {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}. */
void reply_graph_error(struct reply *r, int status, const char *code, const char *message);
/* OAuth token endpoint error {"error","error_description"}. */
void reply_oauth_error(struct reply *r, int status, const char *error, const char *desc);
/* Microsoft identity platform error with AADSTS code, error_codes, timestamp, ids. */
void reply_aad_error(struct reply *r, int status, const char *error, long code, const char *text);
void reply_json(struct reply *r, int status, const json_t *body);

typedef void (*emu_handler)(struct mg_connection *conn, struct emu *e, struct reply *r);
/* Count the request, apply a fault picked for the route, run the handler, send the reply. */
int emu_serve(struct mg_connection *conn, struct emu *e, enum emu_route route, emu_handler h);

/* Small request helpers. */
/* The query parameter (URL-decoded) or NULL when absent; buf holds it. */
const char *emu_param(const struct mg_connection *conn, const char *name, char *buf, size_t n);
/* The form parameter of a url-encoded body. */
const char *emu_form(const struct buf *body, const char *name, char *out, size_t n);
/* The bearer token of the Authorization header, or NULL. */
const char *emu_bearer(struct mg_connection *conn);
/* "http://host" from the request's Host header. */
void emu_base_url(struct mg_connection *conn, char *out, size_t n);
/* A 302 to uri with the query pairs of kv (a NULL-terminated name, value list; a pair whose
 * value is NULL is left out), as both providers' authorization endpoints answer. */
int emu_redirect(struct mg_connection *conn, const char *uri, const char *const *kv);
/* The redirect of an authorization endpoint's refusal: error, then error_description and
 * state when not NULL (Google sends no description). */
int emu_redirect_error(struct mg_connection *conn, const char *uri, const char *error,
                       const char *description, const char *state);

#endif
