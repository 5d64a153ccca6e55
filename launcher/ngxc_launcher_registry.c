
/*
 * The registry client: two connections to Redis on the event loop.  "wake"
 * sits in BLPOP on the wake lists of our classes; "scripts" runs the steps.
 * Both reconnect every second when lost.  A step asked for while "scripts"
 * is down waits in a queue and is sent when it is back, and so is a ready,
 * fail or exit whose reply was lost with the connection or was an error
 * such as LOADING (those scripts can run twice harmlessly).
 */


#include "ngxc_launcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <adapters/libevent.h>


#define NGXC_LAUNCHER_RETRY            1.0      /* seconds */
#define NGXC_LAUNCHER_CONNECT_TIMEOUT  5.0
/* EVAL, the script, 1, the key, ARGV[1] to ARGV[7] */
#define NGXC_LAUNCHER_CALL_ARGC        11

/* error replies to a ready, fail or exit before it is given up */
#define NGXC_LAUNCHER_CALL_TRIES       5

#define NGXC_LAUNCHER_WAKE_PREFIX      "ngxc:{wake}:"


typedef struct ngxc_launcher_conn_s  ngxc_launcher_conn_t;
typedef struct ngxc_launcher_call_s  ngxc_launcher_call_t;

typedef void (*ngxc_launcher_conn_ready_pt)(ngxc_launcher_conn_t *c);


struct ngxc_launcher_conn_s {
    const char                    *name;          /* for the log */
    redisAsyncContext             *ctx;
    struct event                  *retry;
    struct event                  *timeout;       /* of the connect */
    ngxc_launcher_conn_ready_pt    ready;
    int                            setup;         /* AUTH, SELECT pending */
    unsigned                       usable:1;      /* connected and set up */
    unsigned                       closed:1;      /* not to be reopened */
    char                           error[128];    /* last one logged */
};


/* one EVAL of a step's script, with its own copy of the arguments */

struct ngxc_launcher_call_s {
    ngxc_launcher_call_t          *next;
    ngxc_launcher_step_e           step;
    ngxc_launcher_instance_t      *inst;          /* NULL: a wake's fail */
    int                            errors;        /* error replies so far */
    int                            argc;
    const char                    *argv[NGXC_LAUNCHER_CALL_ARGC];
    size_t                         argvlen[NGXC_LAUNCHER_CALL_ARGC];
    char                           buf[];
};


typedef struct {
    ngxc_launcher_conn_t           wake;
    ngxc_launcher_conn_t           scripts;
    ngxc_launcher_call_t          *queue;
    ngxc_launcher_call_t         **queue_last;
    int                            calls;         /* queued or sent */
    int                            blpop_argc;
    const char                   **blpop_argv;
    size_t                        *blpop_argvlen;
} ngxc_launcher_registry_t;


static void ngxc_launcher_conn_open(ngxc_launcher_conn_t *c);
static void ngxc_launcher_conn_failed(ngxc_launcher_conn_t *c,
    const char *err);
static void ngxc_launcher_conn_retry_later(ngxc_launcher_conn_t *c);
static void ngxc_launcher_conn_retry(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_conn_timeout(evutil_socket_t fd, short what,
    void *data);
static void ngxc_launcher_conn_connected(const redisAsyncContext *ac,
    int status);
static void ngxc_launcher_conn_setup(redisAsyncContext *ac, void *r,
    void *data);
static void ngxc_launcher_conn_usable(ngxc_launcher_conn_t *c);
static void ngxc_launcher_conn_disconnected(const redisAsyncContext *ac,
    int status);
static void ngxc_launcher_conn_close(ngxc_launcher_conn_t *c);
static void ngxc_launcher_wake_pop(ngxc_launcher_conn_t *c);
static void ngxc_launcher_wake_popped(redisAsyncContext *ac, void *r,
    void *data);
static void ngxc_launcher_wake_parse(const char *data, size_t len);
static void ngxc_launcher_calls_flush(ngxc_launcher_conn_t *c);
static void ngxc_launcher_call_send(ngxc_launcher_call_t *call);
static void ngxc_launcher_call_done(redisAsyncContext *ac, void *r,
    void *data);
static char *ngxc_launcher_call_arg(ngxc_launcher_call_t *call, char *p,
    const void *data, size_t len);


static ngxc_launcher_registry_t  ngxc_launcher_registry;


/* "host:port", "[v6 address]:port", "host" (port 6379) or "unix:/path" */

int
ngxc_launcher_registry_parse(const char *addr)
{
    char                   *end;
    long                    port;
    size_t                  len;
    const char             *host, *colon;
    ngxc_launcher_cycle_t  *cycle;

    cycle = &ngxc_launcher_cycle;

    cycle->registry = addr;

    if (strncmp(addr, "unix:", 5) == 0) {
        if (addr[5] == '\0') {
            return -1;
        }

        cycle->redis_unix = strdup(addr + 5);

        return (cycle->redis_unix == NULL) ? -1 : 0;
    }

    if (addr[0] == '[') {
        host = addr + 1;
        end = strchr(host, ']');

        if (end == NULL || (end[1] != '\0' && end[1] != ':')) {
            return -1;
        }

        len = end - host;
        colon = (end[1] == ':') ? end + 1 : NULL;

    } else {
        host = addr;
        colon = strchr(addr, ':');

        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            /* an IPv6 address goes in brackets */
            return -1;
        }

        len = colon ? (size_t) (colon - addr) : strlen(addr);
    }

    if (len == 0) {
        return -1;
    }

    port = 6379;

    if (colon != NULL) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);

        if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1
            || port > 65535)
        {
            return -1;
        }
    }

    cycle->redis_host = strndup(host, len);
    cycle->redis_port = (int) port;

    return (cycle->redis_host == NULL) ? -1 : 0;
}


