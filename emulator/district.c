#include "district.h"
#include "buf.h"
#include "config.h"
#include "base64.h"
#include "crypto.h"
#include "json.h"
#include "select_cache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define B(x)                                                                                       \
    do {                                                                                           \
        if ((x) != 0)                                                                              \
            goto oom;                                                                              \
    } while (0)

struct vec {
    struct ditem *items;
    size_t n, cap;
    size_t live;
    uint64_t generation;
};

struct change {
    uint64_t version;
    size_t item;
    enum dchange kind;
    char *props; /* ",a,b," for updates */
};

struct district {
    struct district_spec spec;
    char domain[DISTRICT_ID_MAX + 32];
    char customer[16];
    char tenant[37];
    char admin[DISTRICT_ID_MAX + 48];
    char root_ou_id[32];
    pthread_mutex_t mu;
    struct vec coll[DC_COUNT];
    struct change *changes;
    size_t nchanges, capchanges;
    uint64_t azure_version;
    bool delta_repeats;      /* district_set_delta_repeats */
    bool ous_children_first; /* district_set_ous_children_first */
    struct district_auth auth;
    uint64_t rng;
    struct select_cache *select[DC_COUNT]; /* district_select_cache, made at first use */
};

/* ---- small helpers ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rnd(struct district *d, uint64_t n)
{
    return n ? splitmix(&d->rng) % n : 0;
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

static void lower(char *s)
{
    for (; s && *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static void fmt_time(int64_t ms, char out[32])
{
    if (ms < 0)
        ms = 0;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100, (int)(ms % 1000));
}

static void fmt_guid(uint64_t a, uint64_t b, char out[37])
{
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012" PRIx64, (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)), (uint64_t)(b & 0xffffffffffffULL));
}

static void fmt_etag(const char *id, uint64_t n, char out[40])
{
    char seedtxt[96];
    uint8_t h[32];
    char b64[48];
    snprintf(seedtxt, sizeof seedtxt, "%.60s/%" PRIu64, id, n);
    crypto_sha256(seedtxt, strlen(seedtxt), h);
    if (base64_encode(BASE64_URL, h, 18, b64, sizeof b64) < 0)
        b64[0] = '\0';
    snprintf(out, 40, "\"%s\"", b64);
}

/* ---- item vectors ---- */

static void item_free(struct ditem *it)
{
    free(it->json);
    free(it->id);
    free(it->key);
    free(it->ou);
    free(it->family);
    free(it->given);
    memset(it, 0, sizeof *it);
}

static struct ditem *vec_push(struct vec *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        struct ditem *p = realloc(v->items, cap * sizeof *p);
        if (!p)
            return NULL;
        v->items = p;
        v->cap = cap;
    }
    struct ditem *it = &v->items[v->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static char *sdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Refresh an item's keys and serialized form from its JSON object. */
static int item_set(struct ditem *it, enum dcoll c, const json_t *obj)
{
    char *json = pjson_dump_compact(obj);
    if (!json)
        return -1;
    const char *id = NULL, *key = NULL, *ou = NULL, *fam = NULL, *giv = NULL;
    const json_t *name = json_object_get(obj, "name");
    switch (c) {
    case DC_GUSERS:
        id = pjson_str(obj, "id");
        key = pjson_str(obj, "primaryEmail");
        ou = pjson_str(obj, "orgUnitPath");
        fam = pjson_str(name, "familyName");
        giv = pjson_str(name, "givenName");
        break;
    case DC_OUS:
        id = pjson_str(obj, "orgUnitId");
        key = pjson_str(obj, "orgUnitPath");
        ou = pjson_str(obj, "parentOrgUnitPath");
        break;
    case DC_DEVICES:
        id = pjson_str(obj, "deviceId");
        key = pjson_str(obj, "serialNumber");
        ou = pjson_str(obj, "orgUnitPath");
        fam = pjson_str(obj, "status");
        giv = pjson_str(obj, "annotatedUser");
        break;
    default:
        id = pjson_str(obj, "id");
        key = pjson_str(obj, "userPrincipalName");
        fam = pjson_str(obj, "displayName");
        giv = pjson_str(obj, "mail");
        break;
    }
    struct ditem n = {.json = json,
                      .id = sdup(id ? id : ""),
                      .key = sdup(key ? key : ""),
                      .ou = sdup(ou),
                      .family = sdup(fam),
                      .given = sdup(giv),
                      .flags = it->flags};
    if (!n.id || !n.key || (ou && !n.ou) || (fam && !n.family) || (giv && !n.given)) {
        item_free(&n);
        return -1;
    }
    if (c == DC_GUSERS || c == DC_AUSERS)
        lower(n.key);
    item_free(it);
    *it = n;
    return 0;
}

/* Append an item from an already serialized object and its keys (generator fast path). */
static int vec_add_raw(struct vec *v, struct buf *json, const char *id, const char *key,
                       const char *ou, const char *fam, const char *giv, unsigned flags)
{
    struct ditem *it = vec_push(v);
    if (!it)
        return -1;
    it->json = buf_take(json);
    it->id = sdup(id);
    it->key = sdup(key);
    it->ou = sdup(ou);
    it->family = sdup(fam);
    it->given = sdup(giv);
    it->flags = flags;
    if (!it->json || !it->id || !it->key || (ou && !it->ou) || (fam && !it->family) ||
        (giv && !it->given)) {
        item_free(it);
        v->n--;
        return -1;
    }
    if (!(flags & (DITEM_DELETED | DITEM_GONE)))
        v->live++;
    return 0;
}

/* ---- spec parsing ---- */

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DISTRICT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return 0;
    }
    return s[0] != '-';
}

static int spec_check(struct district_spec *s, char *err, size_t errlen)
{
    if (!valid_id(s->id)) {
        snprintf(err, errlen, "district id must be 1-%d characters a-z, 0-9 or '-'",
                 DISTRICT_ID_MAX);
        return -1;
    }
    if (s->people < 1 || s->people > DISTRICT_MAX_PEOPLE || s->azure_people < 0 ||
        s->azure_people > DISTRICT_MAX_PEOPLE) {
        snprintf(err, errlen, "people must be 1..%ld and azure_people 0..%ld", DISTRICT_MAX_PEOPLE,
                 DISTRICT_MAX_PEOPLE);
        return -1;
    }
    if (s->shared < 0 || s->shared > s->people || s->shared > s->azure_people) {
        snprintf(err, errlen, "shared must be 0..min(people, azure_people)");
        return -1;
    }
    if (s->proxy_joined < 0 || s->proxy_joined > s->shared) {
        snprintf(err, errlen, "proxy_joined must be 0..shared");
        return -1;
    }
    if (s->devices < 0 || s->devices > DISTRICT_MAX_DEVICES) {
        snprintf(err, errlen, "devices must be 0..%ld", DISTRICT_MAX_DEVICES);
        return -1;
    }
    if (s->ous < 0 || s->ous > DISTRICT_MAX_OUS) {
        snprintf(err, errlen, "ous must be 0..%ld", DISTRICT_MAX_OUS);
        return -1;
    }
    return 0;
}

static void spec_defaults(struct district_spec *s)
{
    memset(s, 0, sizeof *s);
    s->people = 300;
    s->azure_people = 200;
    s->shared = 150;
    s->devices = 100;
    s->ous = 30;
    s->seed = 1;
}

static int set_key(struct district_spec *s, const char *k, long long v)
{
    if (!strcmp(k, "people"))
        s->people = (long)v;
    else if (!strcmp(k, "azure_people"))
        s->azure_people = (long)v;
    else if (!strcmp(k, "shared"))
        s->shared = (long)v;
    else if (!strcmp(k, "proxy_joined"))
        s->proxy_joined = (long)v;
    else if (!strcmp(k, "devices"))
        s->devices = (long)v;
    else if (!strcmp(k, "ous"))
        s->ous = (long)v;
    else if (!strcmp(k, "seed"))
        s->seed = (uint64_t)v;
    else
        return -1;
    return 0;
}

