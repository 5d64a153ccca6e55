
/*
 * Instances: one process per object ID, from the wake request that asks for
 * it to the exit that ends it.  A wake is taken, the process started on a
 * free port and probed until it answers, then recorded ready; it is asked
 * to stop (SIGTERM, SIGKILL after the grace) when the registry finds it
 * idle, and its end is recorded when it is reaped.
 */


#include "ngxc_launcher.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* how often ready instances are looked at for the idle step */
#define NGXC_LAUNCHER_IDLE_TICK    0.25

/* how long a health answer may pause before it is taken as ended */
#define NGXC_LAUNCHER_PROBE_DRAIN  1.0

/* the variables the launcher adds to each instance's environment */
#define NGXC_LAUNCHER_OWN_ENV      4


static ngxc_launcher_instance_t *ngxc_launcher_instance_create(
    ngxc_launcher_class_t *cls, const u_char *id, size_t id_len,
    const char *gen);
static void ngxc_launcher_instance_release(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_over(ngxc_launcher_instance_t *inst);
static int ngxc_launcher_instance_eval(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, const char *arg, const char *arg2);
static void ngxc_launcher_instance_take_ms(ngxc_launcher_class_t *cls,
    char *buf, size_t size);
static void ngxc_launcher_instance_give_up(ngxc_launcher_instance_t *inst,
    const char *reason);
static void ngxc_launcher_instance_log(const char *step,
    ngxc_launcher_instance_t *inst, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ngxc_launcher_instance_fail(ngxc_launcher_instance_t *inst,
    const char *reason);
static void ngxc_launcher_instance_taken(ngxc_launcher_instance_t *inst,
    redisReply *reply);
static void ngxc_launcher_instance_adopt(ngxc_launcher_instance_t *inst,
    const char *gen);
static void ngxc_launcher_instance_adopted(ngxc_launcher_instance_t *inst,
    redisReply *reply);
static void ngxc_launcher_instance_start(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_run(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_index(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_indexed(ngxc_launcher_instance_t *inst);
static char *ngxc_launcher_instance_key(char *prefix,
    ngxc_launcher_instance_t *inst, size_t *len);
static void ngxc_launcher_instance_addressed(redisAsyncContext *ac, void *r,
    void *data);
static void ngxc_launcher_instance_ready_step(ngxc_launcher_instance_t *inst);
static int ngxc_launcher_instance_port(ngxc_launcher_class_t *cls);
static int ngxc_launcher_instance_bindable(ngxc_launcher_class_t *cls,
    int port);
static void ngxc_launcher_instance_sockaddr(ngxc_launcher_class_t *cls,
    int port, struct sockaddr_storage *ss);
static pid_t ngxc_launcher_instance_spawn(ngxc_launcher_instance_t *inst);
static char **ngxc_launcher_instance_env(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_child(ngxc_launcher_instance_t *inst,
    char **envp, pid_t parent) __attribute__((noreturn));
static void ngxc_launcher_instance_expired(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_probe(evutil_socket_t fd, short what, void *data);
static void ngxc_launcher_probe_connected(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_probe_read(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_probe_passed(ngxc_launcher_instance_t *inst);
static int ngxc_launcher_probe_ok(const char *line);
static void ngxc_launcher_probe_close(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_probe_retry(ngxc_launcher_instance_t *inst);
static void ngxc_launcher_instance_readied(ngxc_launcher_instance_t *inst,
    redisReply *reply);
static void ngxc_launcher_idle_tick(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_instance_idled(ngxc_launcher_instance_t *inst,
    redisReply *reply);
static void ngxc_launcher_instance_stop(ngxc_launcher_instance_t *inst,
    const char *why);
static void ngxc_launcher_instance_kill(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_instance_ended(ngxc_launcher_instance_t *inst,
    int status);


static struct event  *ngxc_launcher_idle_timer;


int
ngxc_launcher_instance_init(void)
{
    struct timeval  tv;

    ngxc_launcher_idle_timer = event_new(ngxc_launcher_cycle.base, -1,
                                         EV_PERSIST, ngxc_launcher_idle_tick,
                                         NULL);
    if (ngxc_launcher_idle_timer == NULL) {
        return -1;
    }

    tv = ngxc_launcher_timeval(NGXC_LAUNCHER_IDLE_TICK);

    return event_add(ngxc_launcher_idle_timer, &tv);
}


/* once the loop has ended: nothing may outlive the launcher */

void
ngxc_launcher_instance_cleanup(void)
{
    int                        i;
    ngxc_launcher_instance_t  *inst, *next;

    for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
        if (inst->pid != 0) {
            ngxc_launcher_instance_log("stop", inst, " pid=%d signal=KILL "
                                       "reason=\"launcher exits\"",
                                       (int) inst->pid);
            kill(-inst->pid, SIGKILL);
        }
    }

    for (inst = ngxc_launcher_cycle.instances; inst; inst = next) {
        next = inst->next;

        /* SIGKILL is not refused; the wait is bounded all the same */

        for (i = 0; inst->pid != 0 && i < 100; i++) {
            if (waitpid(inst->pid, NULL, WNOHANG) != 0) {
                break;
            }

            usleep(10000);
        }

        ngxc_launcher_probe_close(inst);
        event_free(inst->deadline);
        event_free(inst->probe_timer);
        event_free(inst->kill);
        free(inst->id);
        free(inst->addr);
        free(inst);
    }

    ngxc_launcher_cycle.instances = NULL;

    event_free(ngxc_launcher_idle_timer);
}


/* a wake request popped from ngxc:{wake}:<class> */

void
ngxc_launcher_wake(const char *name, const u_char *id, size_t id_len,
    const char *gen)
{
    char                       reason[64];
    ngxc_launcher_class_t     *cls;
    ngxc_launcher_instance_t  *inst;

    ngxc_launcher_log_step("wake", name, id, id_len, gen, "%s", "");

    cls = ngxc_launcher_conf_class(ngxc_launcher_cycle.conf, name);

    for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
        if (inst->cls != cls || inst->id_len != id_len
            || memcmp(inst->id, id, id_len) != 0)
        {
            continue;
        }

        /*
         * ready here, yet woken: even the same generation, since a
         * registry that lost its data counts generations from 1 again
         */

        if (inst->state == NGXC_LAUNCHER_READY && !inst->idle_sent
            && strlen(gen) < sizeof(inst->adopt))
        {
            ngxc_launcher_instance_adopt(inst, gen);
            return;
        }

        /* the same request twice: the take of the first decides */

        if (strcmp(inst->gen, gen) == 0) {
            ngxc_launcher_log_step("stale", name, id, id_len, gen,
                                   " reason=duplicate");
            return;
        }

        /*
         * A newer generation while a process of this ID still runs here,
         * starting, stopping or refused as ready: at most one process of
         * an ID at a time, so the wake waits until that one is reaped
         * (ngxc_launcher_instance_ended()). One that is still starting
         * is stopped now: the record has moved on, so it could never be
         * announced.
         */

        if (inst->pid != 0 && strlen(gen) < sizeof(inst->pending)
            && strtoull(gen, NULL, 10) > strtoull(inst->gen, NULL, 10))
        {
            if (inst->pending[0] == '\0'
                || strtoull(gen, NULL, 10)
                   > strtoull(inst->pending, NULL, 10))
            {
                snprintf(inst->pending, sizeof(inst->pending), "%s", gen);
            }

            ngxc_launcher_log_step("defer", name, id, id_len, gen,
                                   " pid=%d reason=\"gen=%s still runs\"",
                                   (int) inst->pid, inst->gen);

            if (inst->state == NGXC_LAUNCHER_STARTING) {
                inst->recorded = 1;
                ngxc_launcher_instance_stop(inst, "a newer generation was "
                                            "claimed");
            }

            return;
        }
    }

    if (cls == NULL) {
        snprintf(reason, sizeof(reason), "no such class");

    } else if (cls->running >= cls->max_instances) {
        snprintf(reason, sizeof(reason), "max_instances (%d) reached",
                 cls->max_instances);

    } else {
        inst = ngxc_launcher_instance_create(cls, id, id_len, gen);

        if (inst != NULL) {
            if (ngxc_launcher_instance_eval(NGXC_LAUNCHER_STEP_TAKE, inst,
                                            NULL, NULL)
                != 0)
            {
                ngxc_launcher_instance_over(inst);
                ngxc_launcher_instance_release(inst);
            }

            return;
        }

        snprintf(reason, sizeof(reason), "out of memory");
    }

    /* the record is still waking: a fail without an owner */

    ngxc_launcher_log_step("fail", name, id, id_len, gen, " reason=\"%s\"",
                           reason);

    (void) ngxc_launcher_registry_eval(NGXC_LAUNCHER_STEP_FAIL, NULL, name,
                                       id, id_len, gen, reason, NULL);
}


void
ngxc_launcher_instance_reply(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, redisReply *reply)
{
    if (reply != NULL && reply->type != REDIS_REPLY_INTEGER) {
        /* an error reply, logged already; the script answers integers */
        reply = NULL;
    }

    switch (step) {

    case NGXC_LAUNCHER_STEP_TAKE:
        ngxc_launcher_instance_taken(inst, reply);
        break;

    case NGXC_LAUNCHER_STEP_READY:
        ngxc_launcher_instance_readied(inst, reply);
        break;

    case NGXC_LAUNCHER_STEP_IDLE:
        ngxc_launcher_instance_idled(inst, reply);
        break;

    default:
        /* fail and exit: whatever the record is now, it is not ours */
        break;
    }

    ngxc_launcher_instance_release(inst);
}


/* SIGCHLD */

void
ngxc_launcher_instance_reap(void)
{
    int                        status;
    pid_t                      pid;
    ngxc_launcher_instance_t  *inst;

    for ( ;; ) {
        pid = waitpid(-1, &status, WNOHANG);

        if (pid <= 0) {
            return;
        }

        for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
            if (inst->pid == pid) {
                ngxc_launcher_instance_ended(inst, status);
                break;
            }
        }
    }
}


/* SIGTERM or SIGINT: stop every instance; each is recorded as it ends */

void
ngxc_launcher_instance_stop_all(void)
{
    ngxc_launcher_instance_t  *inst;

    event_del(ngxc_launcher_idle_timer);

    for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
        if (inst->pid == 0) {
            continue;
        }

        if (inst->stop_reason == NULL) {
            inst->stop_reason = "launcher stopped";
        }

        ngxc_launcher_instance_stop(inst, "launcher stopped");
    }
}


/* the second SIGTERM or SIGINT: no more waiting */

void
ngxc_launcher_instance_kill_all(void)
{
    ngxc_launcher_instance_t  *inst;

    for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
        if (inst->pid != 0) {
            ngxc_launcher_instance_log("stop", inst, " pid=%d signal=KILL "
                                       "reason=\"second signal\"",
                                       (int) inst->pid);
            kill(-inst->pid, SIGKILL);
        }
    }
}


static ngxc_launcher_instance_t *
ngxc_launcher_instance_create(ngxc_launcher_class_t *cls, const u_char *id,
    size_t id_len, const char *gen)
{
    struct event_base         *base;
    ngxc_launcher_instance_t  *inst;

    base = ngxc_launcher_cycle.base;

    inst = calloc(1, sizeof(ngxc_launcher_instance_t));
    if (inst == NULL) {
        return NULL;
    }

    inst->id = malloc(id_len + 1);
    inst->deadline = evtimer_new(base, ngxc_launcher_instance_expired, inst);
    inst->probe_timer = evtimer_new(base, ngxc_launcher_probe, inst);
    inst->kill = evtimer_new(base, ngxc_launcher_instance_kill, inst);

    if (inst->id == NULL || inst->deadline == NULL
        || inst->probe_timer == NULL || inst->kill == NULL)
    {
        if (inst->deadline) {
            event_free(inst->deadline);
        }

        if (inst->probe_timer) {
            event_free(inst->probe_timer);
        }

        if (inst->kill) {
            event_free(inst->kill);
        }

        free(inst->id);
        free(inst);

        return NULL;
    }

    memcpy(inst->id, id, id_len);
    inst->id[id_len] = '\0';
    inst->id_len = id_len;

    snprintf(inst->gen, sizeof(inst->gen), "%s", gen);

    inst->cls = cls;
    inst->state = NGXC_LAUNCHER_TAKING;
    inst->probe_fd = -1;

    /* the slot is held from the take on, so a burst cannot overshoot */

    inst->slot = 1;
    cls->running++;

    inst->next = ngxc_launcher_cycle.instances;

    if (inst->next != NULL) {
        inst->next->prev = inst;
    }

    ngxc_launcher_cycle.instances = inst;

    return inst;
}


/* no process and nothing more to run: the slot is free */

static void
ngxc_launcher_instance_over(ngxc_launcher_instance_t *inst)
{
    inst->state = NGXC_LAUNCHER_DONE;

    if (inst->slot) {
        inst->slot = 0;
        inst->cls->running--;
    }
}


/* frees a done instance once no script of its is outstanding */

static void
ngxc_launcher_instance_release(ngxc_launcher_instance_t *inst)
{
    if (inst->state != NGXC_LAUNCHER_DONE || inst->pid != 0
        || inst->calls != 0)
    {
        return;
    }

    if (inst->prev != NULL) {
        inst->prev->next = inst->next;

    } else {
        ngxc_launcher_cycle.instances = inst->next;
    }

    if (inst->next != NULL) {
        inst->next->prev = inst->prev;
    }

    ngxc_launcher_probe_close(inst);
    event_free(inst->deadline);
    event_free(inst->probe_timer);
    event_free(inst->kill);
    free(inst->id);
    free(inst->addr);
    free(inst);

    ngxc_launcher_check_done();
}


static int
ngxc_launcher_instance_eval(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, const char *arg, const char *arg2)
{
    char  ms[32], ms2[32];

    if (step == NGXC_LAUNCHER_STEP_TAKE) {
        ngxc_launcher_instance_take_ms(inst->cls, ms, sizeof(ms));
        arg = ms;

    } else if (step == NGXC_LAUNCHER_STEP_IDLE) {
        snprintf(ms, sizeof(ms), "%.0f", inst->cls->idle_timeout * 1000);
        snprintf(ms2, sizeof(ms2), "%.0f",
                 (inst->cls->stop_grace + NGXC_LAUNCHER_STOP_SLACK) * 1000);
        arg = ms;
        arg2 = ms2;
    }

    return ngxc_launcher_registry_eval(step, inst, inst->cls->name,
                                       inst->id, inst->id_len, inst->gen,
                                       arg, arg2);
}


/*
 * how long a taken record stays "starting": the start, and the stop of a
 * process that missed start_timeout, whose failure is recorded only once
 * it is gone; the launcher's own timer starts after the take, so the
 * registry's deadline is always the later one
 */

static void
ngxc_launcher_instance_take_ms(ngxc_launcher_class_t *cls, char *buf,
    size_t size)
{
    snprintf(buf, size, "%.0f", (cls->start_timeout + cls->stop_grace
                                 + NGXC_LAUNCHER_STOP_SLACK) * 1000);
}


static void
ngxc_launcher_instance_log(const char *step, ngxc_launcher_instance_t *inst,
    const char *fmt, ...)
{
    char     extra[1024];
    va_list  args;

    va_start(args, fmt);
    vsnprintf(extra, sizeof(extra), fmt, args);
    va_end(args);

    ngxc_launcher_log_step(step, inst->cls->name, inst->id, inst->id_len,
                           inst->gen, "%s", extra);
}


/* records the failure; a process, if any, is stopped by the caller */

static void
ngxc_launcher_instance_fail(ngxc_launcher_instance_t *inst,
    const char *reason)
{
    char  q[256];

    ngxc_launcher_instance_log("fail", inst, " reason=%s",
                               ngxc_launcher_quote(q, sizeof(q),
                                                   (u_char *) reason,
                                                   strlen(reason)));

    inst->recorded = 1;

    (void) ngxc_launcher_instance_eval(NGXC_LAUNCHER_STEP_FAIL, inst, reason,
                                       NULL);
}


static void
ngxc_launcher_instance_taken(ngxc_launcher_instance_t *inst,
    redisReply *reply)
{
    if (inst->adopt[0] != '\0') {
        ngxc_launcher_instance_adopted(inst, reply);
        return;
    }

    if (reply == NULL) {
        /*
         * whether the take ran is unknown; if it did, the claim lapses at
         * its deadline and a gateway claims again
         */

        ngxc_launcher_instance_log("stale", inst,
                                   " reason=\"take not answered\"");
        ngxc_launcher_instance_over(inst);
        return;
    }

    if (reply->integer != 1) {
        ngxc_launcher_instance_log("stale", inst, "%s", "");
        ngxc_launcher_instance_over(inst);
        return;
    }

    ngxc_launcher_instance_log("take", inst, "%s", "");

    if (ngxc_launcher_cycle.stopping) {
        ngxc_launcher_instance_fail(inst, "launcher stopped");
        ngxc_launcher_instance_over(inst);
        return;
    }

    ngxc_launcher_instance_start(inst);
}


/*
 * A wake of a newer generation for an ID whose process runs here, ready:
 * the registry lost the record (a Redis restart without persistence, a
 * flush) or a gateway claimed it anew. The process is alive, so it is
 * taken under the new generation and announced ready again, rather than a
 * second one started beside it. No idle step runs meanwhile: it would
 * find the record moved on and stop the process.
 */

static void
ngxc_launcher_instance_adopt(ngxc_launcher_instance_t *inst, const char *gen)
{
    char  ms[32];

    snprintf(inst->adopt, sizeof(inst->adopt), "%s", gen);
    ngxc_launcher_instance_take_ms(inst->cls, ms, sizeof(ms));

    inst->state = NGXC_LAUNCHER_READYING;

    if (ngxc_launcher_registry_eval(NGXC_LAUNCHER_STEP_TAKE, inst,
                                    inst->cls->name, inst->id, inst->id_len,
                                    inst->adopt, ms, NULL)
        != 0)
    {
        inst->adopt[0] = '\0';
        inst->state = NGXC_LAUNCHER_READY;
    }
}


static void
ngxc_launcher_instance_adopted(ngxc_launcher_instance_t *inst,
    redisReply *reply)
{
    if (reply == NULL || reply->integer != 1 || inst->pid == 0
        || inst->state != NGXC_LAUNCHER_READYING)
    {
        ngxc_launcher_log_step("stale", inst->cls->name, inst->id,
                               inst->id_len, inst->adopt, "%s", "");
        inst->adopt[0] = '\0';

        if (inst->state == NGXC_LAUNCHER_READYING) {
            inst->state = NGXC_LAUNCHER_READY;
        }

        return;
    }

    memcpy(inst->gen, inst->adopt, sizeof(inst->gen));
    inst->adopt[0] = '\0';

    ngxc_launcher_instance_log("adopt", inst, " pid=%d port=%d",
                               (int) inst->pid, inst->port);

    ngxc_launcher_instance_index(inst);
}


static void
ngxc_launcher_instance_start(ngxc_launcher_instance_t *inst)
{
    int                     n, port;
    char                    reason[128];
    ngxc_launcher_class_t  *cls;

    cls = inst->cls;

    port = ngxc_launcher_instance_port(cls);

    if (port == 0) {
        snprintf(reason, sizeof(reason), "no free port in %d-%d",
                 cls->port_low, cls->port_high);
        ngxc_launcher_instance_fail(inst, reason);
        ngxc_launcher_instance_over(inst);
        return;
    }

    n = asprintf(&inst->addr, strchr(cls->host, ':') ? "[%s]:%d" : "%s:%d",
                 cls->host, port);

    if (n < 0) {
        inst->addr = NULL;
        ngxc_launcher_instance_fail(inst, "out of memory");
        ngxc_launcher_instance_over(inst);
        return;
    }

    inst->port = port;
    inst->state = NGXC_LAUNCHER_PLACING;

    ngxc_launcher_instance_index(inst);
}


/*
 * The address index is claimed before the process starts (index says
 * why): a gateway that still caches an older record's address at this
 * port hears that it is retired before anything listens there again.
 */

static void
ngxc_launcher_instance_run(ngxc_launcher_instance_t *inst)
{
    char                    reason[128];
    pid_t                   pid;
    struct timeval          tv;
    ngxc_launcher_class_t  *cls;

    cls = inst->cls;

    if (ngxc_launcher_cycle.stopping) {
        inst->port = 0;
        ngxc_launcher_instance_fail(inst, "launcher stopped");
        ngxc_launcher_instance_over(inst);
        return;
    }

    pid = ngxc_launcher_instance_spawn(inst);

    if (pid < 0) {
        snprintf(reason, sizeof(reason), "cannot start: %s",
                 strerror(errno));
        inst->port = 0;
        ngxc_launcher_instance_fail(inst, reason);
        ngxc_launcher_instance_over(inst);
        return;
    }

    inst->pid = pid;
    inst->state = NGXC_LAUNCHER_STARTING;

    ngxc_launcher_instance_log("start", inst, " pid=%d port=%d", (int) pid,
                               inst->port);

    tv = ngxc_launcher_timeval(cls->start_timeout);
    evtimer_add(inst->deadline, &tv);

    tv = ngxc_launcher_timeval(cls->ready_interval);
    evtimer_add(inst->probe_timer, &tv);
}


/*
 * a port of the class's range that no instance of ours holds and that
 * can be bound now; the search goes round the range, so that a port just
 * freed is the last to be used again
 */

static int
ngxc_launcher_instance_port(ngxc_launcher_class_t *cls)
{
    int                        i, range, port;
    ngxc_launcher_instance_t  *inst;

    range = cls->port_high - cls->port_low + 1;

    for (i = 0; i < range; i++) {
        port = cls->port_low + (cls->port_next - cls->port_low + i) % range;

        for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
            if (inst->port == port) {
                break;
            }
        }

        if (inst != NULL || !ngxc_launcher_instance_bindable(cls, port)) {
            continue;
        }

        cls->port_next = (port == cls->port_high) ? cls->port_low : port + 1;

        return port;
    }

    return 0;
}


/*
 * SO_REUSEADDR as servers set it: a port left in TIME_WAIT is free, one
 * that something listens on is not
 */

static int
ngxc_launcher_instance_bindable(ngxc_launcher_class_t *cls, int port)
{
    int                      fd, rc, on;
    struct sockaddr_storage  ss;

    fd = socket(cls->sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return 0;
    }

    on = 1;
    (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(int));

    ngxc_launcher_instance_sockaddr(cls, port, &ss);

    rc = bind(fd, (struct sockaddr *) &ss, cls->socklen);

    close(fd);

    return rc == 0;
}


static void
ngxc_launcher_instance_sockaddr(ngxc_launcher_class_t *cls, int port,
    struct sockaddr_storage *ss)
{
    memcpy(ss, &cls->sockaddr, sizeof(struct sockaddr_storage));

    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *) ss)->sin6_port = htons(port);

    } else {
        ((struct sockaddr_in *) ss)->sin_port = htons(port);
    }
}


static pid_t
ngxc_launcher_instance_spawn(ngxc_launcher_instance_t *inst)
{
    int        i, err;
    char     **envp;
    pid_t      pid, parent;
    sigset_t   all, old;

    envp = ngxc_launcher_instance_env(inst);
    if (envp == NULL) {
        return -1;
    }

    /*
     * signals stay blocked until the child has put its dispositions back,
     * so that none reaches libevent's handlers in the child
     */

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);

    parent = getpid();
    pid = fork();

    if (pid == 0) {
        ngxc_launcher_instance_child(inst, envp, parent);
    }

    err = errno;

    sigprocmask(SIG_SETMASK, &old, NULL);

    for (i = 0; i < NGXC_LAUNCHER_OWN_ENV; i++) {
        free(envp[i]);
    }

    free(envp);

    if (pid < 0) {
        errno = err;
        return -1;
    }

    /*
     * the child does the same; whichever runs first makes the group exist
     * before a kill(-pid) can be sent to it
     */

    (void) setpgid(pid, pid);

    return pid;
}


/*
 * the launcher's environment, the class's "env" over it, and ours over
 * both; ours come first in the array, which owns only them
 */

static char **
ngxc_launcher_instance_env(ngxc_launcher_instance_t *inst)
{
    int                     rc;
    char                  **envp, **e;
    size_t                  i, j, n, len;
    const char             *eq;
    ngxc_launcher_class_t  *cls;

    cls = inst->cls;

    for (n = 0; environ[n] != NULL; n++) {
        /* void */
    }

    envp = calloc(NGXC_LAUNCHER_OWN_ENV + cls->nenv + n + 1, sizeof(char *));
    if (envp == NULL) {
        return NULL;
    }

    rc = asprintf(&envp[0], "PORT=%d", inst->port);
    envp[0] = (rc < 0) ? NULL : envp[0];
    rc = asprintf(&envp[1], "CONTAINER_ID=%s", (char *) inst->id);
    envp[1] = (rc < 0) ? NULL : envp[1];
    rc = asprintf(&envp[2], "CONTAINER_CLASS=%s", cls->name);
    envp[2] = (rc < 0) ? NULL : envp[2];
    rc = asprintf(&envp[3], "CONTAINER_GEN=%s", inst->gen);
    envp[3] = (rc < 0) ? NULL : envp[3];

    for (i = 0; i < NGXC_LAUNCHER_OWN_ENV; i++) {
        if (envp[i] == NULL) {
            for (j = 0; j < NGXC_LAUNCHER_OWN_ENV; j++) {
                free(envp[j]);
            }

            free(envp);
            errno = ENOMEM;

            return NULL;
        }
    }

    e = envp + NGXC_LAUNCHER_OWN_ENV;

    for (j = 0; j < cls->nenv; j++) {
        eq = strchr(cls->env[j], '=');
        len = eq - cls->env[j] + 1;

        for (i = 0; i < NGXC_LAUNCHER_OWN_ENV; i++) {
            if (strncmp(envp[i], cls->env[j], len) == 0) {
                break;
            }
        }

        if (i == NGXC_LAUNCHER_OWN_ENV) {
            *e++ = cls->env[j];
        }
    }

    for (n = 0; environ[n] != NULL; n++) {
        eq = strchr(environ[n], '=');

        if (eq == NULL) {
            continue;
        }

        len = eq - environ[n] + 1;

        for (i = 0; i < (size_t) (e - envp); i++) {
            if (strncmp(envp[i], environ[n], len) == 0) {
                break;
            }
        }

        if (i == (size_t) (e - envp)) {
            *e++ = environ[n];
        }
    }

    *e = NULL;

    return envp;
}


/* between fork() and exec: no shell, and the ID only in the environment */

static void
ngxc_launcher_instance_child(ngxc_launcher_instance_t *inst, char **envp,
    pid_t parent)
{
    int        fd, signo;
    char       q[256];
    sigset_t   none;

    (void) setpgid(0, 0);

    for (signo = 1; signo < NSIG; signo++) {
        (void) signal(signo, SIG_DFL);
    }

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* a launcher killed by SIGKILL takes its children along */

    (void) prctl(PR_SET_PDEATHSIG, SIGKILL);

    if (getppid() != parent) {
        _exit(127);
    }

    fd = open("/dev/null", O_RDONLY);

    if (fd > STDIN_FILENO) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }

    /* the registry's sockets and libevent's are not the instance's */

    if (close_range(3, ~0U, 0) != 0) {
        for (fd = 3; fd < 1024; fd++) {
            (void) close(fd);
        }
    }

    if (chdir(inst->cls->dir) != 0) {
        ngxc_launcher_instance_log("start", inst, " pid=%d error=%s",
                                   (int) getpid(),
                                   ngxc_launcher_quote(q, sizeof(q),
                                       (u_char *) strerror(errno),
                                       strlen(strerror(errno))));
        _exit(127);
    }

    environ = envp;

    execvp(inst->cls->argv[0], inst->cls->argv);

    ngxc_launcher_instance_log("start", inst, " pid=%d error=\"exec %s: %s\"",
                               (int) getpid(), inst->cls->argv[0],
                               strerror(errno));
    _exit(127);
}


/* start_timeout passed before the instance answered */

static void
ngxc_launcher_instance_expired(evutil_socket_t fd, short what, void *data)
{
    char                       reason[64];
    ngxc_launcher_instance_t  *inst;

    (void) fd;
    (void) what;

    inst = data;

    if (inst->state != NGXC_LAUNCHER_STARTING) {
        return;
    }

    snprintf(reason, sizeof(reason), "not ready after %gs",
             inst->cls->start_timeout);

    ngxc_launcher_instance_give_up(inst, reason);
}


/*
 * A started process that will not be ready: it is stopped, and the fail
 * step runs once it is reaped (ngxc_launcher_instance_ended()). Failed
 * at once, the record could be claimed again and a second process of the
 * ID started while this one still runs out its stop_grace; the take's
 * deadline holds gateways off until then.
 */

static void
ngxc_launcher_instance_give_up(ngxc_launcher_instance_t *inst,
    const char *reason)
{
    snprintf(inst->given_up, sizeof(inst->given_up), "%s", reason);
    inst->stop_reason = inst->given_up;

    ngxc_launcher_instance_stop(inst, reason);
}


/*
 * one readiness probe: connect to the port and, with a health path, ask
 * for it; a failed probe is tried again after ready.interval
 */

static void
ngxc_launcher_probe(evutil_socket_t unused, short what, void *data)
{
    int                        fd;
    struct sockaddr_storage    ss;
    ngxc_launcher_instance_t  *inst;

    (void) unused;
    (void) what;

    inst = data;

    if (inst->state != NGXC_LAUNCHER_STARTING) {
        return;
    }

    fd = socket(inst->cls->sockaddr.ss_family,
                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngxc_launcher_probe_retry(inst);
        return;
    }

    inst->probe_fd = fd;
    inst->probe_len = 0;
    inst->probe_status = 0;

    ngxc_launcher_instance_sockaddr(inst->cls, inst->port, &ss);

    if (connect(fd, (struct sockaddr *) &ss, inst->cls->socklen) != 0
        && errno != EINPROGRESS)
    {
        ngxc_launcher_probe_retry(inst);
        return;
    }

    inst->probe_io = event_new(ngxc_launcher_cycle.base, fd,
                               EV_WRITE | EV_PERSIST,
                               ngxc_launcher_probe_connected, inst);

    if (inst->probe_io == NULL || event_add(inst->probe_io, NULL) != 0) {
        ngxc_launcher_probe_retry(inst);
    }
}


/* writable: the connect is over, one way or the other */

static void
ngxc_launcher_probe_connected(evutil_socket_t fd, short what, void *data)
{
    int                        err, n;
    char                       req[1024];
    socklen_t                  size;
    ngxc_launcher_class_t     *cls;
    ngxc_launcher_instance_t  *inst;

    (void) what;

    inst = data;
    cls = inst->cls;

    err = 0;
    size = sizeof(int);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0 || err != 0) {
        ngxc_launcher_probe_retry(inst);
        return;
    }

    if (cls->ready_path == NULL) {
        ngxc_launcher_probe_close(inst);
        ngxc_launcher_probe_passed(inst);
        return;
    }

    n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n"
                 "Connection: close\r\n\r\n", cls->ready_path, inst->addr);

    /* a few hundred bytes into an empty socket buffer: one send */

    if (n < 0 || (size_t) n >= sizeof(req)
        || send(fd, req, n, MSG_NOSIGNAL) != n)
    {
        ngxc_launcher_probe_retry(inst);
        return;
    }

    event_free(inst->probe_io);

    inst->probe_io = event_new(ngxc_launcher_cycle.base, fd,
                               EV_READ | EV_PERSIST, ngxc_launcher_probe_read,
                               inst);

    if (inst->probe_io == NULL || event_add(inst->probe_io, NULL) != 0) {
        ngxc_launcher_probe_retry(inst);
    }
}