int
ngxc_launcher_registry_init(void)
{
    char                      *key;
    size_t                     i, n;
    ngxc_launcher_conf_t      *conf;
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;
    conf = ngxc_launcher_cycle.conf;

    reg->queue_last = &reg->queue;

    /* BLPOP ngxc:{wake}:<class> ... 0 */

    n = conf->nclasses + 2;

    reg->blpop_argv = calloc(n, sizeof(char *));
    reg->blpop_argvlen = calloc(n, sizeof(size_t));

    if (reg->blpop_argv == NULL || reg->blpop_argvlen == NULL) {
        return -1;
    }

    reg->blpop_argv[0] = "BLPOP";
    reg->blpop_argvlen[0] = 5;
    reg->blpop_argc = 1;

    for (i = 0; i < conf->nclasses; i++) {
        if (asprintf(&key, NGXC_LAUNCHER_WAKE_PREFIX "%s",
                     conf->classes[i].name)
            < 0)
        {
            return -1;
        }

        reg->blpop_argv[reg->blpop_argc] = key;
        reg->blpop_argvlen[reg->blpop_argc++] = strlen(key);
    }

    reg->blpop_argv[reg->blpop_argc] = "0";
    reg->blpop_argvlen[reg->blpop_argc++] = 1;

    reg->wake.name = "wake";
    reg->wake.ready = ngxc_launcher_wake_pop;
    reg->scripts.name = "scripts";
    reg->scripts.ready = ngxc_launcher_calls_flush;

    reg->wake.retry = evtimer_new(ngxc_launcher_cycle.base,
                                  ngxc_launcher_conn_retry, &reg->wake);
    reg->wake.timeout = evtimer_new(ngxc_launcher_cycle.base,
                                    ngxc_launcher_conn_timeout, &reg->wake);
    reg->scripts.retry = evtimer_new(ngxc_launcher_cycle.base,
                                     ngxc_launcher_conn_retry,
                                     &reg->scripts);
    reg->scripts.timeout = evtimer_new(ngxc_launcher_cycle.base,
                                       ngxc_launcher_conn_timeout,
                                       &reg->scripts);

    if (reg->wake.retry == NULL || reg->wake.timeout == NULL
        || reg->scripts.retry == NULL || reg->scripts.timeout == NULL)
    {
        return -1;
    }

    ngxc_launcher_conn_open(&reg->scripts);
    ngxc_launcher_conn_open(&reg->wake);

    return 0;
}


/* on SIGTERM: take no more wake requests */

void
ngxc_launcher_registry_stop_wakes(void)
{
    /*
     * a request that BLPOP has already taken off the list but whose reply
     * is still on its way is lost here; its claim lapses at its deadline
     * and a gateway claims it again
     */

    ngxc_launcher_conn_close(&ngxc_launcher_registry.wake);
}


/* steps queued or waiting for their replies */

int
ngxc_launcher_registry_busy(void)
{
    return ngxc_launcher_registry.calls;
}


