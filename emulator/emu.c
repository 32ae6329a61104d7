#include "emu.h"
#include "crypto.h"
#include "json.h"
#include "google_oauth.h"
#include "httpd.h"
#include "signin.h"
#include "log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *route_names[R_COUNT] = {
    "google.authorize", "google.token",    "google.revoke",  "google.tokeninfo",
    "google.users",     "google.orgunits", "google.devices", "ms.adminconsent",
    "ms.token",         "graph.users",     "graph.delta",
};

const char *emu_route_name(enum emu_route r)
{
    return r < R_COUNT ? route_names[r] : "?";
}

struct emu *emu_new(const struct emu_config *cfg, char *err, size_t errlen)
{
    struct emu *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->cfg = cfg;
    pthread_rwlock_init(&e->lock, NULL);
    e->tokens = page_tokens_new((long)cfg->page_ttl, (long)cfg->delta_ttl);
    e->faults = faults_new();
    e->google = google_oauth_new();
    e->signin = emu_signin_new(err, errlen);
    if (!e->signin)
        goto fail;
    if (!e->tokens || !e->faults || !e->google) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    const char *p = cfg->districts ? cfg->districts : "";
    while (*p) {
        char item[512];
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        if (n >= sizeof item) {
            snprintf(err, errlen, "PANEL_EMULATOR_DISTRICTS: entry too long");
            goto fail;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        p += n + (semi ? 1 : 0);
        char *s = item;
        while (*s == ' ')
            s++;
        if (!*s)
            continue;
        struct district_spec spec;
        char msg[256];
        if (district_spec_parse(s, &spec, msg, sizeof msg)) {
            snprintf(err, errlen, "PANEL_EMULATOR_DISTRICTS: %s", msg);
            goto fail;
        }
        struct district *d = district_generate(&spec, msg, sizeof msg);
        if (!d) {
            snprintf(err, errlen, "PANEL_EMULATOR_DISTRICTS: %s", msg);
            goto fail;
        }
        if (emu_district_add(e, d)) {
            district_destroy(d);
            snprintf(err, errlen, "PANEL_EMULATOR_DISTRICTS: duplicate or too many districts");
            goto fail;
        }
        log_info("district %s generated: %ld people, %ld azure people, %ld shared, %ld devices, "
                 "%ld ous",
                 spec.id, spec.people, spec.azure_people, spec.shared, spec.devices, spec.ous);
    }
    return e;
fail:
    emu_destroy(e);
    return NULL;
}

void emu_destroy(struct emu *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->ndistricts; i++)
        district_destroy(e->districts[i]);
    page_tokens_destroy(e->tokens);
    faults_destroy(e->faults);
    google_oauth_destroy(e->google);
    emu_signin_destroy(e->signin);
    pthread_rwlock_destroy(&e->lock);
    free(e);
}

int emu_district_add(struct emu *e, struct district *d)
{
    int rc = 0;
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < e->ndistricts; i++)
        if (!strcmp(district_id(e->districts[i]), district_id(d)))
            rc = -1;
    if (!rc && e->ndistricts == EMU_MAX_DISTRICTS)
        rc = -2;
    if (!rc)
        e->districts[e->ndistricts++] = d;
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

static struct district *find_by(struct emu *e, const char *(*get)(const struct district *),
                                const char *v)
{
    struct district *found = NULL;
    if (!v)
        return NULL;
    pthread_rwlock_rdlock(&e->lock);
    for (size_t i = 0; i < e->ndistricts && !found; i++)
        if (!strcasecmp(get(e->districts[i]), v))
            found = e->districts[i];
    pthread_rwlock_unlock(&e->lock);
    return found;
}

struct district *emu_district(struct emu *e, const char *id)
{
    return find_by(e, district_id, id);
}

struct district *emu_district_by_domain(struct emu *e, const char *domain)
{
    return find_by(e, district_domain, domain);
}

struct district *emu_district_by_tenant(struct emu *e, const char *tenant)
{
    struct district *d = find_by(e, district_tenant_id, tenant);
    return d ? d : find_by(e, district_domain, tenant);
}

struct district *emu_district_for_hint(struct emu *e, const char *email)
{
    if (email && *email) {
        const char *at = strrchr(email, '@');
        return at ? emu_district_by_domain(e, at + 1) : NULL;
    }
    struct district *d = NULL;
    pthread_rwlock_rdlock(&e->lock);
    if (e->ndistricts == 1)
        d = e->districts[0];
    pthread_rwlock_unlock(&e->lock);
    return d;
}

size_t emu_district_count(struct emu *e)
{
    pthread_rwlock_rdlock(&e->lock);
    size_t n = e->ndistricts;
    pthread_rwlock_unlock(&e->lock);
    return n;
}