static void
ngxc_launcher_probe_read(evutil_socket_t fd, short what, void *data)
{
    char                       buf[4096];
    ssize_t                    n;
    struct timeval             tv;
    ngxc_launcher_instance_t  *inst;

    inst = data;

    if (what & EV_TIMEOUT) {
        /* the answer is known; the server just does not close */
        n = 0;

    } else if (inst->probe_status == 0) {

        /* only the status line matters */

        n = recv(fd, inst->probe_buf + inst->probe_len,
                 sizeof(inst->probe_buf) - 1 - inst->probe_len, 0);

        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                ngxc_launcher_probe_retry(inst);
            }

            return;
        }

        inst->probe_len += n;
        inst->probe_buf[inst->probe_len] = '\0';

        if (n > 0 && inst->probe_len < sizeof(inst->probe_buf) - 1
            && strchr(inst->probe_buf, '\n') == NULL)
        {
            return;
        }

        inst->probe_status = ngxc_launcher_probe_ok(inst->probe_buf) ? 1 : -1;

        tv = ngxc_launcher_timeval(NGXC_LAUNCHER_PROBE_DRAIN);
        (void) event_add(inst->probe_io, &tv);

    } else {
        n = 1;
    }

    /*
     * the rest is read to the end (HTTP/1.0: the server closes), up to a
     * limit or a pause: closing on unread data would reset the connection
     * under the instance while it still writes
     */

    while (n > 0 && inst->probe_len < 65536) {
        n = recv(fd, buf, sizeof(buf), 0);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        inst->probe_len += (n > 0) ? n : 0;
    }

    if (inst->probe_status != 1) {
        ngxc_launcher_probe_retry(inst);
        return;
    }

    ngxc_launcher_probe_close(inst);
    ngxc_launcher_probe_passed(inst);
}