int
ngxc_launcher_registry_connected(void)
{
    return ngxc_launcher_registry.scripts.usable;
}


/* once the loop has ended: what is still queued or sent is dropped */

void
ngxc_launcher_registry_cleanup(void)
{
    int                        i;
    ngxc_launcher_call_t      *call;
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;

    ngxc_launcher_conn_close(&reg->wake);
    ngxc_launcher_conn_close(&reg->scripts);

    while (reg->queue != NULL) {
        call = reg->queue;
        reg->queue = call->next;
        reg->calls--;
        free(call);
    }

    for (i = 1; i < reg->blpop_argc - 1; i++) {
        free((char *) reg->blpop_argv[i]);
    }

    free(reg->blpop_argv);
    free(reg->blpop_argvlen);

    event_free(reg->wake.retry);
    event_free(reg->wake.timeout);
    event_free(reg->scripts.retry);
    event_free(reg->scripts.timeout);
}


/*
 * runs a step's script on the record of class and id; the instance, if
 * any, hears the reply through ngxc_launcher_instance_reply()
 */

int
ngxc_launcher_registry_eval(ngxc_launcher_step_e step,
    ngxc_launcher_instance_t *inst, const char *cls, const u_char *id,
    size_t id_len, const char *gen, const char *arg, const char *arg2)
{
    char                  *p;
    size_t                 cls_len, gen_len, arg_len, arg2_len, size;
    const char            *owner, *channel;
    ngxc_launcher_call_t  *call;

    if (arg2 == NULL) {
        arg2 = "";
    }

    channel = ngxc_launcher_cycle.channel;

    cls_len = strlen(cls);
    gen_len = strlen(gen);
    arg_len = strlen(arg);
    arg2_len = strlen(arg2);

    /* the key, then each argument, each followed by a '\0' */

    size = sizeof(NGXC_LAUNCHER_INST_PREFIX) + cls_len + 1 + id_len + 1
           + gen_len + 1 + cls_len + 1 + id_len + 1 + arg_len + 1
           + arg2_len + 1;

    call = malloc(sizeof(ngxc_launcher_call_t) + size);
    if (call == NULL) {
        ngxc_launcher_log_step(ngxc_launcher_step_names[step], cls, id,
                               id_len, gen, " error=\"out of memory\"");
        return -1;
    }

    call->next = NULL;
    call->step = step;
    call->inst = inst;
    call->errors = 0;

    call->argv[0] = "EVAL";
    call->argvlen[0] = 4;
    call->argv[1] = ngxc_launcher_scripts[step];
    call->argvlen[1] = strlen(ngxc_launcher_scripts[step]);
    call->argv[2] = "1";
    call->argvlen[2] = 1;
    call->argc = 3;

    /* ngxc:inst:{<class>:<id>}, with the ID's bytes as they are */

    p = call->buf;
    call->argv[call->argc] = p;

    p = (char *) memcpy(p, NGXC_LAUNCHER_INST_PREFIX,
                        sizeof(NGXC_LAUNCHER_INST_PREFIX) - 1)
        + sizeof(NGXC_LAUNCHER_INST_PREFIX) - 1;
    p = (char *) memcpy(p, cls, cls_len) + cls_len;
    *p++ = ':';
    p = (char *) memcpy(p, id, id_len) + id_len;
    *p++ = '}';
    *p++ = '\0';

    call->argvlen[call->argc] = p - 1 - call->argv[call->argc];
    call->argc++;

    p = ngxc_launcher_call_arg(call, p, gen, gen_len);

    /*
     * a wake refused before any take has no owner: its fail must not hit
     * a record that this launcher took for the same gen meanwhile
     */

    owner = (inst != NULL) ? ngxc_launcher_cycle.owner : "";

    call->argv[call->argc] = owner;
    call->argvlen[call->argc++] = strlen(owner);

    p = ngxc_launcher_call_arg(call, p, cls, cls_len);
    p = ngxc_launcher_call_arg(call, p, id, id_len);
    p = ngxc_launcher_call_arg(call, p, arg, arg_len);
    (void) ngxc_launcher_call_arg(call, p, arg2, arg2_len);

    call->argv[call->argc] = channel;
    call->argvlen[call->argc++] = strlen(channel);

    if (inst != NULL) {
        inst->calls++;
    }

    ngxc_launcher_registry.calls++;

    ngxc_launcher_call_send(call);

    return 0;
}


