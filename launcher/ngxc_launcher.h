
/*
 * ngx-container-launcher: takes the wake requests that gateways queue in the
 * registry, starts one process per object ID, tells the gateways where it
 * listens, and stops it when it has been idle.  The registry protocol is in
 * README.md, "The registry protocol".
 */


#ifndef NGXC_LAUNCHER_H
#define NGXC_LAUNCHER_H


#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis.h>
#include <async.h>


#define NGXC_LAUNCHER_NAME          "ngx-container-launcher"

/* the protocol's longest object ID, in bytes */
#define NGXC_LAUNCHER_ID_MAX        512

/* an ID escaped for a log line: quotes and four bytes for each byte */
#define NGXC_LAUNCHER_ID_LOG_MAX    (2 + 4 * NGXC_LAUNCHER_ID_MAX + 1)

#define NGXC_LAUNCHER_GEN_MAX       24

/* a class name's length, as the module allows it */
#define NGXC_LAUNCHER_CLASS_MAX     64

/* the instance records: ngxc:inst:{<class>:<id>} */
#define NGXC_LAUNCHER_INST_PREFIX   "ngxc:inst:{"

/* the address index: ngxc:addr:{<host:port>} */
#define NGXC_LAUNCHER_ADDR_PREFIX   "ngxc:addr:{"

/* the events channel, ":<db>" after it in a database other than 0 */
#define NGXC_LAUNCHER_CHANNEL       "ngxc:events"

/* how long after its stop_grace a stopping record may be claimed anew */
#define NGXC_LAUNCHER_STOP_SLACK    5.0


typedef struct ngxc_launcher_instance_s  ngxc_launcher_instance_t;


/* one class of the classes file */
typedef struct {
    char                      *name;
    char                     **argv;
    char                      *dir;
    char                     **env;            /* "NAME=value" */
    size_t                     nenv;
    char                      *host;
    struct sockaddr_storage    sockaddr;       /* host, port left 0 */
    socklen_t                  socklen;
    int                        port_low;
    int                        port_high;
    int                        port_next;      /* where the search starts */
    double                     idle_timeout;   /* seconds */
    double                     stop_grace;
    double                     start_timeout;
    char                      *ready_path;     /* NULL: accepting is ready */
    double                     ready_interval;
    int                        max_instances;
    int                        running;        /* instances holding a slot */
} ngxc_launcher_class_t;


typedef struct {
    char                      *file;
    char                      *registry;       /* NULL: not in the file */
    ngxc_launcher_class_t     *classes;
    size_t                     nclasses;
    double                     max_stop_grace;
} ngxc_launcher_conf_t;


/* the steps of the protocol that the launcher runs, one script each */
typedef enum {
    NGXC_LAUNCHER_STEP_TAKE = 0,
    NGXC_LAUNCHER_STEP_READY,
    NGXC_LAUNCHER_STEP_IDLE,
    NGXC_LAUNCHER_STEP_FAIL,
    NGXC_LAUNCHER_STEP_EXIT
} ngxc_launcher_step_e;


/* where an instance is, as far as this launcher knows */
typedef enum {
    NGXC_LAUNCHER_TAKING = 0,       /* take sent, no process yet */
    NGXC_LAUNCHER_PLACING,          /* port chosen, address index sent */
    NGXC_LAUNCHER_STARTING,         /* process started, probing its port */
    NGXC_LAUNCHER_READYING,         /* ready sent */
    NGXC_LAUNCHER_READY,
    NGXC_LAUNCHER_STOPPING,         /* SIGTERM sent */
    NGXC_LAUNCHER_DONE              /* no process; waits for its scripts */
} ngxc_launcher_state_e;


