
/*
 * main(): the command line, the event loop, signals, and the way out.
 */


#include "ngxc_launcher.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* how long, after the last grace, a stop waits for the registry */
#define NGXC_LAUNCHER_STOP_SLACK  5.0


static void ngxc_launcher_usage(FILE *f);
static int ngxc_launcher_owner(const char *name);
static void ngxc_launcher_signal(evutil_socket_t signo, short what,
    void *data);
static void ngxc_launcher_give_up(evutil_socket_t fd, short what,
    void *data);


ngxc_launcher_cycle_t  ngxc_launcher_cycle;

static struct event   *ngxc_launcher_give_up_timer;


int
main(int argc, char **argv)
{
    int                     opt, rc;
    char                   *end, *classes, *p;
    long                    db;
    size_t                  i, len;
    const char             *file, *registry, *name;
    struct event           *signals[3];
    ngxc_launcher_conf_t   *conf;
    ngxc_launcher_cycle_t  *cycle;
    static int              signos[3] = { SIGTERM, SIGINT, SIGCHLD };

    cycle = &ngxc_launcher_cycle;
    cycle->redis_db = -1;

    file = NULL;
    registry = NULL;
    name = NULL;

    while ((opt = getopt(argc, argv, ":c:r:a:d:n:h")) != -1) {
        switch (opt) {

        case 'c':
            file = optarg;
            break;

        case 'r':
            registry = optarg;
            break;

        case 'a':
            cycle->redis_password = optarg;
            break;

        case 'd':
            errno = 0;
            db = strtol(optarg, &end, 10);

            if (errno != 0 || end == optarg || *end != '\0' || db < 0
                || db > INT_MAX)
            {
                fprintf(stderr, NGXC_LAUNCHER_NAME ": invalid -d \"%s\": "
                        "a database number is expected\n", optarg);
                return 1;
            }

            cycle->redis_db = (int) db;
            break;

        case 'n':
            name = optarg;
            break;

        case 'h':
            ngxc_launcher_usage(stdout);
            return 0;

        case ':':
            fprintf(stderr, NGXC_LAUNCHER_NAME ": -%c needs a value\n",
                    optopt);
            ngxc_launcher_usage(stderr);
            return 1;

        default:
            fprintf(stderr, NGXC_LAUNCHER_NAME ": unknown option -%c\n",
                    optopt);
            ngxc_launcher_usage(stderr);
            return 1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": unexpected argument \"%s\"\n",
                argv[optind]);
        ngxc_launcher_usage(stderr);
        return 1;
    }

    if (file == NULL) {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": -c CLASSES.json is required\n");
        ngxc_launcher_usage(stderr);
        return 1;
    }

    conf = ngxc_launcher_conf_load(file);
    if (conf == NULL) {
        return 1;
    }

    cycle->conf = conf;

    if (registry == NULL && conf->registry != NULL) {
        if (ngxc_launcher_registry_parse(conf->registry) != 0) {
            fprintf(stderr, NGXC_LAUNCHER_NAME ": %s: \"registry\" \"%s\" "
                    "must be \"host:port\" or \"unix:/path\"\n", file,
                    conf->registry);
            return 1;
        }

    } else if (ngxc_launcher_registry_parse(registry ? registry
                                                     : "127.0.0.1:6379")
               != 0)
    {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": invalid -r \"%s\": "
                "\"host:port\" or \"unix:/path\" is expected\n", registry);
        return 1;
    }

    if (ngxc_launcher_owner(name) != 0) {
        return 1;
    }

    /* Redis's channels are not in a database: the number is in the name */

    if (cycle->redis_db > 0) {
        snprintf(cycle->channel, sizeof(cycle->channel), "%s:%d",
                 NGXC_LAUNCHER_CHANNEL, cycle->redis_db);

    } else {
        snprintf(cycle->channel, sizeof(cycle->channel), "%s",
                 NGXC_LAUNCHER_CHANNEL);
    }

    /* a peer gone while we write is an error return, not our death */

    signal(SIGPIPE, SIG_IGN);

    /*
     * before any signal is caught: a SIGTERM while the registry does not
     * answer ends the launcher at once, and no instance runs yet
     */

    while (ngxc_launcher_reconcile() != 0) {
        sleep(1);
    }

    cycle->base = event_base_new();
    if (cycle->base == NULL) {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": event_base_new() failed\n");
        return 1;
    }

    for (i = 0; i < 3; i++) {
        signals[i] = evsignal_new(cycle->base, signos[i],
                                  ngxc_launcher_signal, NULL);

        if (signals[i] == NULL || evsignal_add(signals[i], NULL) != 0) {
            fprintf(stderr, NGXC_LAUNCHER_NAME ": evsignal_add() failed\n");
            return 1;
        }
    }

    ngxc_launcher_give_up_timer = evtimer_new(cycle->base,
                                              ngxc_launcher_give_up, NULL);

    if (ngxc_launcher_give_up_timer == NULL
        || ngxc_launcher_registry_init() != 0
        || ngxc_launcher_instance_init() != 0)
    {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": out of memory\n");
        return 1;
    }

    /* "counter,slow", for the log */

    len = 1;

    for (i = 0; i < conf->nclasses; i++) {
        len += strlen(conf->classes[i].name) + 1;
    }

    classes = calloc(1, len);
    if (classes == NULL) {
        return 1;
    }

    for (i = 0, p = classes; i < conf->nclasses; i++) {
        p += sprintf(p, "%s%s", i ? "," : "", conf->classes[i].name);
    }

    ngxc_launcher_log("started name=%s registry=%s classes=%s pid=%d",
                      cycle->owner, cycle->registry, classes, (int) getpid());

    free(classes);

    rc = event_base_dispatch(cycle->base);

    /* the loop ended: stopped, or given up on the registry */

    cycle->exiting = 1;

    ngxc_launcher_registry_cleanup();
    ngxc_launcher_instance_cleanup();

    for (i = 0; i < 3; i++) {
        event_free(signals[i]);
    }

    event_free(ngxc_launcher_give_up_timer);
    event_base_free(cycle->base);
    libevent_global_shutdown();

    ngxc_launcher_log("stopped");

    ngxc_launcher_conf_free(conf);
    free(cycle->owner);
    free(cycle->redis_host);
    free(cycle->redis_unix);

    return (rc == -1) ? 1 : 0;
}