int district_spec_parse(const char *text, struct district_spec *out, char *err, size_t errlen)
{
    struct district_spec s;
    spec_defaults(&s);
    const char *colon = strchr(text, ':');
    size_t idlen = colon ? (size_t)(colon - text) : strlen(text);
    if (idlen == 0 || idlen > DISTRICT_ID_MAX) {
        snprintf(err, errlen, "district '%.40s': bad id", text);
        return -1;
    }
    memcpy(s.id, text, idlen);
    s.id[idlen] = '\0';
    const char *p = colon ? colon + 1 : "";
    while (*p) {
        char item[96];
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n >= sizeof item) {
            snprintf(err, errlen, "district '%s': setting too long", s.id);
            return -1;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        p += n + (comma ? 1 : 0);
        if (!n)
            continue;
        char *eq = strchr(item, '=');
        long long v;
        if (!eq) {
            snprintf(err, errlen, "district '%s': expected key=value in '%s'", s.id, item);
            return -1;
        }
        *eq = '\0';
        if (cfg_parse_int(eq + 1, 0, 4000000000LL, &v) || set_key(&s, item, v)) {
            snprintf(err, errlen, "district '%s': bad setting '%s'", s.id, item);
            return -1;
        }
    }
    if (spec_check(&s, err, errlen))
        return -1;
    *out = s;
    return 0;
}

int district_spec_from_json(const json_t *obj, struct district_spec *out, char *err, size_t errlen)
{
    struct district_spec s;
    const char *id = NULL;
    static const char *keys[] = {"people",  "azure_people", "shared", "proxy_joined",
                                 "devices", "ous",          "seed"};
    spec_defaults(&s);
    if (!json_is_object(obj) || pjson_get_str(obj, "id", &id) != PJSON_OK) {
        snprintf(err, errlen, "body must be an object with a string \"id\"");
        return -1;
    }
    if (strlen(id) > DISTRICT_ID_MAX) {
        snprintf(err, errlen, "id too long");
        return -1;
    }
    snprintf(s.id, sizeof s.id, "%s", id);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t v;
        enum pjson_get g = pjson_get_int(obj, keys[i], &v);
        if (g == PJSON_ABSENT)
            continue;
        if (g != PJSON_OK || v < 0 || set_key(&s, keys[i], v)) {
            snprintf(err, errlen, "\"%s\" must be a non-negative integer", keys[i]);
            return -1;
        }
    }
    if (spec_check(&s, err, errlen))
        return -1;
    *out = s;
    return 0;
}

/* ---- name pools (display form, ASCII slug for addresses) ---- */

struct name {
    const char *text, *slug, *nick; /* nick: the short form Azure may carry */
};

static const struct name given_names[] = {
    {"James", "james", "Jim"},
    {"Mary", "mary", NULL},
    {"Robert", "robert", "Bob"},
    {"Patricia", "patricia", "Pat"},
    {"John", "john", NULL},
    {"Jennifer", "jennifer", "Jen"},
    {"Michael", "michael", "Mike"},
    {"Linda", "linda", NULL},
    {"William", "william", "Bill"},
    {"Elizabeth", "elizabeth", "Liz"},
    {"David", "david", "Dave"},
    {"Barbara", "barbara", NULL},
    {"Richard", "richard", "Rick"},
    {"Susan", "susan", "Sue"},
    {"Joseph", "joseph", "Joe"},
    {"Jessica", "jessica", "Jess"},
    {"Thomas", "thomas", "Tom"},
    {"Sarah", "sarah", NULL},
    {"Charles", "charles", "Chuck"},
    {"Karen", "karen", NULL},
    {"Daniel", "daniel", "Dan"},
    {"Nancy", "nancy", NULL},
    {"Matthew", "matthew", "Matt"},
    {"Lisa", "lisa", NULL},
    {"Anthony", "anthony", "Tony"},
    {"Katherine", "katherine", "Kate"},
    {"Zoë", "zoe", NULL},
    {"José", "jose", NULL},
    {"Chloé", "chloe", NULL},
    {"Mía", "mia", NULL},
    {"Renée", "renee", NULL},
    {"Björn", "bjorn", NULL},
    {"Siobhán", "siobhan", NULL},
    {"Łukasz", "lukasz", NULL},
    {"Minh", "minh", NULL},
    {"Wei", "wei", NULL},
    {"Fatima", "fatima", NULL},
    {"Omar", "omar", NULL},
    {"Priya", "priya", NULL},
    {"Anne-Marie", "anne-marie", NULL},
    {"D'Andre", "dandre", NULL},
    {"Mary Kate", "marykate", NULL},
    {"Aiyana", "aiyana", NULL},
    {"Kwame", "kwame", NULL},
};

static const struct name family_names[] = {
    {"Smith", "smith", NULL},
    {"Johnson", "johnson", NULL},
    {"Williams", "williams", NULL},
    {"Brown", "brown", NULL},
    {"Jones", "jones", NULL},
    {"Garcia", "garcia", NULL},
    {"Miller", "miller", NULL},
    {"Davis", "davis", NULL},
    {"Rodriguez", "rodriguez", NULL},
    {"Martinez", "martinez", NULL},
    {"Hernández", "hernandez", NULL},
    {"López", "lopez", NULL},
    {"Wilson", "wilson", NULL},
    {"Anderson", "anderson", NULL},
    {"Taylor", "taylor", NULL},
    {"Moore", "moore", NULL},
    {"Jackson", "jackson", NULL},
    {"Lee", "lee", NULL},
    {"Pérez", "perez", NULL},
    {"Thompson", "thompson", NULL},
    {"O'Brien", "obrien", NULL},
    {"O'Neil", "oneil", NULL},
    {"Nguyễn", "nguyen", NULL},
    {"Trần", "tran", NULL},
    {"王", "wang", NULL},
    {"李", "li", NULL},
    {"Müller", "muller", NULL},
    {"Van der Berg", "vanderberg", NULL},
    {"St. John", "stjohn", NULL},
    {"De La Cruz", "delacruz", NULL},
    {"Smith-Jones", "smith-jones", NULL},
    {"Kowalski", "kowalski", NULL},
    {"Okafor", "okafor", NULL},
    {"Papadopoulos", "papadopoulos", NULL},
    {"Yamamoto", "yamamoto", NULL},
    {"Haddad", "haddad", NULL},
};

#define NGIVEN  (sizeof given_names / sizeof given_names[0])
#define NFAMILY (sizeof family_names / sizeof family_names[0])

static const char *school_names[] = {
    "Lincoln Elementary",     "St. Mary's Academy",     "Gifted + Talented Center",
    "Room #12 Annex",         "Zoë Baldwin Elementary", "Roosevelt Middle School",
    "Washington High School", "O'Keefe Elementary",     "Jefferson Middle School",
    "Cesar Chavez High",      "Maple Grove Elementary", "Riverside Middle School",
};
#define NSCHOOLS (sizeof school_names / sizeof school_names[0])

static const char *job_titles[] = {"Teacher",
                                   "Math Teacher",
                                   "Principal",
                                   "Counselor",
                                   "Librarian",
                                   "IT Technician",
                                   "Nurse",
                                   "Secretary",
                                   "Assistant Principal",
                                   "Special Education Teacher"};
static const char *departments[] = {"Instruction", "Administration", "Student Services",
                                    "Technology", "Facilities"};

struct model {
    const char *name, *prefix, *firmware;
    int eol_year;
};
static const struct model models[] = {
    {"HP Chromebook 11 G9 EE", "5CD", "Google_Drawcia.13606.459.0", 2029},
    {"Acer Chromebook 311 (C733)", "NXHQ", "Google_Octopus.11297.312.0", 2026},
    {"Lenovo 300e Chromebook Gen 3", "PF3", "Google_Grunt.11031.149.0", 2027},
    {"Dell Chromebook 3100", "DLC", "Google_Octopus.11297.249.0", 2026},
    {"ASUS Chromebook Flip C214", "K7N", "Google_Octopus.11297.266.0", 2026},
    {"Lenovo 100e Chromebook Gen 4", "PF4", "Google_Nissa.15217.421.0", 2033},
    {"HP Chromebook x360 11 G4 EE", "5CG", "Google_Dedede.13606.580.0", 2031},
};
#define NMODELS (sizeof models / sizeof models[0])

/* ---- generation ---- */

struct gen_person {
    char *email; /* Google primary email (lower case) */
    unsigned given, family;
    int staff;
    long school;
    char employee_id[24];
};

struct gen_ou {
    char *path;
    char *id; /* without "id:" */
};

