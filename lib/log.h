/* log: one JSON line per message on stderr, with level, service, tenant and run where known.
 * Thread-safe. The level is checked before arguments are formatted (use the macros). */
#ifndef PANEL_LOG_H
#define PANEL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Name the service (copied) and the minimum level. Call once from main(). */
void log_init(const char *service, enum log_level level);
/* "debug", "info", "warn", "error" -> level; returns 0, or -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out) __attribute__((warn_unused_result));
const char *log_level_str(enum log_level level);
bool log_enabled(enum log_level level);
/* tenant and run may be NULL. Never pass secrets. */
void log_write(enum log_level level, const char *tenant, const char *run, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_vwrite(enum log_level level, const char *tenant, const char *run, const char *fmt,
                va_list ap);
/* The request id this thread is serving (borrowed; NULL when none): every line written by the
 * thread meanwhile carries it as "request_id". httpd sets it around each request. */
void log_set_request(const char *request_id);

#define LOG_AT(lvl, tenant, run, ...)                                                              \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, tenant, run, __VA_ARGS__);                                              \
    } while (0)
#define log_debug(...) LOG_AT(LOG_DEBUG, NULL, NULL, __VA_ARGS__)
#define log_info(...)  LOG_AT(LOG_INFO, NULL, NULL, __VA_ARGS__)
#define log_warn(...)  LOG_AT(LOG_WARN, NULL, NULL, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_ERROR, NULL, NULL, __VA_ARGS__)
/* Same, with the tenant and run the message is about. */
#define log_debug_t(tenant, run, ...) LOG_AT(LOG_DEBUG, tenant, run, __VA_ARGS__)
#define log_info_t(tenant, run, ...)  LOG_AT(LOG_INFO, tenant, run, __VA_ARGS__)
#define log_warn_t(tenant, run, ...)  LOG_AT(LOG_WARN, tenant, run, __VA_ARGS__)
#define log_error_t(tenant, run, ...) LOG_AT(LOG_ERROR, tenant, run, __VA_ARGS__)

#endif