/* the instance answers: tell the gateways */

static void
ngxc_launcher_probe_passed(ngxc_launcher_instance_t *inst)
{
    evtimer_del(inst->deadline);

    inst->state = NGXC_LAUNCHER_READYING;

    ngxc_launcher_instance_index(inst);
}


/*
 * Sets ngxc:addr:{<addr>} to this record (ngxc_launcher_scripts.c says
 * why), then goes on with the start (PLACING) or the ready step
 * (READYING) in the reply: the index is set again before the ready step,
 * since the instance may be one taken again under a newer generation, or
 * another launcher may have set it since. When the index cannot be
 * written now, it goes on all the same: the index is a guard, not a
 * condition.
 */

static void
ngxc_launcher_instance_index(ngxc_launcher_instance_t *inst)
{
    char        *key, *rec;
    size_t       argvlen[5];
    const char  *argv[5];

    key = NULL;
    rec = NULL;

    if (asprintf(&key, NGXC_LAUNCHER_ADDR_PREFIX "%s}", inst->addr) < 0
        || asprintf(&rec, NGXC_LAUNCHER_INST_PREFIX "%s:", inst->cls->name)
           < 0)
    {
        goto ready;
    }

    /* the record key holds the ID's bytes as they are: built with %b */

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = ngxc_launcher_script_addr;
    argvlen[1] = strlen(ngxc_launcher_script_addr);
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = key;
    argvlen[3] = strlen(key);

    rec = ngxc_launcher_instance_key(rec, inst, &argvlen[4]);
    if (rec == NULL) {
        goto ready;
    }

    argv[4] = rec;

    if (ngxc_launcher_registry_command(ngxc_launcher_instance_addressed,
                                       inst, 5, argv, argvlen)
        == 0)
    {
        inst->calls++;
        free(key);
        free(rec);
        return;
    }

ready:

    free(key);
    free(rec);

    ngxc_launcher_instance_indexed(inst);
}