struct district *emu_district_at(struct emu *e, size_t i)
{
    struct district *d = NULL;
    pthread_rwlock_rdlock(&e->lock);
    if (i < e->ndistricts)
        d = e->districts[i];
    pthread_rwlock_unlock(&e->lock);
    return d;
}

/* ---- replies ---- */

void reply_init(struct reply *r)
{
    memset(r, 0, sizeof *r);
    r->status = 500;
    r->ctype = "application/json; charset=UTF-8";
    buf_init(&r->body, 0);
}

void reply_free(struct reply *r)
{
    buf_free(&r->body);
}

void reply_take_body(struct reply *r, int status, struct buf *body)
{
    r->status = status;
    buf_free(&r->body);
    r->body = *body;
    buf_init(body, 0);
}

void reply_header(struct reply *r, const char *name, const char *value)
{
    size_t used = strlen(r->headers);
    snprintf(r->headers + used, sizeof r->headers - used, "%s: %s\r\n", name, value);
}

void reply_json(struct reply *r, int status, const json_t *body)
{
    char *s = pjson_dump_compact(body);
    buf_reset(&r->body);
    r->status = status;
    r->ctype = "application/json; charset=UTF-8";
    if (!s || buf_appends(&r->body, s)) {
        r->status = 500;
        buf_reset(&r->body);
    }
    free(s);
}

static const char *google_status_text(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "ALREADY_EXISTS";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 500:
        return "INTERNAL";
    case 503:
        return "UNAVAILABLE";
    case 504:
        return "DEADLINE_EXCEEDED";
    default:
        return NULL;
    }
}

void reply_google_error(struct reply *r, int status, const char *reason, const char *message)
{
    json_t *item =
        json_pack("{s:s,s:s,s:s}", "message", message, "domain", "global", "reason", reason);
    if (!strcmp(reason, "authError")) {
        json_object_set_new(item, "location", json_string("Authorization"));
        json_object_set_new(item, "locationType", json_string("header"));
    }
    json_t *err = json_pack("{s:i,s:s,s:[o]}", "code", status, "message", message, "errors", item);
    /* Directory's 403 "Not Authorized to access this resource/api" carries no "status". */
    const char *st = strcmp(reason, "forbidden") ? google_status_text(status) : NULL;
    if (st)
        json_object_set_new(err, "status", json_string(st));
    json_t *body = json_pack("{s:o}", "error", err);
    reply_json(r, status, body);
    json_decref(body);
    if (status == 401)
        reply_header(r, "WWW-Authenticate",
                     "Bearer realm=\"https://accounts.google.com/\", "
                     "error=\"invalid_token\"");
}

static void request_ids(char rid[37], char date[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    if (crypto_uuid(rid))
        snprintf(rid, 37, "00000000-0000-4000-8000-000000000000");
}

void reply_graph_error(struct reply *r, int status, const char *code, const char *message)
{
    char rid[37], date[32];
    request_ids(rid, date);
    json_t *body =
        json_pack("{s:{s:s,s:s,s:{s:s,s:s,s:s}}}", "error", "code", code, "message", message,
                  "innerError", "date", date, "request-id", rid, "client-request-id", rid);
    reply_json(r, status, body);
    json_decref(body);
    reply_header(r, "request-id", rid);
}

void reply_oauth_error(struct reply *r, int status, const char *error, const char *desc)
{
    json_t *body = json_pack("{s:s,s:s}", "error", error, "error_description", desc);
    reply_json(r, status, body);
    json_decref(body);
}

void reply_aad_error(struct reply *r, int status, const char *error, long code, const char *text)
{
    char rid[37], cid[37], date[32], desc[512], ts[40];
    request_ids(rid, date);
    if (crypto_uuid(cid))
        snprintf(cid, sizeof cid, "%s", rid);
    snprintf(ts, sizeof ts, "%sZ", date);
    snprintf(desc, sizeof desc, "AADSTS%ld: %s Trace ID: %s Correlation ID: %s Timestamp: %s", code,
             text, rid, cid, ts);
    json_t *body = json_pack("{s:s,s:s,s:[I],s:s,s:s,s:s}", "error", error, "error_description",
                             desc, "error_codes", (json_int_t)code, "timestamp", ts, "trace_id",
                             rid, "correlation_id", cid);
    json_object_set_new(body, "error_uri",
                        json_string("https://login.microsoftonline.com/error?code="));
    char uri[96];
    snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%ld", code);
    json_object_set_new(body, "error_uri", json_string(uri));
    reply_json(r, status, body);
    json_decref(body);
}

/* ---- faults ---- */

/* Close the client's connection at once: find our socket by its peer address and shut it
 * down, so the client sees the connection end without (the rest of) a reply. */
static void conn_abort(struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    for (int fd = 3; fd < 65536; fd++) {
        struct sockaddr_storage peer, local;
        socklen_t pl = sizeof peer, ll = sizeof local;
        if (getpeername(fd, (struct sockaddr *)&peer, &pl))
            continue;
        if (getsockname(fd, (struct sockaddr *)&local, &ll))
            continue;
        int pport = 0, lport = 0;
        char addr[64] = "";
        if (peer.ss_family == AF_INET) {
            struct sockaddr_in *p4 = (struct sockaddr_in *)&peer;
            pport = ntohs(p4->sin_port);
            lport = ntohs(((struct sockaddr_in *)&local)->sin_port);
            inet_ntop(AF_INET, &p4->sin_addr, addr, sizeof addr);
        } else if (peer.ss_family == AF_INET6) {
            struct sockaddr_in6 *p6 = (struct sockaddr_in6 *)&peer;
            pport = ntohs(p6->sin6_port);
            lport = ntohs(((struct sockaddr_in6 *)&local)->sin6_port);
            inet_ntop(AF_INET6, &p6->sin6_addr, addr, sizeof addr);
        } else {
            continue;
        }
        if (pport == ri->remote_port && lport == ri->server_port &&
            !strcmp(addr, ri->remote_addr)) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            shutdown(fd, SHUT_RDWR);
            return;
        }
    }
}

