/* panelctl commands. Each takes the words after its name and returns the exit status
 * (0 ok, 1 failed, 2 usage). Configuration comes from the environment like the services'. */
#ifndef PANELCTL_COMMANDS_H
#define PANELCTL_COMMANDS_H

#include "db.h"

struct panelctl_command {
    const char *name;
    const char *usage;
    const char *help;
    int (*run)(int argc, char **argv);
};

int cmd_migrate(int argc, char **argv);
int cmd_schema_version(int argc, char **argv);
int cmd_topics(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_consume(int argc, char **argv);
int cmd_produce_test(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_tenant_add(int argc, char **argv);
int cmd_apikey_create(int argc, char **argv);
int cmd_apikey_revoke(int argc, char **argv);
int cmd_admin_add(int argc, char **argv);
int cmd_offsets(int argc, char **argv);

/* panelctl's configuration: one table like the services' (lib/config.h), so every value
 * may also come from a file named by <VAR>_FILE (the Kubernetes migration Job mounts its
 * Secret that way). Loaded once by main before any command runs; owned by main. */
struct panelctl_config {
    char *pg_url;
    char *migrations_dir;
    char *kafka_brokers;
    long long kafka_partitions;
    char *log_level;
};

const struct panelctl_config *panelctl_config(void);

/* The commands that read or write rows do it through lib/db: a pool of one connection. */
struct panelctl_db {
    struct db_pool *pool;
    struct db_conn *conn;
};
/* Connect (waiting up to 30 s for the server). 0, or -1 after printing why. */
int panelctl_db_open(struct panelctl_db *d) __attribute__((warn_unused_result));
void panelctl_db_close(struct panelctl_db *d);

#endif