static void
ngxc_launcher_instance_indexed(ngxc_launcher_instance_t *inst)
{
    if (inst->state == NGXC_LAUNCHER_PLACING) {
        ngxc_launcher_instance_run(inst);
        return;
    }

    if (inst->state == NGXC_LAUNCHER_READYING && inst->pid != 0
        && !inst->recorded)
    {
        ngxc_launcher_instance_ready_step(inst);
    }
}


/* "ngxc:inst:{<class>:" + the ID's bytes + "}" */

static char *
ngxc_launcher_instance_key(char *prefix, ngxc_launcher_instance_t *inst,
    size_t *len)
{
    char    *key;
    size_t   n;

    n = strlen(prefix);

    key = realloc(prefix, n + inst->id_len + 2);
    if (key == NULL) {
        free(prefix);
        return NULL;
    }

    memcpy(key + n, inst->id, inst->id_len);
    key[n + inst->id_len] = '}';
    key[n + inst->id_len + 1] = '\0';

    *len = n + inst->id_len + 1;

    return key;
}


static void
ngxc_launcher_instance_addressed(redisAsyncContext *ac, void *r, void *data)
{
    char                       reason[300], q[1024];
    size_t                     argvlen[7];
    redisReply                *reply;
    const char                *argv[7];
    ngxc_launcher_instance_t  *inst;

    if (ngxc_launcher_cycle.exiting) {
        return;
    }

    reply = r;
    inst = data;
    inst->calls--;

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && reply->len > 0)
    {
        /* the address was another record's: retire it, if it is still */

        ngxc_launcher_instance_log("forget", inst, " addr=%s old=%s",
                                   inst->addr,
                                   ngxc_launcher_quote(q, sizeof(q),
                                                       (u_char *) reply->str,
                                                       reply->len));

        snprintf(reason, sizeof(reason), "address %s reused", inst->addr);

        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = ngxc_launcher_script_forget;
        argvlen[1] = strlen(ngxc_launcher_script_forget);
        argv[2] = "1";
        argvlen[2] = 1;
        argv[3] = reply->str;
        argvlen[3] = reply->len;
        argv[4] = inst->addr;
        argvlen[4] = strlen(inst->addr);
        argv[5] = reason;
        argvlen[5] = strlen(reason);
        argv[6] = ngxc_launcher_cycle.channel;
        argvlen[6] = strlen(ngxc_launcher_cycle.channel);

        (void) ngxc_launcher_registry_command(NULL, NULL, 7, argv, argvlen);
    }

    ngxc_launcher_instance_indexed(inst);
    ngxc_launcher_instance_release(inst);
}