struct ngxc_launcher_instance_s {
    ngxc_launcher_instance_t  *next;
    ngxc_launcher_instance_t  *prev;
    ngxc_launcher_class_t     *cls;
    u_char                    *id;
    size_t                     id_len;
    char                       gen[NGXC_LAUNCHER_GEN_MAX];
    char                       adopt[NGXC_LAUNCHER_GEN_MAX]; /* take sent */
    ngxc_launcher_state_e      state;
    pid_t                      pid;            /* 0: no process */
    int                        port;
    char                      *addr;
    const char                *stop_reason;    /* recorded when it ends */
    char                       given_up[128];  /* why it will not be ready */
    char                       pending[NGXC_LAUNCHER_GEN_MAX]; /* a wake */
    int64_t                    idle_next;      /* when to run idle again */
    struct event              *deadline;       /* start_timeout */
    struct event              *probe_timer;
    struct event              *probe_io;
    int                        probe_fd;
    size_t                     probe_len;      /* bytes read */
    int                        probe_status;   /* 1: 2xx, -1: not, 0: ? */
    char                       probe_buf[64];
    struct event              *kill;           /* SIGKILL after stop_grace */
    int                        calls;          /* scripts queued or sent */
    unsigned                   slot:1;         /* counted in cls->running */
    unsigned                   ready:1;        /* the ready step succeeded */
    unsigned                   recorded:1;     /* nothing left to record */
    unsigned                   idle_sent:1;
};


typedef struct {
    struct event_base         *base;
    ngxc_launcher_conf_t      *conf;
    char                      *owner;          /* -n, the records' owner */
    const char                *registry;       /* as given, for the log */
    char                      *redis_host;
    int                        redis_port;
    char                      *redis_unix;
    const char                *redis_password;
    int                        redis_db;       /* -1: no SELECT */
    char                       channel[40];    /* the events channel */
    ngxc_launcher_instance_t  *instances;
    unsigned                   stopping:1;     /* SIGTERM or SIGINT seen */
    unsigned                   exiting:1;      /* the loop has ended */
} ngxc_launcher_cycle_t;


extern ngxc_launcher_cycle_t  ngxc_launcher_cycle;


/* ngxc_launcher.c */
void ngxc_launcher_check_done(void);

/* ngxc_launcher_log.c */
void ngxc_launcher_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void ngxc_launcher_log_step(const char *step, const char *cls,
    const u_char *id, size_t id_len, const char *gen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
char *ngxc_launcher_quote(char *buf, size_t size, const u_char *s,
    size_t len);
int64_t ngxc_launcher_msec(void);
struct timeval ngxc_launcher_timeval(double seconds);

/* ngxc_launcher_conf.c */
ngxc_launcher_conf_t *ngxc_launcher_conf_load(const char *file);
void ngxc_launcher_conf_free(ngxc_launcher_conf_t *conf);
ngxc_launcher_class_t *ngxc_launcher_conf_class(ngxc_launcher_conf_t *conf,
    const char *name);

/* ngxc_launcher_scripts.c */
extern const char   ngxc_launcher_script_addr[];
extern const char   ngxc_launcher_script_forget[];
extern const char  *ngxc_launcher_scripts[];
extern const char  *ngxc_launcher_step_names[];

/* ngxc_launcher_registry.c */
int ngxc_launcher_registry_parse(const char *addr);
int ngxc_launcher_registry_init(void);
void ngxc_launcher_registry_stop_wakes(void);
int ngxc_launcher_registry_busy(void);
int ngxc_launcher_registry_connected(void);
void ngxc_launcher_registry_cleanup(void);
int ngxc_launcher_registry_command(redisCallbackFn *fn, void *data,
    int argc, const char **argv, const size_t *argvlen);
int ngxc_launcher_registry_eval(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, const char *cls, const u_char *id,
    size_t id_len, const char *gen, const char *arg, const char *arg2);

/* ngxc_launcher_reconcile.c */
int ngxc_launcher_reconcile(void);

/* ngxc_launcher_instance.c */
int ngxc_launcher_instance_init(void);
void ngxc_launcher_instance_cleanup(void);
void ngxc_launcher_wake(const char *cls, const u_char *id, size_t id_len,
    const char *gen);
void ngxc_launcher_instance_reply(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, redisReply *reply);
void ngxc_launcher_instance_reap(void);
void ngxc_launcher_instance_stop_all(void);
void ngxc_launcher_instance_kill_all(void);


#endif /* NGXC_LAUNCHER_H */
