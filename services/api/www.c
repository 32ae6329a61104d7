/* www: see www.h. */
#include "www.h"

#include "httpd.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

bool www_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
            return false;
    return strstr(name, "..") == NULL;
}

static const char *mime(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (strcmp(dot, ".svg") == 0)
        return "image/svg+xml";
    if (strcmp(dot, ".png") == 0)
        return "image/png";
    if (strcmp(dot, ".ico") == 0)
        return "image/x-icon";
    return "application/octet-stream";
}

int www_serve(struct mg_connection *conn, void *cbdata)
{
    const char *dir = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *uri = ri->local_uri;
    char path[4096];
    struct stat st;
    if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0)
        return httpd_reply_error(conn, 405, "method_not_allowed", "only GET is served here");
    const char *name = strcmp(uri, "/") == 0 ? "index.html" : uri + 1;
    if (!www_name_ok(name))
        return httpd_reply_error(conn, 404, "not_found", "no such resource");
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return httpd_reply_error(conn, 404, "not_found", "no such resource");
    mg_send_mime_file2(conn, path, mime(name),
                       "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
                       "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n");
    return 200;
}