static void
ngxc_launcher_instance_ready_step(ngxc_launcher_instance_t *inst)
{
    char  pid[NGXC_LAUNCHER_GEN_MAX];

    snprintf(pid, sizeof(pid), "%d", (int) inst->pid);

    if (ngxc_launcher_instance_eval(NGXC_LAUNCHER_STEP_READY, inst,
                                    inst->addr, pid)
        != 0)
    {
        ngxc_launcher_instance_give_up(inst, "out of memory");
    }
}


/* "HTTP/1.1 204 No Content": 2xx */

static int
ngxc_launcher_probe_ok(const char *line)
{
    const char  *p;

    if (strncmp(line, "HTTP/", 5) != 0) {
        return 0;
    }

    p = strchr(line, ' ');

    return p != NULL && p[1] == '2' && isdigit((u_char) p[2])
           && isdigit((u_char) p[3])
           && (p[4] == ' ' || p[4] == '\r' || p[4] == '\n');
}


static void
ngxc_launcher_probe_close(ngxc_launcher_instance_t *inst)
{
    if (inst->probe_io != NULL) {
        event_free(inst->probe_io);
        inst->probe_io = NULL;
    }

    if (inst->probe_fd != -1) {
        close(inst->probe_fd);
        inst->probe_fd = -1;
    }
}