/*
 * A command outside the steps, on the scripts connection, in order with
 * them: -1 when it cannot go at once (nothing is kept to send later, the
 * caller goes on without it).
 */

int
ngxc_launcher_registry_command(redisCallbackFn *fn, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;

    if (!reg->scripts.usable || reg->queue != NULL) {
        return -1;
    }

    return redisAsyncCommandArgv(reg->scripts.ctx, fn, data, argc, argv,
                                 argvlen)
           == REDIS_OK ? 0 : -1;
}


static char *
ngxc_launcher_call_arg(ngxc_launcher_call_t *call, char *p, const void *data,
    size_t len)
{
    call->argv[call->argc] = p;
    call->argvlen[call->argc++] = len;

    p = (char *) memcpy(p, data, len) + len;
    *p++ = '\0';

    return p;
}


static void
ngxc_launcher_call_send(ngxc_launcher_call_t *call)
{
    ngxc_launcher_conn_t      *c;
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;
    c = &reg->scripts;

    /* behind what is queued, so that steps keep their order */

    if (c->usable && reg->queue == NULL
        && redisAsyncCommandArgv(c->ctx, ngxc_launcher_call_done, call,
                                 call->argc, call->argv, call->argvlen)
           == REDIS_OK)
    {
        return;
    }

    call->next = NULL;
    *reg->queue_last = call;
    reg->queue_last = &call->next;
}


static void
ngxc_launcher_calls_flush(ngxc_launcher_conn_t *c)
{
    ngxc_launcher_call_t      *call;
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;

    while (reg->queue != NULL) {
        call = reg->queue;

        if (redisAsyncCommandArgv(c->ctx, ngxc_launcher_call_done, call,
                                  call->argc, call->argv, call->argvlen)
            != REDIS_OK)
        {
            return;
        }

        reg->queue = call->next;

        if (reg->queue == NULL) {
            reg->queue_last = &reg->queue;
        }
    }
}


static void
ngxc_launcher_call_done(redisAsyncContext *ac, void *r, void *data)
{
    int                        again;
    char                       err[256];
    redisReply                *reply;
    ngxc_launcher_call_t      *call;
    ngxc_launcher_instance_t  *inst;

    reply = r;
    call = data;

    if (ngxc_launcher_cycle.exiting) {
        ngxc_launcher_registry.calls--;
        free(call);
        return;
    }

    /*
     * ready, fail and exit are safe to run again, and must not be lost: a
     * lost exit would leave a dead address in a ready record
     */

    again = (call->step != NGXC_LAUNCHER_STEP_TAKE
             && call->step != NGXC_LAUNCHER_STEP_IDLE);

    if (reply == NULL && again) {
        /* the connection went: the step goes out on the next one */
        ngxc_launcher_call_send(call);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        again = again && ++call->errors < NGXC_LAUNCHER_CALL_TRIES;

        ngxc_launcher_log_step(ngxc_launcher_step_names[call->step],
                               call->argv[6], (u_char *) call->argv[7],
                               call->argvlen[7], call->argv[4],
                               " error=%s%s",
                               ngxc_launcher_quote(err, sizeof(err),
                                                   (u_char *) reply->str,
                                                   reply->len),
                               again ? ", trying again" : "");

        if (again) {

            /*
             * LOADING after a restart, READONLY after a failover, BUSY:
             * the step waits in the queue for a new connection
             */

            call->next = NULL;
            *ngxc_launcher_registry.queue_last = call;
            ngxc_launcher_registry.queue_last = &call->next;

            redisAsyncDisconnect(ac);
            return;
        }
    }

    inst = call->inst;

    ngxc_launcher_registry.calls--;

    if (inst != NULL) {
        inst->calls--;
        ngxc_launcher_instance_reply(call->step, inst, reply);
    }

    free(call);

    ngxc_launcher_check_done();
}


static void
ngxc_launcher_wake_pop(ngxc_launcher_conn_t *c)
{
    ngxc_launcher_registry_t  *reg;

    reg = &ngxc_launcher_registry;

    if (redisAsyncCommandArgv(c->ctx, ngxc_launcher_wake_popped, c,
                              reg->blpop_argc, reg->blpop_argv,
                              reg->blpop_argvlen)
        != REDIS_OK)
    {
        ngxc_launcher_log("registry: BLPOP not sent: %s", c->ctx->errstr);
    }
}


