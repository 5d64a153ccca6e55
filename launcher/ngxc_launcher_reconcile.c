
/*
 * At start, before the first wake is taken: records left live ("starting",
 * "ready", "stopping") by an earlier launcher of this host that is gone
 * (killed, crashed) are recorded as stopped. Their processes died with it
 * (PR_SET_PDEATHSIG), and a record left "ready" would send its ID to a
 * port this launcher may now give to another ID. What those processes
 * started themselves did not die with them: it is found by its
 * environment and killed first, while the record still keeps any other
 * instance of the ID from starting.
 *
 * A record of this launcher's own name is an earlier run's: this one has
 * no instance yet. Other owners are told apart by the default name,
 * "<hostname>:<pid>": a pid of this host that no longer runs, or now runs
 * another program, is gone. Records of other launchers named with -n are
 * left alone: whether they run cannot be told from here. This runs with
 * hiredis's blocking API before the event loop starts, again every second
 * until the registry answers: no wake is taken before it is done.
 */


#include "ngxc_launcher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static const char *ngxc_launcher_reconcile_setup(redisContext *ctx);
static void ngxc_launcher_reconcile_wait(const char *why);
static int ngxc_launcher_reconcile_key(redisContext *ctx, const char *key,
    size_t key_len, const char *host);
static int ngxc_launcher_owner_gone(const char *owner, const char *host);
static int ngxc_launcher_zombie(long pid);
static int ngxc_launcher_other_program(long pid);
static int ngxc_launcher_read_line(const char *path, char *buf,
    size_t size);
static unsigned ngxc_launcher_reconcile_sweep(const char *cls,
    const char *id, size_t id_len, const char *gen, long leader);
static int ngxc_launcher_reconcile_ours(long pid, const char *cls,
    const char *id, size_t id_len, const char *gen, long leader);
static int ngxc_launcher_environ_has(const char *env, size_t len,
    const char *name, const char *value, size_t value_len);


int
ngxc_launcher_reconcile(void)
{
    int                     rc;
    char                    host[256], cursor[32];
    size_t                  i;
    const char             *err;
    redisReply             *reply, *keys;
    redisContext           *ctx;
    struct timeval          tv;
    unsigned                n, rounds;
    ngxc_launcher_cycle_t  *cycle;

    cycle = &ngxc_launcher_cycle;

    if (gethostname(host, sizeof(host)) != 0) {
        return 0;
    }

    host[sizeof(host) - 1] = '\0';

    tv.tv_sec = 2;
    tv.tv_usec = 0;

    ctx = cycle->redis_unix != NULL
          ? redisConnectUnixWithTimeout(cycle->redis_unix, tv)
          : redisConnectWithTimeout(cycle->redis_host, cycle->redis_port, tv);

    rc = -1;

    if (ctx == NULL || ctx->err) {
        ngxc_launcher_reconcile_wait(ctx ? ctx->errstr : "out of memory");
        goto done;
    }

    (void) redisSetTimeout(ctx, tv);

    /* a SELECT refused would leave us in database 0, with other records */

    err = ngxc_launcher_reconcile_setup(ctx);
    if (err != NULL) {
        ngxc_launcher_reconcile_wait(err);
        goto done;
    }

    strcpy(cursor, "0");
    n = 0;

    /* a bound on the rounds, so a registry that grows without end stops it */

    for (rounds = 0; rounds < 100000; rounds++) {
        reply = redisCommand(ctx, "SCAN %s MATCH %s* COUNT 1000", cursor,
                             NGXC_LAUNCHER_INST_PREFIX);

        if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
            || reply->elements != 2
            || reply->element[0]->type != REDIS_REPLY_STRING
            || reply->element[1]->type != REDIS_REPLY_ARRAY)
        {
            ngxc_launcher_reconcile_wait(ctx->err ? ctx->errstr
                                         : (reply != NULL
                                            && reply->type
                                               == REDIS_REPLY_ERROR)
                                           ? reply->str
                                           : "unexpected reply to SCAN");
            freeReplyObject(reply);
            goto done;
        }

        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        keys = reply->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type == REDIS_REPLY_STRING) {
                n += ngxc_launcher_reconcile_key(ctx, keys->element[i]->str,
                                                 keys->element[i]->len,
                                                 host);
            }
        }

        freeReplyObject(reply);

        if (strcmp(cursor, "0") == 0) {
            break;
        }
    }

    ngxc_launcher_log("reconcile done: %u record(s) of gone launchers "
                      "stopped", n);

    rc = 0;

done:

    if (ctx != NULL) {
        redisFree(ctx);
    }

    return rc;
}


/* AUTH and SELECT, as the launcher's other connections send them */