static void
ngxc_launcher_probe_retry(ngxc_launcher_instance_t *inst)
{
    struct timeval  tv;

    ngxc_launcher_probe_close(inst);

    tv = ngxc_launcher_timeval(inst->cls->ready_interval);
    evtimer_add(inst->probe_timer, &tv);
}


static void
ngxc_launcher_instance_readied(ngxc_launcher_instance_t *inst,
    redisReply *reply)
{
    if (inst->pid == 0 || inst->recorded) {
        /* it ended meanwhile, and its end is recorded after this ready */
        return;
    }

    if (reply == NULL) {
        ngxc_launcher_instance_give_up(inst, "ready step failed");
        return;
    }

    if (reply->integer != 1) {
        /* the record moved on: a gateway no longer waits for this one */
        inst->recorded = 1;
        ngxc_launcher_instance_stop(inst, "lost claim");
        return;
    }

    inst->ready = 1;

    ngxc_launcher_instance_log("ready", inst, " pid=%d port=%d addr=%s",
                               (int) inst->pid, inst->port, inst->addr);

    if (inst->state == NGXC_LAUNCHER_READYING) {
        inst->state = NGXC_LAUNCHER_READY;
        inst->idle_next = ngxc_launcher_msec()
                          + (int64_t) (inst->cls->idle_timeout * 1000);
    }
}