static int add_ou(struct district *d, struct gen_ou *ous, size_t *n, const char *name,
                  const char *parent_path, const char *parent_id, const char *desc)
{
    char id[20], etag[40];
    struct buf b;
    char *path = NULL;
    int rc = -1;
    buf_init(&b, 0);
    snprintf(id, sizeof id, "03ph%012" PRIx64, (uint64_t)(splitmix(&d->rng) & 0xffffffffffffULL));
    path = strcmp(parent_path, "/") ? dupf("%s/%s", parent_path, name) : dupf("/%s", name);
    if (!path)
        goto out;
    fmt_etag(id, 0, etag);
    B(buf_appends(&b, "{\"kind\":\"admin#directory#orgUnit\",\"etag\":"));
    B(buf_append_json_string(&b, etag));
    B(buf_appends(&b, ",\"name\":"));
    B(buf_append_json_string(&b, name));
    B(buf_appends(&b, ",\"description\":"));
    B(buf_append_json_string(&b, desc));
    B(buf_appends(&b, ",\"orgUnitPath\":"));
    B(buf_append_json_string(&b, path));
    B(buf_appendf(&b, ",\"orgUnitId\":\"id:%s\",\"parentOrgUnitPath\":", id));
    B(buf_append_json_string(&b, parent_path));
    B(buf_appendf(&b, ",\"parentOrgUnitId\":\"id:%s\"}", parent_id));
    char fullid[24];
    snprintf(fullid, sizeof fullid, "id:%s", id);
    B(vec_add_raw(&d->coll[DC_OUS], &b, fullid, path, parent_path, NULL, NULL, 0));
    ous[*n].path = path;
    ous[*n].id = strdup(id);
    if (!ous[*n].id)
        goto out;
    path = NULL;
    (*n)++;
    rc = 0;
    goto out;
oom:
    rc = -1;
out:
    free(path);
    buf_free(&b);
    return rc;
}

static const int64_t T2019 = 1546300800000LL; /* 2019-01-01 */
static const int64_t T_NOW = 1763500000000LL; /* a fixed "now" keeps output deterministic */

static int gen_google_user(struct district *d, struct gen_person *p, size_t idx,
                           const struct gen_ou *ou, int deleted)
{
    struct buf b;
    char etag[40], t1[32], t2[32], id[24];
    int rc = -1;
    const struct name *g = &given_names[p->given], *f = &family_names[p->family];
    buf_init(&b, 0);
    snprintf(id, sizeof id, "1%020" PRIu64,
             (uint64_t)(splitmix(&d->rng) % 10000000000000000000ULL));
    fmt_etag(id, 0, etag);
    int64_t created = T2019 + (int64_t)rnd(d, 6ULL * 365 * 86400) * 1000;
    int64_t login = (rnd(d, 20) == 0) ? 0 : created + (int64_t)rnd(d, 86400ULL * 300) * 1000;
    fmt_time(created, t1);
    fmt_time(login, t2);
    int is_admin = idx == 0;
    int suspended = !is_admin && rnd(d, 100) < 3;
    int archived = !is_admin && !suspended && rnd(d, 100) < 1;
    B(buf_appends(&b, "{\"kind\":\"admin#directory#user\",\"id\":"));
    B(buf_append_json_string(&b, id));
    B(buf_appends(&b, ",\"etag\":"));
    B(buf_append_json_string(&b, etag));
    B(buf_appends(&b, ",\"primaryEmail\":"));
    B(buf_append_json_string(&b, p->email));
    B(buf_appends(&b, ",\"name\":{\"givenName\":"));
    if (is_admin) {
        B(buf_appends(&b, "\"District\",\"familyName\":\"Admin\",\"fullName\":\"District "
                          "Admin\"}"));
    } else {
        char full[256];
        snprintf(full, sizeof full, "%s %s", g->text, f->text);
        B(buf_append_json_string(&b, g->text));
        B(buf_appends(&b, ",\"familyName\":"));
        B(buf_append_json_string(&b, f->text));
        B(buf_appends(&b, ",\"fullName\":"));
        B(buf_append_json_string(&b, full));
        if (idx % 7 == 0) {
            B(buf_appends(&b, ",\"displayName\":"));
            B(buf_append_json_string(&b, full));
        }
        B(buf_appends(&b, "}"));
    }
    B(buf_appendf(&b,
                  ",\"isAdmin\":%s,\"isDelegatedAdmin\":false,\"lastLoginTime\":\"%s\","
                  "\"creationTime\":\"%s\",\"agreedToTerms\":%s,\"suspended\":%s",
                  is_admin ? "true" : "false", t2, t1, login ? "true" : "false",
                  suspended ? "true" : "false"));
    if (suspended)
        B(buf_appends(&b, ",\"suspensionReason\":\"ADMIN\""));
    B(buf_appendf(&b,
                  ",\"archived\":%s,\"changePasswordAtNextLogin\":false,"
                  "\"ipWhitelisted\":false,\"emails\":[{\"address\":",
                  archived ? "true" : "false"));
    B(buf_append_json_string(&b, p->email));
    B(buf_appends(&b, ",\"primary\":true}"));
    if (p->staff && idx % 5 == 0 && !is_admin) {
        B(buf_appends(&b, ",{\"address\":"));
        B(buf_append_json_string(&b, p->email));
        B(buf_appends(&b, ",\"type\":\"work\"}"));
    }
    B(buf_appendf(&b, "],\"externalIds\":[{\"value\":\"%s\",\"type\":\"organization\"}]",
                  p->employee_id));
    if (p->staff && idx % 9 == 0 && !is_admin) {
        const char *at = strchr(p->email, '@');
        B(buf_appendf(&b, ",\"aliases\":[\"%c.%s@%s\"]", given_names[p->given].slug[0],
                      family_names[p->family].slug, at ? at + 1 : d->domain));
    }
    B(buf_appendf(&b, ",\"customerId\":\"%s\",\"orgUnitPath\":", d->customer));
    B(buf_append_json_string(&b, ou->path));
    B(buf_appends(&b, ",\"isMailboxSetup\":true,\"isEnrolledIn2Sv\":false,"
                      "\"isEnforcedIn2Sv\":false,\"includeInGlobalAddressList\":true"));
    if (idx % 11 == 0)
        B(buf_appendf(&b, ",\"thumbnailPhotoUrl\":\"https://lh3.googleusercontent.com/a/%s=s96-c\"",
                      id));
    if (deleted) {
        char t3[32];
        fmt_time(T_NOW - (int64_t)rnd(d, 15ULL * 86400) * 1000, t3);
        B(buf_appendf(&b, ",\"deletionTime\":\"%s\"", t3));
    }
    B(buf_appends(&b, "}"));
    char full[256];
    snprintf(full, sizeof full, "%s", is_admin ? "Admin" : f->text);
    B(vec_add_raw(&d->coll[DC_GUSERS], &b, id, p->email, ou->path, is_admin ? "Admin" : f->text,
                  is_admin ? "District" : g->text, deleted ? DITEM_DELETED : 0));
    rc = 0;
    goto out;
oom:
    rc = -1;
out:
    buf_free(&b);
    return rc;
}