static void
ngxc_launcher_wake_popped(redisAsyncContext *ac, void *r, void *data)
{
    redisReply            *reply;
    ngxc_launcher_conn_t  *c;

    reply = r;
    c = data;

    if (reply == NULL) {
        /* the connection went; BLPOP is sent again once it is back */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngxc_launcher_log("registry: BLPOP failed: %s", reply->str);
        redisAsyncDisconnect(ac);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        ngxc_launcher_wake_parse(reply->element[1]->str,
                                 reply->element[1]->len);
    }

    if (!c->closed && c->usable) {
        ngxc_launcher_wake_pop(c);
    }
}


/* {"class": "counter", "id": "alice", "gen": 3} */

static void
ngxc_launcher_wake_parse(const char *data, size_t len)
{
    char    gen[NGXC_LAUNCHER_GEN_MAX], raw[2 + 4 * 200 + 1];
    cJSON  *json, *cls, *id, *g;
    double  n;

    json = cJSON_ParseWithLength(data, len);

    cls = cJSON_GetObjectItemCaseSensitive(json, "class");
    id = cJSON_GetObjectItemCaseSensitive(json, "id");
    g = cJSON_GetObjectItemCaseSensitive(json, "gen");

    n = cJSON_IsNumber(g) ? g->valuedouble : -1;

    /*
     * cJSON ends the ID at a "\u0000" in it; the gateways must not wake an
     * ID with a zero byte
     */

    if (!cJSON_IsString(cls) || cls->valuestring[0] == '\0'
        || !cJSON_IsString(id)
        || strlen(id->valuestring) > NGXC_LAUNCHER_ID_MAX
        || n < 0 || n > 9007199254740992.0 || n != (int64_t) n)
    {
        ngxc_launcher_log("wake dropped: not a wake request: %s",
                          ngxc_launcher_quote(raw, sizeof(raw),
                                              (u_char *) data,
                                              len > 200 ? 200 : len));
        cJSON_Delete(json);
        return;
    }

    snprintf(gen, sizeof(gen), "%.0f", n);

    ngxc_launcher_wake(cls->valuestring, (u_char *) id->valuestring,
                       strlen(id->valuestring), gen);

    cJSON_Delete(json);
}


static void
ngxc_launcher_conn_open(ngxc_launcher_conn_t *c)
{
    struct timeval          tv;
    redisAsyncContext      *ctx;
    ngxc_launcher_cycle_t  *cycle;

    cycle = &ngxc_launcher_cycle;

    if (cycle->redis_unix != NULL) {
        ctx = redisAsyncConnectUnix(cycle->redis_unix);

    } else {
        ctx = redisAsyncConnect(cycle->redis_host, cycle->redis_port);
    }

    if (ctx == NULL) {
        ngxc_launcher_conn_failed(c, "out of memory");
        return;
    }

    if (ctx->err) {
        ngxc_launcher_conn_failed(c, ctx->errstr);
        redisAsyncFree(ctx);
        return;
    }

    ctx->data = c;

    if (redisLibeventAttach(ctx, cycle->base) != REDIS_OK) {
        ngxc_launcher_conn_failed(c, "redisLibeventAttach() failed");
        redisAsyncFree(ctx);
        return;
    }

    redisAsyncSetConnectCallback(ctx, ngxc_launcher_conn_connected);
    redisAsyncSetDisconnectCallback(ctx, ngxc_launcher_conn_disconnected);

    c->ctx = ctx;

    /* hiredis 0.14 has no connect timeout of its own */

    tv = ngxc_launcher_timeval(NGXC_LAUNCHER_CONNECT_TIMEOUT);
    evtimer_add(c->timeout, &tv);
}


/* logs a failure once, not every second while Redis stays away */

static void
ngxc_launcher_conn_failed(ngxc_launcher_conn_t *c, const char *err)
{
    if (strncmp(c->error, err, sizeof(c->error) - 1) != 0) {
        ngxc_launcher_log("registry connect failed conn=%s addr=%s: %s, "
                          "retrying every second", c->name,
                          ngxc_launcher_cycle.registry, err);
        snprintf(c->error, sizeof(c->error), "%s", err);
    }

    /* after a failed AUTH or SELECT the retry waits for the disconnect */

    if (c->ctx == NULL) {
        ngxc_launcher_conn_retry_later(c);
    }
}


static void
ngxc_launcher_conn_retry_later(ngxc_launcher_conn_t *c)
{
    struct timeval  tv;

    if (!c->closed) {
        tv = ngxc_launcher_timeval(NGXC_LAUNCHER_RETRY);
        evtimer_add(c->retry, &tv);
    }
}