static void fault_reply(struct emu *e, enum emu_route route, const struct fault *f,
                        struct mg_connection *conn, struct reply *r)
{
    (void)e;
    int st = f->status;
    const char *reason = f->reason[0] ? f->reason : NULL;
    if (f->kind == FAULT_INVALID_INPUT) {
        char tok[512], msg[600];
        const char *t = emu_param(conn, "pageToken", tok, sizeof tok);
        snprintf(msg, sizeof msg, "Invalid Input: %s", t ? t : "");
        reply_google_error(r, 400, reason ? reason : "invalid", msg);
    } else if (route == R_GOOGLE_TOKEN) {
        reply_oauth_error(
            r, st, reason ? reason : (st == 429 ? "rate_limit_exceeded" : "internal_failure"),
            "Injected failure.");
    } else if (route == R_MS_TOKEN) {
        reply_aad_error(r, st, reason ? reason : "temporarily_unavailable", 90033,
                        "A transient error has occurred. Please try again.");
    } else if (route == R_GRAPH_USERS || route == R_GRAPH_DELTA) {
        const char *code = reason;
        if (!code)
            code = st == 429   ? "TooManyRequests"
                   : st == 503 ? "serviceNotAvailable"
                   : st == 504 ? "gatewayTimeout"
                   : st == 403 ? "Authorization_RequestDenied"
                   : st == 401 ? "InvalidAuthenticationToken"
                   : st == 400 ? "BadRequest"
                               : "generalException";
        reply_graph_error(r, st, code,
                          st == 429 ? "Too many requests."
                          : !strcmp(code, "Authorization_RequestDenied")
                              ? "Insufficient privileges to complete the operation."
                              : "The service failed to answer.");
    } else {
        if (!reason)
            reason = st == 429 || st == 403 ? "rateLimitExceeded"
                     : st == 401            ? "authError"
                     : st == 400            ? "invalid"
                     : st == 404            ? "notFound"
                                            : "backendError";
        reply_google_error(r, st, reason,
                           !strcmp(reason, "rateLimitExceeded") ? "Rate Limit Exceeded"
                           : !strcmp(reason, "backendError")    ? "Backend Error"
                           : !strcmp(reason, "forbidden")
                               ? "Not Authorized to access this resource/api"
                               : "Injected failure");
    }
    if (f->retry_after[0])
        reply_header(r, "Retry-After", f->retry_after);
}

static int send_reply(struct mg_connection *conn, struct reply *r, const struct fault *f)
{
    if (f && f->kind == FAULT_MALFORMED) {
        static const char bad[] = "{\"kind\": \"admin#directory#users\", \"users\": [{\"id\": ";
        mg_printf(conn,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
                  "Content-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
                  sizeof bad - 1);
        mg_write(conn, bad, sizeof bad - 1);
        return 200;
    }
    if (f && f->kind == FAULT_TRUNCATE) {
        size_t half = r->body.len / 2;
        mg_printf(conn,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                  "Cache-Control: no-store\r\n%s\r\n",
                  r->status, mg_get_response_code_text(NULL, r->status), r->ctype, r->body.len,
                  r->headers);
        if (half)
            mg_write(conn, r->body.data, half);
        conn_abort(conn);
        return r->status;
    }
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store, private\r\n%s\r\n",
              r->status, mg_get_response_code_text(NULL, r->status), r->ctype, r->body.len,
              r->headers);
    if (r->body.len)
        mg_write(conn, r->body.data, r->body.len);
    return r->status;
}