/* Mixed-case variant of an address for Azure ("Jane.Doe@..."). */
static void mixed_case(const char *in, char *out, size_t outlen)
{
    size_t i = 0;
    int up = 1;
    for (; in[i] && i + 1 < outlen; i++) {
        char ch = in[i];
        if (ch == '@')
            up = -1;
        if (up == 1 && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        out[i] = ch;
        if (up >= 0)
            up = (ch == '.') ? 1 : 0;
    }
    out[i] = '\0';
}

static int json_str_or_null(struct buf *b, const char *s)
{
    return s ? buf_append_json_string(b, s) : buf_appends(b, "null");
}

/* proxy_only: a shared person whose Entra mail (and UPN) is on another domain and whose Google
 * address is only a secondary smtp: proxy address. */
static int gen_azure_user(struct district *d, const struct gen_person *p, int shared, size_t idx,
                          bool proxy_only)
{
    struct buf b;
    char id[37], upn[256], mail_buf[256], t1[32], display[256];
    const char *mail = mail_buf;
    int rc = -1;
    const struct name *g = &given_names[p->given], *f = &family_names[p->family];
    int guest = !shared && rnd(d, 100) < 2;
    buf_init(&b, 0);
    uint64_t a = splitmix(&d->rng), c = splitmix(&d->rng);
    fmt_guid(a, c, id);
    if (guest) {
        snprintf(upn, sizeof upn, "%s.%s_gmail.com#EXT#@%s.onmicrosoft.com", g->slug, f->slug,
                 d->spec.id);
        snprintf(mail_buf, sizeof mail_buf, "%s.%s@gmail.com", g->slug, f->slug);
    } else {
        if (idx % 5 == 1)
            mixed_case(p->email, upn, sizeof upn);
        else
            snprintf(upn, sizeof upn, "%s", p->email);
        uint64_t m = rnd(d, 100);
        if (m < 4)
            mail = NULL;
        else if (!shared && m < 12)
            snprintf(mail_buf, sizeof mail_buf, "%s.%s@staff.%s", g->slug, f->slug, d->domain);
        else
            mixed_case(p->email, mail_buf, sizeof mail_buf);
        if (proxy_only) {
            const char *at = strchr(p->email, '@');
            snprintf(mail_buf, sizeof mail_buf, "%.*s@ms.%s", (int)(at - p->email), p->email,
                     d->domain);
            mail = mail_buf;
            snprintf(upn, sizeof upn, "%s", mail_buf);
        }
    }
    int use_nick = shared && g->nick && idx % 2 == 0;
    if (idx == 0 && shared)
        snprintf(display, sizeof display, "District Admin");
    else
        snprintf(display, sizeof display, "%s %s", use_nick ? g->nick : g->text, f->text);
    fmt_time(T2019 + (int64_t)rnd(d, 6ULL * 365 * 86400) * 1000, t1);
    int enabled = rnd(d, 100) >= 4;
    B(buf_appends(&b, "{\"id\":"));
    B(buf_append_json_string(&b, id));
    B(buf_appends(&b, ",\"businessPhones\":"));
    B(buf_appends(&b, p->staff && idx % 3 == 0 ? "[\"+1 555 0100\"]" : "[]"));
    B(buf_appends(&b, ",\"displayName\":"));
    B(buf_append_json_string(&b, display));
    B(buf_appends(&b, ",\"givenName\":"));
    B(buf_append_json_string(&b, idx == 0 && shared ? "District" : use_nick ? g->nick : g->text));
    B(buf_appends(&b, ",\"jobTitle\":"));
    B(json_str_or_null(&b, p->staff ? job_titles[idx % (sizeof job_titles / sizeof *job_titles)]
                                    : (idx % 3 ? "Student" : NULL)));
    B(buf_appends(&b, ",\"mail\":"));
    B(json_str_or_null(&b, mail));
    B(buf_appends(&b, ",\"mobilePhone\":null,\"officeLocation\":"));
    B(json_str_or_null(&b, p->school >= 0 && p->staff ? school_names[p->school % NSCHOOLS] : NULL));
    B(buf_appends(&b, ",\"preferredLanguage\":"));
    B(json_str_or_null(&b, idx % 4 ? "en-US" : NULL));
    B(buf_appends(&b, ",\"surname\":"));
    B(buf_append_json_string(&b, idx == 0 && shared ? "Admin" : f->text));
    B(buf_appends(&b, ",\"userPrincipalName\":"));
    B(buf_append_json_string(&b, upn));
    B(buf_appendf(&b, ",\"accountEnabled\":%s,\"department\":", enabled ? "true" : "false"));
    B(json_str_or_null(&b, p->staff ? departments[idx % (sizeof departments / sizeof *departments)]
                                    : NULL));
    B(buf_appends(&b, ",\"employeeId\":"));
    B(json_str_or_null(&b, guest ? NULL : p->employee_id));
    B(buf_appends(&b, ",\"otherMails\":"));
    if (idx % 13 == 0) {
        B(buf_appendf(&b, "[\"%s.%s@example.org\"]", g->slug, f->slug));
    } else {
        B(buf_appends(&b, "[]"));
    }
    B(buf_appends(&b, ",\"proxyAddresses\":"));
    if (mail && !guest) {
        B(buf_appends(&b, "[\"SMTP:"));
        B(buf_appends(&b, mail));
        if (proxy_only) {
            B(buf_appends(&b, "\",\"smtp:"));
            B(buf_appends(&b, p->email));
        }
        B(buf_appends(&b, "\"]"));
    } else {
        B(buf_appends(&b, "[]"));
    }
    B(buf_appendf(&b, ",\"createdDateTime\":\"%.19sZ\",\"onPremisesImmutableId\":", t1));
    if (idx % 6 == 0) {
        char imm[32];
        uint8_t raw[16];
        memcpy(raw, &a, 8);
        memcpy(raw + 8, &c, 8);
        if (base64_encode(BASE64_STD, raw, sizeof raw, imm, sizeof imm) < 0)
            goto oom;
        B(buf_append_json_string(&b, imm));
    } else {
        B(buf_appends(&b, "null"));
    }
    B(buf_appendf(&b, ",\"userType\":\"%s\"}", guest ? "Guest" : "Member"));
    char key[256];
    snprintf(key, sizeof key, "%s", upn);
    lower(key);
    B(vec_add_raw(&d->coll[DC_AUSERS], &b, id, key, NULL, display, mail, 0));
    rc = 0;
    goto out;
oom:
    rc = -1;
out:
    buf_free(&b);
    return rc;
}

static const char *device_status(struct district *d)
{
    uint64_t r = rnd(d, 1000);
    if (r < 850)
        return "ACTIVE";
    if (r < 930)
        return "DEPROVISIONED";
    if (r < 960)
        return "DISABLED";
    if (r < 975)
        return "PRE_PROVISIONED";
    if (r < 990)
        return "INACTIVE";
    if (r < 995)
        return "RETURN_REQUESTED";
    return "SHIPPED";
}

static int gen_device(struct district *d, size_t idx, const struct gen_ou *ou,
                      struct gen_person *people, size_t npeople)
{
    struct buf b;
    char id[37], etag[40], serial[32], t1[32], t2[32];
    int rc = -1;
    const struct model *m = &models[rnd(d, NMODELS)];
    buf_init(&b, 0);
    fmt_guid(splitmix(&d->rng), splitmix(&d->rng), id);
    fmt_etag(id, 0, etag);
    static const char alnum[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    size_t sl = (size_t)snprintf(serial, sizeof serial, "%s", m->prefix);
    for (; sl < 10 + (m->prefix[0] == 'N' ? 8 : 0) && sl + 1 < sizeof serial; sl++)
        serial[sl] = alnum[rnd(d, sizeof alnum - 1)];
    serial[sl] = '\0';
    const char *status = device_status(d);
    int64_t enrolled = T2019 + (int64_t)rnd(d, 6ULL * 365 * 86400) * 1000;
    int64_t synced = T_NOW - (int64_t)rnd(d, 60ULL * 86400) * 1000;
    fmt_time(enrolled, t1);
    fmt_time(synced, t2);
    B(buf_appends(&b, "{\"kind\":\"admin#directory#chromeosdevice\",\"etag\":"));
    B(buf_append_json_string(&b, etag));
    B(buf_appendf(&b,
                  ",\"deviceId\":\"%s\",\"serialNumber\":\"%s\",\"status\":\"%s\","
                  "\"lastSync\":\"%s\"",
                  id, serial, status, t2));
    const struct gen_person *annotated = NULL;
    if (npeople && rnd(d, 100) < 40) {
        annotated = &people[rnd(d, npeople)];
        B(buf_appends(&b, ",\"annotatedUser\":"));
        B(buf_append_json_string(&b, annotated->email));
    }
    if (rnd(d, 100) < 50)
        B(buf_appendf(&b, ",\"annotatedLocation\":\"Room %u\"", (unsigned)(100 + rnd(d, 220))));
    if (rnd(d, 100) < 70)
        B(buf_appendf(&b, ",\"annotatedAssetId\":\"A-%05zu\"", 10000 + idx));
    if (rnd(d, 100) < 6)
        B(buf_appendf(&b, ",\"notes\":\"Cracked screen\\nRepair ticket #%u\\nLoaner issued\"",
                      (unsigned)(1000 + rnd(d, 9000))));
    uint64_t mac = splitmix(&d->rng);
    B(buf_appends(&b, ",\"model\":"));
    B(buf_append_json_string(&b, m->name));
    B(buf_appendf(&b,
                  ",\"osVersion\":\"%u.0.%u.%u\",\"platformVersion\":\"%u.%u.0 (Official Build) "
                  "stable-channel\",\"firmwareVersion\":\"%s\",\"macAddress\":\"%012" PRIx64 "\"",
                  (unsigned)(128 + rnd(d, 4)), (unsigned)(6600 + rnd(d, 300)),
                  (unsigned)rnd(d, 250), (unsigned)(15900 + rnd(d, 300)), (unsigned)rnd(d, 90),
                  m->firmware, (uint64_t)(mac & 0xffffffffffffULL)));
    if (idx % 4 == 0)
        B(buf_appendf(&b, ",\"ethernetMacAddress\":\"%012" PRIx64 "\"",
                      (uint64_t)((mac >> 8) & 0xffffffffffffULL)));
    B(buf_appendf(&b, ",\"bootMode\":\"%s\",\"lastEnrollmentTime\":\"%s\",\"orgUnitPath\":",
                  idx % 50 == 3 ? "Dev" : "Verified", t1));
    B(buf_append_json_string(&b, ou->path));
    B(buf_appendf(&b, ",\"orgUnitId\":\"%s\"", ou->id));
    /* autoUpdateExpiration: the end of June of the model's last year, ms epoch as a string */
    struct tm tm = {.tm_year = m->eol_year - 1900, .tm_mon = 5, .tm_mday = 1};
    int64_t eol = (int64_t)timegm(&tm) * 1000;
    B(buf_appendf(&b, ",\"autoUpdateExpiration\":\"%" PRId64 "\"", eol));
    /* some devices carry only the deprecated field (chosen by index: the random sequence and
     * so every other object stay as they were) */
    if (idx % 16 != 5)
        B(buf_appendf(&b, ",\"autoUpdateThrough\":\"%04d-06-01\"", m->eol_year));
    B(buf_appendf(&b, ",\"deviceLicenseType\":\"%s\",\"chromeOsType\":\"%s\"",
                  idx % 10 == 0 ? "educationUpgrade" : "education",
                  idx % 25 == 0 ? "chromeOsFlex" : "chromeOs"));
    B(buf_appends(&b, ",\"recentUsers\":["));
    if (!strcmp(status, "ACTIVE") && npeople) {
        unsigned n = (unsigned)rnd(d, 4);
        for (unsigned i = 0; i < n; i++) {
            const struct gen_person *p =
                (i == 0 && annotated) ? annotated : &people[rnd(d, npeople)];
            if (i)
                B(buf_appends(&b, ","));
            if (rnd(d, 20) == 0) {
                B(buf_appends(&b, "{\"type\":\"USER_TYPE_UNMANAGED\"}"));
            } else {
                B(buf_appends(&b, "{\"type\":\"USER_TYPE_MANAGED\",\"email\":"));
                B(buf_append_json_string(&b, p->email));
                B(buf_appends(&b, "}"));
            }
        }
    }
    B(buf_appends(&b, "]}"));
    B(vec_add_raw(&d->coll[DC_DEVICES], &b, id, serial, ou->path, status,
                  annotated ? annotated->email : NULL, 0));
    rc = 0;
    goto out;
oom:
    rc = -1;
out:
    buf_free(&b);
    return rc;
}

static void free_people(struct gen_person *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].email);
    free(p);
}