static const char *
ngxc_launcher_reconcile_setup(redisContext *ctx)
{
    redisReply             *reply;
    ngxc_launcher_cycle_t  *cycle;
    static char             err[256];

    cycle = &ngxc_launcher_cycle;

    if (cycle->redis_password != NULL) {
        reply = redisCommand(ctx, "AUTH %s", cycle->redis_password);

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, sizeof(err), "AUTH: %s",
                     reply ? reply->str : ctx->errstr);
            freeReplyObject(reply);
            return err;
        }

        freeReplyObject(reply);
    }

    if (cycle->redis_db >= 0) {
        reply = redisCommand(ctx, "SELECT %d", cycle->redis_db);

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(err, sizeof(err), "SELECT %d: %s", cycle->redis_db,
                     reply ? reply->str : ctx->errstr);
            freeReplyObject(reply);
            return err;
        }

        freeReplyObject(reply);
    }

    return NULL;
}


/* tried again every second: said once, and again when the reason changes */

static void
ngxc_launcher_reconcile_wait(const char *why)
{
    static char  last[256];

    if (strncmp(last, why, sizeof(last) - 1) == 0) {
        return;
    }

    snprintf(last, sizeof(last), "%s", why);

    ngxc_launcher_log("reconcile waits for the registry at %s: %s, "
                      "retrying every second", ngxc_launcher_cycle.registry,
                      why);
}


/* returns 1 when the record was one of a gone launcher's, now stopped */

static int
ngxc_launcher_reconcile_key(redisContext *ctx, const char *key,
    size_t key_len, const char *host)
{
    int          rc;
    char         reason[300], cls[NGXC_LAUNCHER_CLASS_MAX + 1];
    size_t       prefix, cls_len, id_len;
    const char  *id, *colon;
    long         leader;
    unsigned     killed;
    redisReply  *r, *e, *state, *gen, *owner, *pid;

    r = redisCommand(ctx, "HMGET %b state gen owner pid", key, key_len);

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        freeReplyObject(r);
        return 0;
    }

    state = r->element[0];
    gen = r->element[1];
    owner = r->element[2];
    pid = r->element[3];

    if (state->type != REDIS_REPLY_STRING || gen->type != REDIS_REPLY_STRING
        || owner->type != REDIS_REPLY_STRING
        || (strcmp(state->str, "starting") != 0
            && strcmp(state->str, "ready") != 0
            && strcmp(state->str, "stopping") != 0)
        || !ngxc_launcher_owner_gone(owner->str, host))
    {
        freeReplyObject(r);
        return 0;
    }

    /* ngxc:inst:{<class>:<id>}: the class has no ':' */

    prefix = sizeof(NGXC_LAUNCHER_INST_PREFIX) - 1;
    colon = memchr(key + prefix, ':', key_len - prefix);

    if (colon == NULL || key[key_len - 1] != '}'
        || (size_t) (colon - key - prefix) > NGXC_LAUNCHER_CLASS_MAX)
    {
        freeReplyObject(r);
        return 0;
    }

    cls_len = colon - key - prefix;
    memcpy(cls, key + prefix, cls_len);
    cls[cls_len] = '\0';

    id = colon + 1;
    id_len = key + key_len - 1 - id;

    snprintf(reason, sizeof(reason), "launcher %s gone", owner->str);

    ngxc_launcher_log_step("reconcile", cls, (const u_char *) id, id_len,
                           gen->str, " owner=%s", owner->str);

    leader = (pid->type == REDIS_REPLY_STRING) ? strtol(pid->str, NULL, 10)
                                               : 0;

    killed = ngxc_launcher_reconcile_sweep(cls, id, id_len, gen->str,
                                           leader);
    if (killed) {
        ngxc_launcher_log_step("reconcile", cls, (const u_char *) id,
                               id_len, gen->str, " killed=%u reason=\"left "
                               "behind by its instance\"", killed);
    }

    /* the exit step, in the name of the gone owner; it publishes "stopped" */

    e = redisCommand(ctx, "EVAL %s 1 %b %s %s %s %b %s %s %s",
                     ngxc_launcher_scripts[NGXC_LAUNCHER_STEP_EXIT],
                     key, key_len, gen->str, owner->str, cls, id, id_len,
                     reason, "", ngxc_launcher_cycle.channel);

    rc = (e != NULL && e->type == REDIS_REPLY_INTEGER && e->integer == 1);

    freeReplyObject(e);
    freeReplyObject(r);

    return rc;
}


/* our own name, or "<host>:<pid>" of this host and that pid is gone */

static int
ngxc_launcher_owner_gone(const char *owner, const char *host)
{
    long         pid;
    char        *end;
    size_t       len;
    const char  *p;

    if (strcmp(owner, ngxc_launcher_cycle.owner) == 0) {
        return 1;
    }

    len = strlen(host);

    if (strncmp(owner, host, len) != 0 || owner[len] != ':') {
        return 0;
    }

    p = owner + len + 1;
    errno = 0;
    pid = strtol(p, &end, 10);

    if (errno != 0 || end == p || *end != '\0' || pid <= 0
        || pid == (long) getpid())
    {
        return 0;
    }

    if (kill((pid_t) pid, 0) == -1) {
        return errno == ESRCH;
    }

    /* a zombie that nobody reaped yet is gone too, and so is a pid reused */

    return ngxc_launcher_zombie(pid) || ngxc_launcher_other_program(pid);
}