int emu_serve(struct mg_connection *conn, struct emu *e, enum emu_route route, emu_handler h)
{
    struct reply r;
    struct fault f;
    const struct fault *active = NULL;
    int status;
    atomic_fetch_add(&e->requests[route], 1);
    reply_init(&r);
    bool faultable = route == R_GOOGLE_TOKEN || route == R_GOOGLE_USERS ||
                     route == R_GOOGLE_ORGUNITS || route == R_GOOGLE_DEVICES ||
                     route == R_MS_TOKEN || route == R_GRAPH_USERS || route == R_GRAPH_DELTA;
    if (faultable && faults_pick(e->faults, emu_route_name(route), &f)) {
        log_info("fault injected on %s (kind %d, status %d)", emu_route_name(route), (int)f.kind,
                 f.status);
        switch (f.kind) {
        case FAULT_RESET:
            conn_abort(conn);
            reply_free(&r);
            return 499;
        case FAULT_STATUS:
        case FAULT_INVALID_INPUT:
            fault_reply(e, route, &f, conn, &r);
            status = send_reply(conn, &r, NULL);
            reply_free(&r);
            return status;
        case FAULT_SLOW: {
            struct timespec ts = {f.delay_ms / 1000, (f.delay_ms % 1000) * 1000000L};
            int now = atomic_fetch_add(&e->slowed_now, 1) + 1;
            for (int max = atomic_load(&e->slowed_at_once_max);
                 now > max && !atomic_compare_exchange_weak(&e->slowed_at_once_max, &max, now);)
                ;
            nanosleep(&ts, NULL);
            atomic_fetch_sub(&e->slowed_now, 1);
            break;
        }
        default:
            active = &f;
            break;
        }
    }
    h(conn, e, &r);
    status = send_reply(conn, &r, active);
    reply_free(&r);
    return status;
}

/* ---- request helpers ---- */

const char *emu_param(const struct mg_connection *conn, const char *name, char *buf, size_t n)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (!ri->query_string)
        return NULL;
    int got = mg_get_var(ri->query_string, strlen(ri->query_string), name, buf, n);
    return got >= 0 ? buf : NULL;
}

const char *emu_form(const struct buf *body, const char *name, char *out, size_t n)
{
    if (!body->data)
        return NULL;
    int got = mg_get_var(body->data, body->len, name, out, n);
    return got >= 0 ? out : NULL;
}

const char *emu_bearer(struct mg_connection *conn)
{
    const char *h = mg_get_header(conn, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

void emu_base_url(struct mg_connection *conn, char *out, size_t n)
{
    const char *host = mg_get_header(conn, "Host");
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char safe[256];
    size_t k = 0;
    for (const char *p = host ? host : ""; *p && k + 1 < sizeof safe; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '.' || *p == '-' || *p == ':' || *p == '[' || *p == ']')
            safe[k++] = *p;
    safe[k] = '\0';
    if (k)
        snprintf(out, n, "http://%s", safe);
    else
        snprintf(out, n, "http://127.0.0.1:%d", ri->server_port);
}

int emu_redirect(struct mg_connection *conn, const char *uri, const char *const *kv)
{
    struct buf b;
    int rc;
    buf_init(&b, 8192);
    if (buf_appends(&b, "Location: ") || buf_appends(&b, uri))
        goto oom;
    char sep = strchr(uri, '?') ? '&' : '?';
    for (size_t i = 0; kv[i]; i += 2) {
        if (!kv[i + 1])
            continue;
        if (buf_append(&b, &sep, 1) || buf_appends(&b, kv[i]) || buf_appends(&b, "=") ||
            buf_append_urlencoded(&b, kv[i + 1]))
            goto oom;
        sep = '&';
    }
    if (buf_appends(&b, "\r\n"))
        goto oom;
    rc = httpd_reply(conn, 302, "text/html; charset=utf-8", "", 0, b.data);
    buf_free(&b);
    return rc;
oom:
    buf_free(&b);
    return httpd_reply(conn, 500, "text/plain", "out of memory", 13, NULL);
}

int emu_redirect_error(struct mg_connection *conn, const char *uri, const char *error,
                       const char *description, const char *state)
{
    const char *kv[] = {"error", error, "error_description", description, "state", state, NULL};
    return emu_redirect(conn, uri, kv);
}