static void free_ous(struct gen_ou *o, size_t n)
{
    for (size_t i = 0; o && i < n; i++) {
        free(o[i].path);
        free(o[i].id);
    }
    free(o);
}

/* The OU tree: /Students/<school>/Grade N, /Staff/<school>, /Devices/<school>/Carts, until
 * spec.ous OUs exist. Index lists of where people and devices go. */
static int gen_ous(struct district *d, struct gen_ou *ous, size_t *n, size_t *stu, size_t *nstu,
                   size_t *staff, size_t *nstaff, size_t *dev, size_t *ndev)
{
    size_t max = (size_t)d->spec.ous;
    const char *root = d->root_ou_id + 3;
    static const char *top[][2] = {{"Students", "All students"},
                                   {"Staff", "Teachers and staff"},
                                   {"Devices", "Managed Chromebooks"}};
    for (size_t i = 0; i < 3 && *n < max; i++)
        if (add_ou(d, ous, n, top[i][0], "/", root, top[i][1]))
            return -1;
    for (size_t s = 0; *n < max; s++) {
        char name[128];
        if (s < NSCHOOLS)
            snprintf(name, sizeof name, "%s", school_names[s]);
        else
            snprintf(name, sizeof name, "%s %zu", school_names[s % NSCHOOLS], s / NSCHOOLS + 1);
        int grades = strstr(name, "High") ? 4 : strstr(name, "Middle") ? 3 : 6;
        int first = strstr(name, "High") ? 9 : strstr(name, "Middle") ? 6 : 0;
        size_t school_stu = *n;
        if (add_ou(d, ous, n, name, "/Students", ous[0].id, "School students"))
            return -1;
        stu[(*nstu)++] = school_stu;
        for (int g = 0; g < grades && *n < max; g++) {
            char gname[32];
            if (first + g == 0)
                snprintf(gname, sizeof gname, "Kindergarten");
            else
                snprintf(gname, sizeof gname, "Grade %d", first + g);
            stu[(*nstu)++] = *n;
            if (add_ou(d, ous, n, gname, ous[school_stu].path, ous[school_stu].id, "Grade level"))
                return -1;
        }
        if (*n < max) {
            staff[(*nstaff)++] = *n;
            if (add_ou(d, ous, n, name, "/Staff", ous[1].id, "School staff"))
                return -1;
        }
        if (*n < max) {
            size_t sd = *n;
            dev[(*ndev)++] = *n;
            if (add_ou(d, ous, n, name, "/Devices", ous[2].id, "School devices"))
                return -1;
            if (*n < max) {
                dev[(*ndev)++] = *n;
                if (add_ou(d, ous, n, "Carts", ous[sd].path, ous[sd].id, "Shared cart devices"))
                    return -1;
            }
        }
    }
    /* small trees: the top-level OUs that exist, else the root (index SIZE_MAX) */
    if (!*nstu)
        stu[(*nstu)++] = max > 0 ? 0 : SIZE_MAX;
    if (!*nstaff)
        staff[(*nstaff)++] = max > 1 ? 1 : SIZE_MAX;
    if (!*ndev)
        dev[(*ndev)++] = max > 2 ? 2 : SIZE_MAX;
    return 0;
}

struct district *district_generate(const struct district_spec *spec, char *err, size_t errlen)
{
    struct district *d = calloc(1, sizeof *d);
    struct gen_person *people = NULL;
    struct gen_ou *ous = NULL;
    size_t nous = 0, *stu = NULL, *staff = NULL, *dev = NULL, nstu = 0, nstaff = 0, ndev = 0;
    unsigned *dup = NULL;
    size_t total = 0;
    if (!d)
        goto oom;
    d->spec = *spec;
    pthread_mutex_init(&d->mu, NULL);
    d->rng = spec->seed ^ fnv(spec->id);
    snprintf(d->domain, sizeof d->domain, "%s.k12.example", spec->id);
    snprintf(d->admin, sizeof d->admin, "admin@%s", d->domain);
    uint64_t h = splitmix(&d->rng);
    snprintf(d->customer, sizeof d->customer, "C%08x", (unsigned)(h & 0xffffffffu));
    fmt_guid(splitmix(&d->rng), splitmix(&d->rng), d->tenant);
    snprintf(d->root_ou_id, sizeof d->root_ou_id, "id:03ph%012" PRIx64,
             (uint64_t)(splitmix(&d->rng) & 0xffffffffffffULL));
    d->auth.azure_permission = true;

    ous = calloc((size_t)spec->ous + 1, sizeof *ous);
    stu = calloc((size_t)spec->ous + 1, sizeof *stu);
    staff = calloc((size_t)spec->ous + 1, sizeof *staff);
    dev = calloc((size_t)spec->ous + 1, sizeof *dev);
    if (!ous || !stu || !staff || !dev)
        goto oom;
    if (gen_ous(d, ous, &nous, stu, &nstu, staff, &nstaff, dev, &ndev))
        goto oom;