/*
 * the idle step runs for an instance when it could be idle by our count:
 * the script answers how long is left when a gateway touched it since
 */

static void
ngxc_launcher_idle_tick(evutil_socket_t fd, short what, void *data)
{
    int64_t                    now;
    ngxc_launcher_instance_t  *inst;

    (void) fd;
    (void) what;
    (void) data;

    if (!ngxc_launcher_registry_connected()) {
        return;
    }

    now = ngxc_launcher_msec();

    for (inst = ngxc_launcher_cycle.instances; inst; inst = inst->next) {
        if (inst->state != NGXC_LAUNCHER_READY || inst->idle_sent
            || now < inst->idle_next)
        {
            continue;
        }

        if (ngxc_launcher_instance_eval(NGXC_LAUNCHER_STEP_IDLE, inst, NULL,
                                        NULL)
            == 0)
        {
            inst->idle_sent = 1;
        }
    }
}


static void
ngxc_launcher_instance_idled(ngxc_launcher_instance_t *inst,
    redisReply *reply)
{
    inst->idle_sent = 0;

    if (inst->state != NGXC_LAUNCHER_READY) {
        return;
    }

    if (reply == NULL) {
        inst->idle_next = ngxc_launcher_msec() + 1000;
        return;
    }

    if (reply->integer > 0) {
        inst->idle_next = ngxc_launcher_msec() + reply->integer;

        if (inst->pending[0] != '\0') {
            /* a wake came while the idle step ran: it is still alive */
            ngxc_launcher_instance_adopt(inst, inst->pending);
            inst->pending[0] = '\0';
        }

        return;
    }

    if (reply->integer < 0) {
        /* a flushed or restarted registry, say: no gateway can reach it */
        inst->recorded = 1;
        ngxc_launcher_instance_stop(inst, "record moved on");
        return;
    }

    ngxc_launcher_instance_log("idle", inst, " pid=%d port=%d",
                               (int) inst->pid, inst->port);

    inst->stop_reason = "idle";
    ngxc_launcher_instance_stop(inst, "idle");
}