/* called when an instance or a registry update is over */

void
ngxc_launcher_check_done(void)
{
    ngxc_launcher_cycle_t  *cycle;

    cycle = &ngxc_launcher_cycle;

    if (cycle->stopping && !cycle->exiting && cycle->instances == NULL
        && !ngxc_launcher_registry_busy())
    {
        event_base_loopbreak(cycle->base);
    }
}


static void
ngxc_launcher_usage(FILE *f)
{
    fprintf(f,
        "usage: " NGXC_LAUNCHER_NAME " -c CLASSES.json [-r host:port | "
        "-r unix:/path]\n"
        "           [-a password] [-d db] [-n name]\n"
        "\n"
        "  -c file   the classes file (JSON)\n"
        "  -r addr   the registry (Redis); default: the classes file's\n"
        "            \"registry\", else 127.0.0.1:6379\n"
        "  -a pass   AUTH with this password\n"
        "  -d db     SELECT this database\n"
        "  -n name   this launcher's name in the records' \"owner\";\n"
        "            default: <hostname>:<pid>\n"
        "  -h        this help\n");
}


static int
ngxc_launcher_owner(const char *name)
{
    int   n;
    char  host[256];

    if (name != NULL) {
        if (name[0] == '\0') {
            fprintf(stderr, NGXC_LAUNCHER_NAME ": -n must not be empty\n");
            return -1;
        }

        ngxc_launcher_cycle.owner = strdup(name);

        return (ngxc_launcher_cycle.owner == NULL) ? -1 : 0;
    }

    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }

    host[sizeof(host) - 1] = '\0';

    n = asprintf(&ngxc_launcher_cycle.owner, "%s:%d", host, (int) getpid());

    if (n < 0) {
        ngxc_launcher_cycle.owner = NULL;
        return -1;
    }

    return 0;
}


static void
ngxc_launcher_signal(evutil_socket_t signo, short what, void *data)
{
    struct timeval          tv;
    ngxc_launcher_cycle_t  *cycle;

    (void) what;
    (void) data;

    cycle = &ngxc_launcher_cycle;

    if (signo == SIGCHLD) {
        ngxc_launcher_instance_reap();
        return;
    }

    if (cycle->stopping) {
        ngxc_launcher_log("signal %d again: killing the instances",
                          (int) signo);
        ngxc_launcher_instance_kill_all();
        return;
    }

    cycle->stopping = 1;

    ngxc_launcher_log("stopping on signal %d", (int) signo);

    ngxc_launcher_registry_stop_wakes();
    ngxc_launcher_instance_stop_all();

    tv = ngxc_launcher_timeval(cycle->conf->max_stop_grace
                               + NGXC_LAUNCHER_STOP_SLACK);
    evtimer_add(ngxc_launcher_give_up_timer, &tv);

    ngxc_launcher_check_done();
}


/* the registry stayed away, or an instance would not die */

static void
ngxc_launcher_give_up(evutil_socket_t fd, short what, void *data)
{
    (void) fd;
    (void) what;
    (void) data;

    ngxc_launcher_log("giving up waiting: %d registry updates pending",
                      ngxc_launcher_registry_busy());

    event_base_loopbreak(ngxc_launcher_cycle.base);
}