    /* People: Google users first (the first `shared` also live in Azure), then the
     * deleted Google users, then Azure-only people. */
    size_t ndeleted = (size_t)spec->people / 200;
    size_t nazonly = (size_t)(spec->azure_people - spec->shared);
    total = (size_t)spec->people + ndeleted + nazonly;
    people = calloc(total, sizeof *people);
    dup = calloc(NGIVEN * NFAMILY, sizeof *dup);
    if (!people || !dup)
        goto oom;
    for (size_t i = 0; i < total; i++) {
        struct gen_person *p = &people[i];
        p->given = (unsigned)rnd(d, NGIVEN);
        p->family = (unsigned)rnd(d, NFAMILY);
        p->staff = i == 0 || rnd(d, 100) < 15;
        p->school = (long)rnd(d, NSCHOOLS);
        snprintf(p->employee_id, sizeof p->employee_id, "%c%07zu", p->staff ? 'E' : 'S', 1000 + i);
        unsigned *c = &dup[p->given * NFAMILY + p->family];
        if (i == 0)
            p->email = dupf("admin@%s", d->domain);
        else if (*c == 0)
            p->email = dupf("%s.%s@%s", given_names[p->given].slug, family_names[p->family].slug,
                            d->domain);
        else
            p->email = dupf("%s.%s%u@%s", given_names[p->given].slug, family_names[p->family].slug,
                            *c, d->domain);
        if (i)
            (*c)++;
        if (!p->email)
            goto oom;
    }
    people[0].staff = 1;
    struct gen_ou root_ou = {.path = (char *)"/", .id = d->root_ou_id + 3};
#define OU_AT(k) ((k) == SIZE_MAX ? &root_ou : &ous[(k)])
    for (size_t i = 0; i < (size_t)spec->people + ndeleted; i++) {
        struct gen_person *p = &people[i];
        const struct gen_ou *ou = p->staff ? OU_AT(staff[i % nstaff]) : OU_AT(stu[i % nstu]);
        if (i == 0)
            ou = OU_AT(staff[0]);
        if (gen_google_user(d, p, i, ou, i >= (size_t)spec->people))
            goto oom;
    }
    /* the last proxy_joined of the shared are joined only through a proxy address */
    for (size_t i = 0; i < (size_t)spec->shared; i++)
        if (gen_azure_user(d, &people[i], 1, i,
                           i >= (size_t)(spec->shared - spec->proxy_joined) && i > 0))
            goto oom;
    for (size_t i = 0; i < nazonly; i++)
        if (gen_azure_user(d, &people[(size_t)spec->people + ndeleted + i], 0,
                           (size_t)spec->shared + i, false))
            goto oom;
    for (size_t i = 0; i < (size_t)spec->devices; i++)
        if (gen_device(d, i, OU_AT(dev[i % ndev]), people, (size_t)spec->people))
            goto oom;
#undef OU_AT
    d->azure_version = 1;
    goto out;
oom:
    snprintf(err, errlen, "out of memory generating district");
    district_destroy(d);
    d = NULL;
out:
    free_people(people, total);
    free_ous(ous, nous);
    free(stu);
    free(staff);
    free(dev);
    free(dup);
    return d;
}

void district_destroy(struct district *d)
{
    if (!d)
        return;
    for (int c = 0; c < DC_COUNT; c++) {
        for (size_t i = 0; i < d->coll[c].n; i++)
            item_free(&d->coll[c].items[i]);
        free(d->coll[c].items);
    }
    for (size_t i = 0; i < d->nchanges; i++)
        free(d->changes[i].props);
    free(d->changes);
    for (int c = 0; c < DC_COUNT; c++)
        select_cache_free(d->select[c]);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

void district_lock(struct district *d)
{
    pthread_mutex_lock(&d->mu);
}

void district_unlock(struct district *d)
{
    pthread_mutex_unlock(&d->mu);
}

const char *district_id(const struct district *d)
{
    return d->spec.id;
}
const char *district_domain(const struct district *d)
{
    return d->domain;
}
const char *district_customer_id(const struct district *d)
{
    return d->customer;
}
const char *district_tenant_id(const struct district *d)
{
    return d->tenant;
}
const char *district_admin_email(const struct district *d)
{
    return d->admin;
}
const struct district_spec *district_spec(const struct district *d)
{
    return &d->spec;
}
struct district_auth *district_auth(struct district *d)
{
    return &d->auth;
}

size_t district_count(const struct district *d, enum dcoll c)
{
    return d->coll[c].n;
}

const struct ditem *district_item(const struct district *d, enum dcoll c, size_t i)
{
    return i < d->coll[c].n ? &d->coll[c].items[i] : NULL;
}

size_t district_live_count(const struct district *d, enum dcoll c)
{
    return d->coll[c].live;
}

struct select_cache *district_select_cache(struct district *d, enum dcoll c)
{
    if (!d->select[c])
        d->select[c] = select_cache_new();
    return d->select[c];
}

uint64_t district_generation(const struct district *d, enum dcoll c)
{
    return d->coll[c].generation;
}

long district_find(struct district *d, enum dcoll c, const char *id)
{
    struct vec *v = &d->coll[c];
    char idbuf[64];
    if (c == DC_OUS && strncmp(id, "id:", 3)) {
        snprintf(idbuf, sizeof idbuf, "id:%s", id);
        id = idbuf;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct ditem *it = &v->items[i];
        if (it->flags & DITEM_GONE)
            continue;
        if (!strcmp(it->id, id) || (c != DC_OUS && !strcasecmp(it->key, id)))
            return (long)i;
    }
    return -1;
}

/* ---- mutations ---- */

static int log_change(struct district *d, size_t item, enum dchange kind, const char *props)
{
    if (d->nchanges == d->capchanges) {
        size_t cap = d->capchanges ? d->capchanges * 2 : 64;
        struct change *p = realloc(d->changes, cap * sizeof *p);
        if (!p)
            return -1;
        d->changes = p;
        d->capchanges = cap;
    }
    char *copy = props ? strdup(props) : NULL;
    if (props && !copy)
        return -1;
    d->changes[d->nchanges++] = (struct change){++d->azure_version, item, kind, copy};
    return 0;
}

static void now_str(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fmt_time((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, out);
}

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, json_string(v));
}

static void set_default(json_t *o, const char *k, json_t *v)
{
    if (!json_object_get(o, k))
        json_object_set_new(o, k, v);
    else
        json_decref(v);
}

static int bad(char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s", msg);
    return -1;
}

static long live_find_key(struct district *d, enum dcoll c, const char *key)
{
    struct vec *v = &d->coll[c];
    for (size_t i = 0; i < v->n; i++)
        if (!(v->items[i].flags & (DITEM_GONE | DITEM_DELETED)) &&
            !strcasecmp(v->items[i].key, key))
            return (long)i;
    return -1;
}

