#include "log.h"
#include "buf.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_service[64] = "panel";
static enum log_level log_min = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* civetweb serves one request per worker thread at a time: the thread is the request. */
static _Thread_local const char *log_request_id;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, enum log_level level)
{
    snprintf(log_service, sizeof log_service, "%s", service ? service : "panel");
    log_min = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_str(enum log_level level)
{
    return (level >= LOG_DEBUG && level <= LOG_ERROR) ? level_names[level] : "info";
}

bool log_enabled(enum log_level level)
{
    return level >= log_min;
}

void log_vwrite(enum log_level level, const char *tenant, const char *run, const char *fmt,
                va_list ap)
{
    struct buf line, msg;
    struct timeval tv;
    struct tm tm;
    char ts[40];

    buf_init(&line, 64 * 1024);
    buf_init(&msg, 32 * 1024);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (buf_vappendf(&msg, fmt, ap) != 0) {
        buf_reset(&msg);
        if (buf_appends(&msg, "(log message too long)") != 0)
            goto out;
    }

    int rc = buf_appendf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"service\":", ts,
                         (long)(tv.tv_usec / 1000), log_level_str(level));
    rc |= buf_append_json_string(&line, log_service);
    if (tenant) {
        rc |= buf_appends(&line, ",\"tenant\":");
        rc |= buf_append_json_string(&line, tenant);
    }
    if (run) {
        rc |= buf_appends(&line, ",\"run\":");
        rc |= buf_append_json_string(&line, run);
    }
    if (log_request_id) {
        rc |= buf_appends(&line, ",\"request_id\":");
        rc |= buf_append_json_string(&line, log_request_id);
    }
    rc |= buf_appends(&line, ",\"msg\":");
    rc |= buf_append_json_string(&line, msg.data ? msg.data : "");
    rc |= buf_appends(&line, "}\n");
    if (rc == 0) {
        pthread_mutex_lock(&log_lock);
        ssize_t off = 0;
        while ((size_t)off < line.len) {
            ssize_t n = write(STDERR_FILENO, line.data + off, line.len - (size_t)off);
            if (n <= 0)
                break;
            off += n;
        }
        pthread_mutex_unlock(&log_lock);
    }
out:
    buf_free(&line);
    buf_free(&msg);
}

void log_write(enum log_level level, const char *tenant, const char *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, tenant, run, fmt, ap);
    va_end(ap);
}

void log_set_request(const char *request_id)
{
    log_request_id = request_id;
}