/* SIGTERM to the process group, SIGKILL after the class's grace */

static void
ngxc_launcher_instance_stop(ngxc_launcher_instance_t *inst, const char *why)
{
    char            q[256];
    struct timeval  tv;

    if (inst->pid == 0 || inst->state == NGXC_LAUNCHER_STOPPING) {
        return;
    }

    evtimer_del(inst->deadline);
    evtimer_del(inst->probe_timer);
    ngxc_launcher_probe_close(inst);

    inst->state = NGXC_LAUNCHER_STOPPING;

    ngxc_launcher_instance_log("stop", inst, " pid=%d port=%d signal=TERM "
                               "reason=%s", (int) inst->pid, inst->port,
                               ngxc_launcher_quote(q, sizeof(q),
                                                   (u_char *) why,
                                                   strlen(why)));

    (void) kill(-inst->pid, SIGTERM);

    tv = ngxc_launcher_timeval(inst->cls->stop_grace);
    evtimer_add(inst->kill, &tv);
}


static void
ngxc_launcher_instance_kill(evutil_socket_t fd, short what, void *data)
{
    ngxc_launcher_instance_t  *inst;

    (void) fd;
    (void) what;

    inst = data;

    if (inst->pid == 0) {
        return;
    }

    ngxc_launcher_instance_log("stop", inst, " pid=%d port=%d signal=KILL "
                               "reason=\"stop_grace (%gs) passed\"",
                               (int) inst->pid, inst->port,
                               inst->cls->stop_grace);

    (void) kill(-inst->pid, SIGKILL);
}


/* the process was reaped: record its end unless that is done already */

static void
ngxc_launcher_instance_ended(ngxc_launcher_instance_t *inst, int status)
{
    char   how[64], reason[160], qhow[96], qreason[192];
    pid_t  pid;

    if (WIFEXITED(status)) {
        snprintf(how, sizeof(how), "exited with status %d",
                 WEXITSTATUS(status));

    } else {
        snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
    }

    evtimer_del(inst->deadline);
    evtimer_del(inst->probe_timer);
    evtimer_del(inst->kill);
    ngxc_launcher_probe_close(inst);

    pid = inst->pid;

    /* what it left behind in its group goes with it */

    (void) kill(-pid, SIGKILL);

    if (inst->stop_reason != NULL) {
        snprintf(reason, sizeof(reason), "%s", inst->stop_reason);

    } else {
        snprintf(reason, sizeof(reason), "%s%s", how,
                 inst->ready ? "" : " before ready");
    }

    ngxc_launcher_quote(qhow, sizeof(qhow), (u_char *) how, strlen(how));
    ngxc_launcher_quote(qreason, sizeof(qreason), (u_char *) reason,
                        strlen(reason));

    if (inst->recorded) {
        ngxc_launcher_instance_log("exit", inst, " pid=%d port=%d status=%s",
                                   (int) pid, inst->port, qhow);

    } else if (inst->ready) {
        ngxc_launcher_instance_log("exit", inst, " pid=%d port=%d status=%s "
                                   "reason=%s", (int) pid, inst->port, qhow,
                                   qreason);

        inst->recorded = 1;

        (void) ngxc_launcher_instance_eval(NGXC_LAUNCHER_STEP_EXIT, inst,
                                           reason, NULL);

    } else {

        /*
         * an instance that was never ready ends failed, not stopped, so
         * that the gateways holding requests for it give up at once
         */

        ngxc_launcher_instance_log("exit", inst, " pid=%d port=%d status=%s",
                                   (int) pid, inst->port, qhow);

        ngxc_launcher_instance_fail(inst, reason);
    }

    inst->pid = 0;
    inst->port = 0;

    ngxc_launcher_instance_over(inst);

    /*
     * a wake that waited for this process to end (ngxc_launcher_wake()),
     * now that its slot is free; the wake copies what it needs of inst
     */

    if (inst->pending[0] != '\0') {
        ngxc_launcher_wake(inst->cls->name, inst->id, inst->id_len,
                           inst->pending);
        inst->pending[0] = '\0';
    }

    ngxc_launcher_instance_release(inst);
}
