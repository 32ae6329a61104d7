#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "kafka.h"

/* The value of key in a conf, or "" when unset. */
static const char *conf_value(rd_kafka_conf_t *conf, const char *key, char *buf, size_t len)
{
    size_t n = len;
    if (rd_kafka_conf_get(conf, key, buf, &n) != RD_KAFKA_CONF_OK)
        buf[0] = '\0';
    return buf;
}

static int configure(const char *protocol, const char *mech, const char *user, const char *pass,
                     const char *props, char *err, size_t errlen)
{
    struct kafka_client_config c = {
        .security_protocol = (char *)protocol,
        .sasl_mechanism = (char *)mech,
        .sasl_username = (char *)user,
        .sasl_password = (char *)pass,
        .properties = (char *)props,
    };
    return kafka_client_configure(&c, err, errlen);
}

static void sasl_settings_reach_every_conf(void **state)
{
    (void)state;
    char err[512], v[256];
    assert_int_equal(
        configure("SASL_PLAINTEXT", "SCRAM-SHA-512", "merger", "pw", NULL, err, sizeof err), 0);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(kafka_conf_apply_client(conf, err, sizeof err), 0);
    assert_string_equal(conf_value(conf, "security.protocol", v, sizeof v), "sasl_plaintext");
    assert_string_equal(conf_value(conf, "sasl.mechanisms", v, sizeof v), "SCRAM-SHA-512");
    assert_string_equal(conf_value(conf, "sasl.username", v, sizeof v), "merger");
    rd_kafka_conf_destroy(conf);
    kafka_client_reset();
}

static void passthrough_is_parsed_and_trimmed(void **state)
{
    (void)state;
    char err[512], v[256];
    assert_int_equal(configure("PLAINTEXT", NULL, NULL, NULL,
                               " socket.keepalive.enable = true ,\n# a comment\n\n"
                               "reconnect.backoff.max.ms=5000",
                               err, sizeof err),
                     0);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(kafka_conf_apply_client(conf, err, sizeof err), 0);
    assert_string_equal(conf_value(conf, "socket.keepalive.enable", v, sizeof v), "true");
    assert_string_equal(conf_value(conf, "reconnect.backoff.max.ms", v, sizeof v), "5000");
    rd_kafka_conf_destroy(conf);
    kafka_client_reset();
}

static void refuses_what_the_code_relies_on(void **state)
{
    (void)state;
    char err[512];
    static const char *const reserved[] = {"enable.idempotence=false",
                                           "acks=1",
                                           "isolation.level=read_uncommitted",
                                           "enable.auto.commit=true",
                                           "group.id=other",
                                           "sasl.password=x",
                                           "bootstrap.servers=evil:1",
                                           "plugin.library.paths=/tmp/x.so"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        assert_int_equal(configure("PLAINTEXT", NULL, NULL, NULL, reserved[i], err, sizeof err),
                         -1);
        assert_non_null(strstr(err, "cannot be overridden"));
    }
    assert_int_equal(configure("PLAINTEXT", NULL, NULL, NULL, "no.such.thing=1", err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "no.such.thing"));
    assert_int_equal(configure("PLAINTEXT", NULL, NULL, NULL, "novalue", err, sizeof err), -1);
    assert_int_equal(configure("PLAINTEXT", NULL, NULL, NULL, "Bad Key=1", err, sizeof err), -1);
    /* a failed configure leaves nothing behind */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char v[64];
    assert_int_equal(kafka_conf_apply_client(conf, err, sizeof err), 0);
    assert_string_equal(conf_value(conf, "security.protocol", v, sizeof v), "plaintext");
    rd_kafka_conf_destroy(conf);
}

static void incomplete_combinations_are_refused(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(configure("SASL_SSL", NULL, "u", "p", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "PANEL_KAFKA_SASL_MECHANISM"));
    assert_int_equal(configure("SASL_SSL", "SCRAM-SHA-256", "u", NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "PANEL_KAFKA_SASL_PASSWORD"));
    assert_int_equal(configure("SASL_SSL", "OAUTHBEARER", "u", "p", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "OAUTHBEARER is not supported"));
    assert_int_equal(configure("PLAINTEXT", NULL, "u", NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "has no SASL"));
    assert_int_equal(configure("TLS", NULL, NULL, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "PANEL_KAFKA_SECURITY_PROTOCOL"));
    struct kafka_client_config c = {.security_protocol = "PLAINTEXT", .ssl_ca_file = "/x.pem"};
    assert_int_equal(kafka_client_configure(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "has no TLS"));
    c.security_protocol = "SSL";
    assert_int_equal(kafka_client_configure(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read /x.pem"));
    c.ssl_ca_file = NULL;
    c.ssl_cert_file = "/etc/hostname";
    assert_int_equal(kafka_client_configure(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "go together"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sasl_settings_reach_every_conf),
        cmocka_unit_test(passthrough_is_parsed_and_trimmed),
        cmocka_unit_test(refuses_what_the_code_relies_on),
        cmocka_unit_test(incomplete_combinations_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