static void
ngxc_launcher_conn_retry(evutil_socket_t fd, short what, void *data)
{
    ngxc_launcher_conn_t  *c;

    (void) fd;
    (void) what;

    c = data;

    if (!c->closed && c->ctx == NULL) {
        ngxc_launcher_conn_open(c);
    }
}


static void
ngxc_launcher_conn_timeout(evutil_socket_t fd, short what, void *data)
{
    redisAsyncContext     *ctx;
    ngxc_launcher_conn_t  *c;

    (void) fd;
    (void) what;

    c = data;
    ctx = c->ctx;

    if (ctx == NULL || (ctx->c.flags & REDIS_CONNECTED)) {
        return;
    }

    /* not connected yet: hiredis calls neither callback on this free */

    c->ctx = NULL;
    redisAsyncFree(ctx);

    ngxc_launcher_conn_failed(c, "connect timed out");
}


static void
ngxc_launcher_conn_connected(const redisAsyncContext *ac, int status)
{
    ngxc_launcher_conn_t   *c;
    ngxc_launcher_cycle_t  *cycle;

    c = ac->data;
    cycle = &ngxc_launcher_cycle;

    evtimer_del(c->timeout);

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback */
        c->ctx = NULL;
        ngxc_launcher_conn_failed(c, ac->errstr);
        return;
    }

    /*
     * a BLPOP that waits for ever needs keepalive to notice a peer gone
     * without a word; a Unix socket has no keepalive, nor needs it
     */

    if (c->ctx->c.connection_type == REDIS_CONN_TCP) {
        (void) redisEnableKeepAlive(&c->ctx->c);
    }

    c->setup = 0;

    if (cycle->redis_password != NULL
        && redisAsyncCommand(c->ctx, ngxc_launcher_conn_setup, c, "AUTH %s",
                             cycle->redis_password)
           == REDIS_OK)
    {
        c->setup++;
    }

    if (cycle->redis_db >= 0
        && redisAsyncCommand(c->ctx, ngxc_launcher_conn_setup, c,
                             "SELECT %d", cycle->redis_db)
           == REDIS_OK)
    {
        c->setup++;
    }

    if (c->setup == 0) {
        ngxc_launcher_conn_usable(c);
    }
}


static void
ngxc_launcher_conn_setup(redisAsyncContext *ac, void *r, void *data)
{
    char                   err[128];
    redisReply            *reply;
    ngxc_launcher_conn_t  *c;

    reply = r;
    c = data;

    if (reply == NULL || c->setup < 0) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {

        /* a wrong password, say: logged once, tried again every second */

        snprintf(err, sizeof(err), "%s", reply->str);
        ngxc_launcher_conn_failed(c, err);

        c->setup = -1;
        redisAsyncDisconnect(ac);
        return;
    }

    if (--c->setup == 0) {
        ngxc_launcher_conn_usable(c);
    }
}


static void
ngxc_launcher_conn_usable(ngxc_launcher_conn_t *c)
{
    ngxc_launcher_log("registry connect conn=%s addr=%s", c->name,
                      ngxc_launcher_cycle.registry);

    c->usable = 1;
    c->error[0] = '\0';

    c->ready(c);
}


static void
ngxc_launcher_conn_disconnected(const redisAsyncContext *ac, int status)
{
    ngxc_launcher_conn_t  *c;

    c = ac->data;

    c->ctx = NULL;

    if (c->usable) {
        c->usable = 0;

        ngxc_launcher_log("registry disconnect conn=%s addr=%s: %s",
                          c->name, ngxc_launcher_cycle.registry,
                          (status == REDIS_OK) ? "closed" : ac->errstr);
    }

    ngxc_launcher_conn_retry_later(c);
}


static void
ngxc_launcher_conn_close(ngxc_launcher_conn_t *c)
{
    redisAsyncContext  *ctx;

    if (c->usable) {
        ngxc_launcher_log("registry disconnect conn=%s addr=%s: closed",
                          c->name, ngxc_launcher_cycle.registry);
    }

    c->closed = 1;
    c->usable = 0;

    evtimer_del(c->retry);
    evtimer_del(c->timeout);

    ctx = c->ctx;

    if (ctx != NULL) {
        c->ctx = NULL;
        redisAsyncFree(ctx);
    }
}
