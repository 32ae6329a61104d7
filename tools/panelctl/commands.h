/* panelctl commands. Each takes the words after its name and returns the exit status
 * (0 ok, 1 failed, 2 usage). Configuration comes from the environment like the services'. */
#ifndef PANELCTL_COMMANDS_H
#define PANELCTL_COMMANDS_H

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

/* Environment helpers: the value, or def when unset or empty. */
const char *panelctl_env(const char *name, const char *def);

#endif