/*
 * the pid runs a program of another name than this one, when that can be
 * told: the name, not the file, so that a launcher whose binary was
 * upgraded under it is still seen as alive
 */

static int
ngxc_launcher_other_program(long pid)
{
    char  path[64], comm[64], self[64];

    snprintf(path, sizeof(path), "/proc/%ld/comm", pid);

    if (ngxc_launcher_read_line(path, comm, sizeof(comm)) != 0
        || ngxc_launcher_read_line("/proc/self/comm", self, sizeof(self))
           != 0)
    {
        return 0;
    }

    return strcmp(comm, self) != 0;
}


static int
ngxc_launcher_read_line(const char *path, char *buf, size_t size)
{
    FILE  *f;
    char  *p;

    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }

    p = fgets(buf, size, f);
    fclose(f);

    return (p == NULL) ? -1 : 0;
}


static int
ngxc_launcher_zombie(long pid)
{
    int    zombie;
    char   path[64], line[128];
    FILE  *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);

    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }

    zombie = 0;

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "State:", 6) == 0) {
            zombie = (strchr(line, 'Z') != NULL);
            break;
        }
    }

    fclose(f);

    return zombie;
}


/*
 * SIGKILL to every process of ours that an instance of the record left
 * behind: its environment names the class and the ID, and either the
 * generation (CONTAINER_GEN) or a process group led by the recorded pid
 * (an instance taken again keeps the generation it started with). Only
 * processes this launcher may signal can be read; returns how many.
 */

static unsigned
ngxc_launcher_reconcile_sweep(const char *cls, const char *id,
    size_t id_len, const char *gen, long leader)
{
    long            pid;
    char           *end;
    DIR            *dir;
    unsigned        killed;
    struct dirent  *de;

    dir = opendir("/proc");
    if (dir == NULL) {
        return 0;
    }

    killed = 0;

    while ((de = readdir(dir)) != NULL) {
        errno = 0;
        pid = strtol(de->d_name, &end, 10);

        if (errno != 0 || *end != '\0' || pid <= 1 || pid == (long) getpid()
            || !ngxc_launcher_reconcile_ours(pid, cls, id, id_len, gen,
                                             leader))
        {
            continue;
        }

        if (kill((pid_t) pid, SIGKILL) == 0) {
            killed++;
        }
    }

    closedir(dir);

    return killed;
}


static int
ngxc_launcher_reconcile_ours(long pid, const char *cls, const char *id,
    size_t id_len, const char *gen, long leader)
{
    int      fd;
    char     path[64], stat[512], *p, state;
    char     env[65536];
    long     group;
    ssize_t  n;
    size_t   len;

    snprintf(path, sizeof(path), "/proc/%ld/environ", pid);

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return 0;
    }

    len = 0;

    while (len < sizeof(env)
           && (n = read(fd, env + len, sizeof(env) - len)) > 0)
    {
        len += n;
    }

    close(fd);

    if (!ngxc_launcher_environ_has(env, len, "CONTAINER_CLASS", cls,
                                   strlen(cls))
        || !ngxc_launcher_environ_has(env, len, "CONTAINER_ID", id, id_len))
    {
        return 0;
    }

    if (ngxc_launcher_environ_has(env, len, "CONTAINER_GEN", gen,
                                  strlen(gen)))
    {
        return 1;
    }

    if (leader <= 0) {
        return 0;
    }

    /* "pid (comm) state ppid pgrp ...": comm may hold spaces and ")" */

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);

    if (ngxc_launcher_read_line(path, stat, sizeof(stat)) != 0) {
        return 0;
    }

    p = strrchr(stat, ')');

    return p != NULL && sscanf(p + 1, " %c %*d %ld", &state, &group) == 2
           && group == leader;
}


/* "NAME=value" is one of the NUL-separated entries of an environ */

static int
ngxc_launcher_environ_has(const char *env, size_t len, const char *name,
    const char *value, size_t value_len)
{
    size_t       name_len, entry_len;
    const char  *p, *last, *nul;

    name_len = strlen(name);
    last = env + len;

    for (p = env; p < last; p = nul + 1) {
        nul = memchr(p, '\0', last - p);
        if (nul == NULL) {
            return 0;
        }

        entry_len = nul - p;

        if (entry_len == name_len + 1 + value_len
            && memcmp(p, name, name_len) == 0 && p[name_len] == '='
            && memcmp(p + name_len + 1, value, value_len) == 0)
        {
            return 1;
        }
    }

    return 0;
}