static void new_etag(json_t *o, const char *id)
{
    char etag[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fmt_etag(id, (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec, etag);
    set_str(o, "etag", etag);
}

/* Fill what the provider fills in for an object created through the control API. */
static int complete_new(struct district *d, enum dcoll c, json_t *o, char *err, size_t errlen)
{
    char id[40], t[32];
    now_str(t);
    if (c == DC_GUSERS) {
        const char *email = pjson_str(o, "primaryEmail");
        if (!email || !strchr(email, '@'))
            return bad(err, errlen, "primaryEmail (an address) is required");
        char *lc = strdup(email);
        if (!lc)
            return bad(err, errlen, "out of memory");
        lower(lc);
        if (live_find_key(d, c, lc) >= 0) {
            free(lc);
            snprintf(err, errlen, "Entity already exists.");
            return -3;
        }
        set_str(o, "primaryEmail", lc);
        if (!pjson_str(o, "id")) {
            snprintf(id, sizeof id, "1%020" PRIu64,
                     (uint64_t)(splitmix(&d->rng) % 10000000000000000000ULL));
            set_str(o, "id", id);
        }
        json_t *name = json_object_get(o, "name");
        if (!json_is_object(name)) {
            name = json_object();
            json_object_set_new(o, "name", name);
        }
        if (!pjson_str(name, "givenName"))
            set_str(name, "givenName", "New");
        if (!pjson_str(name, "familyName"))
            set_str(name, "familyName", "User");
        if (!pjson_str(name, "fullName")) {
            char full[256];
            snprintf(full, sizeof full, "%s %s", pjson_str(name, "givenName"),
                     pjson_str(name, "familyName"));
            set_str(name, "fullName", full);
        }
        json_t *fixed = json_pack("{s:s}", "kind", "admin#directory#user");
        json_object_update(fixed, o);
        json_object_clear(o);
        json_object_update(o, fixed);
        json_decref(fixed);
        set_default(o, "isAdmin", json_false());
        set_default(o, "isDelegatedAdmin", json_false());
        set_default(o, "lastLoginTime", json_string("1970-01-01T00:00:00.000Z"));
        set_default(o, "creationTime", json_string(t));
        set_default(o, "agreedToTerms", json_false());
        set_default(o, "suspended", json_false());
        set_default(o, "archived", json_false());
        set_default(o, "changePasswordAtNextLogin", json_false());
        set_default(o, "ipWhitelisted", json_false());
        set_default(o, "isEnrolledIn2Sv", json_false());
        set_default(o, "isEnforcedIn2Sv", json_false());
        set_default(o, "emails", json_pack("[{s:s,s:b}]", "address", lc, "primary", 1));
        set_default(o, "customerId", json_string(d->customer));
        set_default(o, "orgUnitPath", json_string("/"));
        set_default(o, "isMailboxSetup", json_true());
        set_default(o, "includeInGlobalAddressList", json_true());
        new_etag(o, pjson_str(o, "id"));
        free(lc);
    } else if (c == DC_OUS) {
        const char *name = pjson_str(o, "name");
        const char *parent = pjson_str(o, "parentOrgUnitPath");
        char *path = NULL;
        const char *parent_id = d->root_ou_id;
        if (!name || !*name || strchr(name, '/'))
            return bad(err, errlen, "name (without '/') is required");
        if (!parent)
            parent = "/";
        if (strcmp(parent, "/")) {
            long pi = live_find_key(d, DC_OUS, parent);
            if (pi < 0)
                return bad(err, errlen, "parentOrgUnitPath does not exist");
            parent_id = d->coll[DC_OUS].items[pi].id;
            path = dupf("%s/%s", d->coll[DC_OUS].items[pi].key, name);
        } else {
            path = dupf("/%s", name);
        }
        if (!path)
            return bad(err, errlen, "out of memory");
        if (live_find_key(d, DC_OUS, path) >= 0) {
            free(path);
            snprintf(err, errlen, "Invalid Ou Id");
            return -3;
        }
        snprintf(id, sizeof id, "id:03ph%012" PRIx64,
                 (uint64_t)(splitmix(&d->rng) & 0xffffffffffffULL));
        json_t *n = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "kind", "admin#directory#orgUnit",
                              "name", name, "description",
                              pjson_str(o, "description") ? pjson_str(o, "description") : "",
                              "orgUnitPath", path, "orgUnitId", id, "parentOrgUnitPath", parent,
                              "parentOrgUnitId", parent_id);
        free(path);
        if (!n)
            return bad(err, errlen, "out of memory");
        json_object_update_missing(n, o);
        json_object_clear(o);
        json_object_update(o, n);
        json_decref(n);
        new_etag(o, id);
    } else if (c == DC_DEVICES) {
        const char *serial = pjson_str(o, "serialNumber");
        if (!serial || !*serial)
            return bad(err, errlen, "serialNumber is required");
        if (!pjson_str(o, "deviceId")) {
            fmt_guid(splitmix(&d->rng), splitmix(&d->rng), id);
            set_str(o, "deviceId", id);
        }
        if (district_find(d, DC_DEVICES, pjson_str(o, "deviceId")) >= 0) {
            snprintf(err, errlen, "Entity already exists.");
            return -3;
        }
        json_t *fixed = json_pack("{s:s}", "kind", "admin#directory#chromeosdevice");
        json_object_update(fixed, o);
        json_object_clear(o);
        json_object_update(o, fixed);
        json_decref(fixed);
        set_default(o, "status", json_string("ACTIVE"));
        set_default(o, "orgUnitPath", json_string("/"));
        set_default(o, "lastEnrollmentTime", json_string(t));
        set_default(o, "model", json_string("HP Chromebook 11 G9 EE"));
        new_etag(o, pjson_str(o, "deviceId"));
    } else {
        const char *upn = pjson_str(o, "userPrincipalName");
        if (!upn || !strchr(upn, '@'))
            return bad(err, errlen, "userPrincipalName is required");
        if (live_find_key(d, DC_AUSERS, upn) >= 0) {
            snprintf(err, errlen,
                     "Another object with the same value for property "
                     "userPrincipalName already exists.");
            return -3;
        }
        if (!pjson_str(o, "id")) {
            fmt_guid(splitmix(&d->rng), splitmix(&d->rng), id);
            set_str(o, "id", id);
        }
        static const char *nulls[] = {
            "displayName",          "givenName",         "jobTitle", "mail",       "mobilePhone",
            "officeLocation",       "preferredLanguage", "surname",  "department", "employeeId",
            "onPremisesImmutableId"};
        for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
            set_default(o, nulls[i], json_null());
        set_default(o, "businessPhones", json_array());
        set_default(o, "accountEnabled", json_true());
        set_default(o, "otherMails", json_array());
        set_default(o, "proxyAddresses", json_array());
        t[19] = 'Z';
        t[20] = '\0';
        set_default(o, "createdDateTime", json_string(t));
        set_default(o, "userType", json_string("Member"));
    }
    return 0;
}

int district_add(struct district *d, enum dcoll c, json_t *obj, json_t **out, char *err,
                 size_t errlen)
{
    json_t *o = NULL;
    int rc;
    if (!json_is_object(obj))
        return bad(err, errlen, "body must be a JSON object");
    o = json_deep_copy(obj);
    if (!o)
        return bad(err, errlen, "out of memory");
    rc = complete_new(d, c, o, err, errlen);
    if (rc)
        goto out;
    struct vec *v = &d->coll[c];
    struct ditem *it = vec_push(v);
    if (!it || item_set(it, c, o)) {
        if (it)
            v->n--;
        rc = bad(err, errlen, "out of memory");
        goto out;
    }
    v->live++;
    v->generation++;
    if (c == DC_AUSERS && log_change(d, v->n - 1, DCHANGE_CREATED, NULL)) {
        rc = bad(err, errlen, "out of memory");
        goto out;
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    return rc;
}

static json_t *item_parse(const struct ditem *it)
{
    return json_loads(it->json, 0, NULL);
}

/* Replace the prefix old of an OU path held in obj[key] by new. */
static int repath(json_t *obj, const char *key, const char *old, const char *new)
{
    const char *p = pjson_str(obj, key);
    size_t n = strlen(old);
    if (!p || strncasecmp(p, old, n) || (p[n] != '\0' && p[n] != '/'))
        return 0;
    char *np = dupf("%s%s", new, p + n);
    if (!np)
        return -1;
    set_str(obj, key, np);
    free(np);
    return 1;
}

/* After an OU moved from old to new path: fix descendants, users and devices. */
static int cascade_ou(struct district *d, const char *old, const char *new)
{
    static const enum dcoll colls[] = {DC_OUS, DC_GUSERS, DC_DEVICES};
    for (size_t k = 0; k < 3; k++) {
        struct vec *v = &d->coll[colls[k]];
        for (size_t i = 0; i < v->n; i++) {
            struct ditem *it = &v->items[i];
            if (it->flags & DITEM_GONE)
                continue;
            const char *probe = colls[k] == DC_OUS ? it->key : it->ou;
            size_t n = strlen(old);
            if (!probe || strncasecmp(probe, old, n) || (probe[n] != '\0' && probe[n] != '/'))
                continue;
            json_t *o = item_parse(it);
            if (!o)
                return -1;
            int r = repath(o, "orgUnitPath", old, new);
            if (r >= 0 && colls[k] == DC_OUS)
                r = repath(o, "parentOrgUnitPath", old, new);
            if (r < 0 || item_set(it, colls[k], o)) {
                json_decref(o);
                return -1;
            }
            json_decref(o);
            v->generation++;
        }
    }
    return 0;
}

int district_patch(struct district *d, enum dcoll c, const char *id, json_t *patch, json_t **out,
                   char *err, size_t errlen)
{
    json_t *o = NULL;
    struct buf props;
    char *oldpath = NULL, *newpath = NULL;
    int rc = 0;
    buf_init(&props, 4096);
    if (!json_is_object(patch))
        return bad(err, errlen, "body must be a JSON object");
    long i = district_find(d, c, id);
    if (i < 0) {
        snprintf(err, errlen, "Resource Not Found: %s", id);
        return -2;
    }
    struct ditem *it = &d->coll[c].items[i];
    o = item_parse(it);
    if (!o) {
        rc = bad(err, errlen, "stored object unreadable");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(patch, key, val)
    {
        if (!strcmp(key, "id") || !strcmp(key, "kind") || !strcmp(key, "deviceId") ||
            !strcmp(key, "orgUnitId") || !strcmp(key, "etag") || !strcmp(key, "orgUnitPath"))
            if (c != DC_GUSERS && c != DC_DEVICES ? 1 : strcmp(key, "orgUnitPath") != 0)
                continue;
        if (c == DC_GUSERS && !strcmp(key, "primaryEmail")) {
            const char *ne = json_string_value(val);
            if (!ne || !strchr(ne, '@')) {
                rc = bad(err, errlen, "primaryEmail must be an address");
                goto out;
            }
            char lc[320];
            snprintf(lc, sizeof lc, "%s", ne);
            lower(lc);
            if (strcmp(lc, it->key) && live_find_key(d, c, lc) >= 0) {
                snprintf(err, errlen, "Entity already exists.");
                rc = -3;
                goto out;
            }
            if (strcmp(lc, it->key)) {
                /* Google keeps the old address as an alias after a rename. */
                json_t *aliases = json_object_get(o, "aliases");
                if (!json_is_array(aliases)) {
                    aliases = json_array();
                    json_object_set_new(o, "aliases", aliases);
                }
                json_array_append_new(aliases, json_string(it->key));
                json_t *emails = json_pack("[{s:s,s:b}]", "address", lc, "primary", 1);
                json_object_set_new(o, "emails", emails);
            }
            set_str(o, "primaryEmail", lc);
            continue;
        }
        if (c == DC_GUSERS && !strcmp(key, "name") && json_is_object(val)) {
            json_t *name = json_object_get(o, "name");
            json_object_update(name, val);
            if (!json_object_get(val, "fullName")) {
                char full[256];
                snprintf(full, sizeof full, "%s %s",
                         pjson_str(name, "givenName") ? pjson_str(name, "givenName") : "",
                         pjson_str(name, "familyName") ? pjson_str(name, "familyName") : "");
                set_str(name, "fullName", full);
            }
            continue;
        }
        if (c == DC_AUSERS && !json_equal(json_object_get(o, key), val)) {
            if (buf_appendf(&props, "%s%s,", props.len ? "" : ",", key)) {
                rc = bad(err, errlen, "too many properties");
                goto out;
            }
        }
        /* Graph: setting a directory extension to null removes it from the user. */
        if (c == DC_AUSERS && json_is_null(val) && !strncmp(key, "extension_", 10))
            json_object_del(o, key);
        else
            json_object_set(o, key, val);
    }
    if (c == DC_OUS &&
        (json_object_get(patch, "name") || json_object_get(patch, "parentOrgUnitPath"))) {
        const char *name = pjson_str(o, "name");
        const char *parent = pjson_str(o, "parentOrgUnitPath");
        if (!name || !parent || strchr(name, '/')) {
            rc = bad(err, errlen, "name and parentOrgUnitPath must be strings");
            goto out;
        }
        oldpath = strdup(it->key);
        newpath = strcmp(parent, "/") ? dupf("%s/%s", parent, name) : dupf("/%s", name);
        if (!oldpath || !newpath) {
            rc = bad(err, errlen, "out of memory");
            goto out;
        }
        if (strcasecmp(oldpath, newpath) && live_find_key(d, DC_OUS, newpath) >= 0) {
            snprintf(err, errlen, "Invalid Ou Id");
            rc = -3;
            goto out;
        }
        set_str(o, "orgUnitPath", newpath);
        if (strcmp(parent, "/")) {
            long pi = live_find_key(d, DC_OUS, parent);
            if (pi < 0) {
                rc = bad(err, errlen, "parentOrgUnitPath does not exist");
                goto out;
            }
            set_str(o, "parentOrgUnitId", d->coll[DC_OUS].items[pi].id);
        } else {
            set_str(o, "parentOrgUnitId", d->root_ou_id);
        }
    }
    if (c != DC_AUSERS)
        new_etag(o, it->id);
    if (item_set(it, c, o)) {
        rc = bad(err, errlen, "out of memory");
        goto out;
    }
    d->coll[c].generation++;
    if (oldpath && strcmp(oldpath, newpath) && cascade_ou(d, oldpath, newpath)) {
        rc = bad(err, errlen, "out of memory");
        goto out;
    }
    if (c == DC_AUSERS && props.len && log_change(d, (size_t)i, DCHANGE_UPDATED, props.data)) {
        rc = bad(err, errlen, "out of memory");
        goto out;
    }
    *out = o;
    o = NULL;
out:
    json_decref(o);
    free(oldpath);
    free(newpath);
    buf_free(&props);
    return rc;
}

int district_delete(struct district *d, enum dcoll c, const char *id, bool permanent)
{
    long i = district_find(d, c, id);
    if (i < 0)
        return -2;
    struct vec *v = &d->coll[c];
    struct ditem *it = &v->items[i];
    unsigned before = it->flags;
    if (c == DC_GUSERS) {
        if (before & DITEM_DELETED)
            return -2;
        json_t *o = item_parse(it);
        char t[32];
        now_str(t);
        if (!o)
            return -1;
        set_str(o, "deletionTime", t);
        int r = item_set(it, c, o);
        json_decref(o);
        if (r)
            return -1;
        it->flags |= DITEM_DELETED;
    } else if (c == DC_AUSERS && !permanent) {
        if (before & DITEM_DELETED)
            return -2;
        it->flags |= DITEM_DELETED;
        if (log_change(d, (size_t)i, DCHANGE_SOFT, NULL))
            return -1;
    } else {
        it->flags |= DITEM_GONE;
        if (c == DC_AUSERS && log_change(d, (size_t)i, DCHANGE_HARD, NULL))
            return -1;
    }
    if (!(before & (DITEM_DELETED | DITEM_GONE)))
        v->live--;
    v->generation++;
    return 0;
}

int district_restore(struct district *d, enum dcoll c, const char *id)
{
    long i = district_find(d, c, id);
    if ((c != DC_AUSERS && c != DC_GUSERS) || i < 0)
        return -2;
    struct ditem *it = &d->coll[c].items[i];
    if ((it->flags & DITEM_GONE) || !(it->flags & DITEM_DELETED))
        return -2;
    if (c == DC_GUSERS) { /* users.undelete: the same id, no deletionTime */
        json_t *o = item_parse(it);
        if (!o)
            return -1;
        json_object_del(o, "deletionTime");
        int r = item_set(it, c, o);
        json_decref(o);
        if (r)
            return -1;
    }
    it->flags &= ~(unsigned)DITEM_DELETED;
    d->coll[c].live++;
    d->coll[c].generation++;
    return c == DC_AUSERS ? log_change(d, (size_t)i, DCHANGE_RESTORED, NULL) : 0;
}

void district_set_delta_repeats(struct district *d, bool repeats)
{
    d->delta_repeats = repeats;
}

void district_set_ous_children_first(struct district *d, bool children_first)
{
    d->ous_children_first = children_first;
}

bool district_ous_children_first(const struct district *d)
{
    return d->ous_children_first;
}

uint64_t district_azure_version(const struct district *d)
{
    return d->azure_version;
}

long district_azure_changes(const struct district *d, uint64_t from, uint64_t to,
                            struct dchange_sum **out)
{
    size_t n = 0;
    long *slot = NULL;
    struct dchange_sum *sums = NULL;
    *out = NULL;
    /* changes are in version order; find the first one after `from` */
    size_t lo = 0, hi = d->nchanges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->changes[mid].version <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == d->nchanges)
        return 0;
    slot = malloc((d->coll[DC_AUSERS].n + 1) * sizeof *slot);
    sums = calloc(d->nchanges - lo, sizeof *sums);
    if (!slot || !sums) {
        free(slot);
        free(sums);
        return -1;
    }
    for (size_t i = 0; i <= d->coll[DC_AUSERS].n; i++)
        slot[i] = -1;
    for (size_t k = lo; k < d->nchanges && d->changes[k].version <= to; k++) {
        const struct change *ch = &d->changes[k];
        struct dchange_sum *s;
        if (slot[ch->item] < 0 || d->delta_repeats) {
            slot[ch->item] = (long)n;
            s = &sums[n++];
            s->item = ch->item;
            s->kind = ch->kind;
            s->props[0] = '\0';
        } else {
            s = &sums[slot[ch->item]];
            if (ch->kind == DCHANGE_HARD || ch->kind == DCHANGE_SOFT ||
                ch->kind == DCHANGE_RESTORED)
                s->kind = ch->kind;
        }
        if (ch->kind == DCHANGE_UPDATED && ch->props) {
            /* union of names, kept as ",a,b," */
            const char *p = ch->props + 1;
            while (*p) {
                const char *e = strchr(p, ',');
                if (!e)
                    break;
                char name[128];
                size_t len = (size_t)(e - p);
                if (len < sizeof name - 2) {
                    snprintf(name, sizeof name, ",%.*s,", (int)len, p);
                    if (!strstr(s->props, name)) {
                        size_t cur = strlen(s->props);
                        if (cur == 0)
                            snprintf(s->props, sizeof s->props, "%s", name);
                        else if (cur + len + 1 < sizeof s->props)
                            snprintf(s->props + cur, sizeof s->props - cur, "%.*s,", (int)len, p);
                    }
                }
                p = e + 1;
            }
        }
    }
    free(slot);
    *out = sums;
    return (long)n;
}
