
/*
 * The registry client: hiredis's asynchronous API driven by nginx's event
 * loop. Each worker keeps two connections to Redis: one for commands (the
 * claim and touch scripts, wake requests) and one subscribed to the events
 * channel. A lost connection is retried on a timer; while the command
 * connection is down, requests fail at once with 503.
 *
 * A subscriber awaits no replies, so nothing would notice one that went
 * silent (a Redis host gone, a firewall or proxy that dropped it): the
 * events would stop and every wake would time out. So each worker also
 * subscribes to a channel of its own and publishes a heartbeat on it from
 * the command connection every second; one that has not come back within
 * connect_timeout gives the subscriber up.
 */


#include "ngx_http_container.h"

#include <hiredis.h>
#include <async.h>
#include <cJSON.h>


typedef struct {
    redisAsyncContext          *ac;
    ngx_connection_t           *conn;
    ngx_event_t                 timer;      /* connect, reply, reconnect */
    ngx_uint_t                  waiting;    /* replies awaited */
    ngx_uint_t                  setup;      /* AUTH, SELECT unanswered */
    ngx_str_t                   name;       /* "command", "subscriber" */
    unsigned                    subscriber:1;
    unsigned                    connected:1;
    unsigned                    subscribed:1;
} ngx_http_container_redis_t;


static ngx_int_t ngx_http_container_redis_connect(
    ngx_http_container_redis_t *rd);
static void ngx_http_container_redis_lost(ngx_http_container_redis_t *rd,
    const char *why);
static void ngx_http_container_redis_timer(ngx_event_t *ev);
static void ngx_http_container_redis_sent(ngx_http_container_redis_t *rd);
static void ngx_http_container_redis_replied(ngx_http_container_redis_t *rd);
static void ngx_http_container_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_container_redis_disconnected(
    const redisAsyncContext *ac, int status);
static void ngx_http_container_redis_event_handler(ngx_event_t *ev);
static void ngx_http_container_redis_add_read(void *data);
static void ngx_http_container_redis_del_read(void *data);
static void ngx_http_container_redis_add_write(void *data);
static void ngx_http_container_redis_del_write(void *data);
static void ngx_http_container_redis_cleanup(void *data);
static ngx_int_t ngx_http_container_redis_setup(
    ngx_http_container_redis_t *rd);
static void ngx_http_container_redis_setup_reply(redisAsyncContext *ac,
    void *r, void *data);
static void ngx_http_container_redis_name_reply(redisAsyncContext *ac,
    void *r, void *data);
static void ngx_http_container_claim_reply(redisAsyncContext *ac, void *r,
    void *data);
static ngx_int_t ngx_http_container_wake(redisAsyncContext *ac,
    ngx_http_container_node_t *node, ngx_str_t *gen);
static void ngx_http_container_wake_reply(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_http_container_message(redisAsyncContext *ac, void *r,
    void *data);
static ngx_int_t ngx_http_container_json_str(void *json, const char *name,
    ngx_str_t *s);
static ngx_msec_t ngx_http_container_claim_ms(ngx_msec_t wake_timeout);
static void ngx_http_container_beat_handler(ngx_event_t *ev);
static void ngx_http_container_beat_reply(redisAsyncContext *ac, void *r,
    void *data);
static void ngx_http_container_beat_message(redisAsyncContext *ac, void *r,
    void *data);


/*
 * claim: KEYS[1] the instance record, ARGV[1] the wake timeout in ms;
 * see "The registry protocol" in README.md. A claim that no launcher
 * takes (a class that none serves) expires a day after it lapsed, as a
 * stopped record does; the ready step makes the record last.
 *
 * A new generation is the old one plus one, or Redis's clock in
 * milliseconds if that is more: so it still grows when the record was
 * lost (a flush, a restart without persistence, a stopped record that
 * expired), and no gateway that remembers an older one takes the new
 * one's answers and events as stale. A generation or deadline that is
 * not a number (a hand's write) counts as none, rather than failing the
 * script for ever.
 */

static const char  ngx_http_container_claim_script[] =
    "local t = redis.call('TIME') "
    "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local r = redis.call('HMGET', KEYS[1], 'state', 'addr', 'gen', "
                                           "'deadline') "
    "local gen = tonumber(r[3]) "
    "if not gen or gen ~= gen or gen < 0 or gen >= 2^53 then gen = 0 end "
    "if r[1] == 'ready' and gen > 0 and r[2] then "
        "redis.call('HSET', KEYS[1], 'last_active', now) "
        "return {'ready', r[3], r[2]} "
    "end "
    "if (r[1] == 'waking' or r[1] == 'starting' or r[1] == 'stopping') "
       "and gen > 0 and (tonumber(r[4]) or 0) > now then "
        "return {'waiting', r[3], r[1]} "
    "end "
    "gen = string.format('%.0f', math.max(gen + 1, now)) "
    "redis.call('HSET', KEYS[1], 'gen', gen, 'state', 'waking', "
               "'deadline', now + tonumber(ARGV[1]), 'updated', now) "
    "redis.call('HDEL', KEYS[1], 'addr', 'owner', 'reason', 'pid') "
    "redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 86400000) "
    "return {'claimed', gen, 'waking'}";


/* touch: a gateway saw the instance in use */

static const char  ngx_http_container_touch_script[] =
    "if redis.call('HGET', KEYS[1], 'state') == 'ready' then "
        "local t = redis.call('TIME') "
        "redis.call('HSET', KEYS[1], 'last_active', "
                   "t[1] * 1000 + math.floor(t[2] / 1000)) "
    "end "
    "return 0";


static ngx_http_container_registry_conf_t  *ngx_http_container_rcf;
static ngx_log_t                           *ngx_http_container_log;

/* "ngxc:events", or "ngxc:events:<db>": a channel is not in a database */
static char  ngx_http_container_channel[sizeof(NGX_HTTP_CONTAINER_CHANNEL)
                                        + NGX_INT_T_LEN + 1];

static ngx_http_container_redis_t  ngx_http_container_cmd = {
    NULL, NULL, { 0 }, 0, 0, ngx_string("command"), 0, 0, 0
};

static ngx_http_container_redis_t  ngx_http_container_sub = {
    NULL, NULL, { 0 }, 0, 0, ngx_string("subscriber"), 1, 0, 0
};

/* "ngxc:beat:<host>:<pid>:<msec>": this worker's heartbeat channel */
static char         ngx_http_container_beat_channel[sizeof("ngxc:beat:::")
                                                    + NGX_MAXHOSTNAMELEN
                                                    + 2 * NGX_INT64_LEN];
static ngx_event_t  ngx_http_container_beat_ev;
static ngx_msec_t   ngx_http_container_beat_sent;    /* 0: none on its way */
static ngx_uint_t   ngx_http_container_beat_on;      /* channel subscribed */
static ngx_uint_t   ngx_http_container_beat_refused; /* PUBLISH not allowed */

/* nginx's debug log reads a timer's data as a connection, for its fd */
static ngx_connection_t  ngx_http_container_beat_conn;


ngx_int_t
ngx_http_container_registry_init(ngx_cycle_t *cycle,
    ngx_http_container_registry_conf_t *rcf)
{
    u_char  *p;

    ngx_http_container_rcf = rcf;
    ngx_http_container_log = cycle->log;

    p = (u_char *) ngx_http_container_channel;

    if (rcf->db) {
        p = ngx_sprintf(p, NGX_HTTP_CONTAINER_CHANNEL ":%i", rcf->db);

    } else {
        p = ngx_cpymem(p, NGX_HTTP_CONTAINER_CHANNEL,
                       sizeof(NGX_HTTP_CONTAINER_CHANNEL) - 1);
    }

    *p = '\0';

    p = ngx_snprintf((u_char *) ngx_http_container_beat_channel,
                     sizeof(ngx_http_container_beat_channel) - 1,
                     NGX_HTTP_CONTAINER_BEAT_PREFIX "%V:%P:%M",
                     &cycle->hostname, ngx_pid, ngx_current_msec);
    *p = '\0';

    ngx_http_container_beat_ev.handler = ngx_http_container_beat_handler;
    ngx_http_container_beat_conn.fd = (ngx_socket_t) -1;
    ngx_http_container_beat_ev.data = &ngx_http_container_beat_conn;
    ngx_http_container_beat_ev.log = cycle->log;
    ngx_http_container_beat_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_container_beat_ev, NGX_HTTP_CONTAINER_BEAT);

    ngx_http_container_cmd.timer.handler = ngx_http_container_redis_timer;
    ngx_http_container_cmd.timer.data = &ngx_http_container_cmd;
    ngx_http_container_cmd.timer.log = cycle->log;
    ngx_http_container_cmd.timer.cancelable = 1;

    ngx_http_container_sub.timer.handler = ngx_http_container_redis_timer;
    ngx_http_container_sub.timer.data = &ngx_http_container_sub;
    ngx_http_container_sub.timer.log = cycle->log;
    ngx_http_container_sub.timer.cancelable = 1;

    /* a first failure only arms the reconnect timer: nginx starts anyway */

    (void) ngx_http_container_redis_connect(&ngx_http_container_cmd);
    (void) ngx_http_container_redis_connect(&ngx_http_container_sub);

    return NGX_OK;
}


void
ngx_http_container_registry_exit(void)
{
    ngx_uint_t                   i;
    redisAsyncContext           *ac;
    ngx_http_container_redis_t  *rd;

    if (ngx_http_container_beat_ev.timer_set) {
        ngx_del_timer(&ngx_http_container_beat_ev);
    }

    for (i = 0; i < 2; i++) {
        rd = i ? &ngx_http_container_sub : &ngx_http_container_cmd;

        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }

        if (rd->ac) {
            /* the callbacks still pending see a NULL reply */
            ac = rd->ac;
            rd->ac = NULL;
            ac->data = NULL;
            redisAsyncFree(ac);
        }
    }
}


ngx_uint_t
ngx_http_container_registry_up(void)
{
    return ngx_http_container_cmd.ac != NULL;
}


ngx_uint_t
ngx_http_container_registry_subscribed(void)
{
    return ngx_http_container_sub.subscribed;
}


static ngx_int_t
ngx_http_container_redis_connect(ngx_http_container_redis_t *rd)
{
    redisAsyncContext                   *ac;
    ngx_connection_t                    *c;
    ngx_http_container_registry_conf_t  *rcf;

    rcf = ngx_http_container_rcf;

    if (rcf->port) {
        ac = redisAsyncConnect((char *) rcf->host.data, rcf->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rcf->host.data);
    }

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry %V connection to "
                      "\"%V\" failed: %s", &rd->name, &rcf->name,
                      ac ? ac->errstr : "out of memory");

        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_add_timer(&rd->timer, NGX_HTTP_CONTAINER_RECONNECT);
        return NGX_ERROR;
    }

    /*
     * a Redis host that dies, or a firewall that forgets the connection,
     * sends nothing: TCP keepalive finds out (hiredis: 15s, then probes),
     * where no reply is awaited, as on the subscriber
     */

    if (rcf->port) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    c = ngx_get_connection(ac->c.fd, ngx_http_container_log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_add_timer(&rd->timer, NGX_HTTP_CONTAINER_RECONNECT);
        return NGX_ERROR;
    }

    c->data = rd;
    c->read->handler = ngx_http_container_redis_event_handler;
    c->write->handler = ngx_http_container_redis_event_handler;
    c->read->log = ngx_http_container_log;
    c->write->log = ngx_http_container_log;

    rd->ac = ac;
    rd->conn = c;
    rd->connected = 0;
    rd->subscribed = 0;
    rd->waiting = 0;

    ac->data = rd;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_container_redis_add_read;
    ac->ev.delRead = ngx_http_container_redis_del_read;
    ac->ev.addWrite = ngx_http_container_redis_add_write;
    ac->ev.delWrite = ngx_http_container_redis_del_write;
    ac->ev.cleanup = ngx_http_container_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_container_redis_connected);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_container_redis_disconnected);

    if (ngx_http_container_redis_setup(rd) != NGX_OK) {
        ngx_http_container_redis_lost(rd, "out of memory");
        return NGX_ERROR;
    }

    ngx_add_timer(&rd->timer, rcf->connect_timeout);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                   NGX_HTTP_CONTAINER_LOG "registry %V connecting, fd:%d",
                   &rd->name, ac->c.fd);

    return NGX_OK;
}


/*
 * The first commands of a connection, queued before any other, so hiredis
 * writes them as soon as the socket connects. Until AUTH and SELECT have
 * both answered, no claim is sent on the command connection: a claim
 * pipelined behind a SELECT that Redis refused would run in database 0.
 */

static ngx_int_t
ngx_http_container_redis_setup(ngx_http_container_redis_t *rd)
{
    u_char                               db[NGX_INT_T_LEN];
    size_t                               argvlen[2];
    const char                          *argv[2];
    redisAsyncContext                   *ac;
    ngx_http_container_registry_conf_t  *rcf;

    ac = rd->ac;
    rcf = ngx_http_container_rcf;

    rd->setup = 0;

    if (!rd->subscriber) {
        ngx_http_container_beat_refused = 0;
    }

    if (rcf->password.len) {
        argv[0] = "AUTH";
        argvlen[0] = sizeof("AUTH") - 1;
        argv[1] = (const char *) rcf->password.data;
        argvlen[1] = rcf->password.len;

        if (redisAsyncCommandArgv(ac, ngx_http_container_redis_setup_reply,
                                  rd, 2, argv, argvlen)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->setup++;
        ngx_http_container_redis_sent(rd);
    }

    if (rcf->db) {
        argv[0] = "SELECT";
        argvlen[0] = sizeof("SELECT") - 1;
        argv[1] = (const char *) db;
        argvlen[1] = ngx_sprintf(db, "%i", rcf->db) - db;

        if (redisAsyncCommandArgv(ac, ngx_http_container_redis_setup_reply,
                                  rd, 2, argv, argvlen)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }

        rd->setup++;
        ngx_http_container_redis_sent(rd);
    }

    /*
     * who is who in CLIENT LIST, for operators and for the tests; nothing
     * waits for its reply, so the reply watchdog does not count it
     */

    if (redisAsyncCommand(ac, ngx_http_container_redis_name_reply, rd,
                          "CLIENT SETNAME ngxc-gateway-%d-%s", (int) ngx_pid,
                          rd->subscriber ? "sub" : "cmd")
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (rd->subscriber) {
        ngx_http_container_beat_sent = 0;
        ngx_http_container_beat_on = 0;

        if (redisAsyncCommand(ac, ngx_http_container_message, rd,
                              "SUBSCRIBE %s", ngx_http_container_channel)
            != REDIS_OK
            || redisAsyncCommand(ac, ngx_http_container_beat_message, rd,
                                 "SUBSCRIBE %s",
                                 ngx_http_container_beat_channel)
               != REDIS_OK)
        {
            return NGX_ERROR;
        }

        /* each is confirmed in time, or the subscriber is given up */

        ngx_http_container_redis_sent(rd);
        ngx_http_container_redis_sent(rd);
    }

    return NGX_OK;
}


/*
 * The connection is gone or must go: hiredis frees the context (calling
 * every pending callback with a NULL reply), and a timer brings it back.
 */

static void
ngx_http_container_redis_lost(ngx_http_container_redis_t *rd,
    const char *why)
{
    redisAsyncContext  *ac;

    ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                  NGX_HTTP_CONTAINER_LOG "registry %V connection to \"%V\" "
                  "lost: %s", &rd->name, &ngx_http_container_rcf->name, why);

    ac = rd->ac;
    rd->ac = NULL;
    rd->connected = 0;
    rd->waiting = 0;

    if (rd->subscribed) {
        rd->subscribed = 0;
        ngx_http_container_subscribed(0);
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_add_timer(&rd->timer, NGX_HTTP_CONTAINER_RECONNECT);

    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }

    if (!rd->subscriber) {
        ngx_http_container_connected(0);
    }
}


static void
ngx_http_container_redis_timer(ngx_event_t *ev)
{
    ngx_http_container_redis_t  *rd = ev->data;

    if (rd->ac == NULL) {
        (void) ngx_http_container_redis_connect(rd);
        return;
    }

    if (!rd->connected) {
        ngx_http_container_redis_lost(rd, "connect timed out");
        return;
    }

    if (rd->waiting) {
        ngx_http_container_redis_lost(rd, "no reply in time");
    }
}


/*
 * The reply watchdog: a Redis that hangs, rather than refusing, would hold
 * every claim until the wake timeout. While replies are awaited on a
 * connected command connection, each must come within connect_timeout of
 * the one before; else the connection is given up, the held requests get
 * 503, and a new one is made.
 */

static void
ngx_http_container_redis_sent(ngx_http_container_redis_t *rd)
{
    if (rd->waiting++ == 0 && rd->connected && !rd->timer.timer_set) {
        ngx_add_timer(&rd->timer, ngx_http_container_rcf->connect_timeout);
    }
}


static void
ngx_http_container_redis_replied(ngx_http_container_redis_t *rd)
{
    if (rd->waiting == 0 || rd->ac == NULL) {
        /* a NULL reply of a connection given up already */
        return;
    }

    rd->waiting--;

    if (rd->connected) {
        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }

        if (rd->waiting) {
            ngx_add_timer(&rd->timer,
                          ngx_http_container_rcf->connect_timeout);
        }
    }
}


static void
ngx_http_container_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_http_container_redis_t  *rd = ac->data;

    if (rd == NULL) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context itself after this callback */
        rd->ac = NULL;
        ((redisAsyncContext *) ac)->data = NULL;

        ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry %V connection to "
                      "\"%V\" failed: %s", &rd->name,
                      &ngx_http_container_rcf->name, ac->errstr);

        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }

        ngx_add_timer(&rd->timer, NGX_HTTP_CONTAINER_RECONNECT);

        rd->waiting = 0;

        if (!rd->subscriber) {
            ngx_http_container_connected(0);
        }

        return;
    }

    rd->connected = 1;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->waiting) {
        ngx_add_timer(&rd->timer, ngx_http_container_rcf->connect_timeout);
    }

    ngx_log_error(NGX_LOG_INFO, ngx_http_container_log, 0,
                  NGX_HTTP_CONTAINER_LOG "registry %V connected to \"%V\"",
                  &rd->name, &ngx_http_container_rcf->name);
}


static void
ngx_http_container_redis_disconnected(const redisAsyncContext *ac,
    int status)
{
    ngx_http_container_redis_t  *rd = ac->data;

    if (rd == NULL) {
        return;
    }

    /* hiredis frees the context itself after this callback */

    ((redisAsyncContext *) ac)->data = NULL;
    rd->ac = NULL;

    ngx_http_container_redis_lost(rd, status == REDIS_OK
                                      ? "closed" : ac->errstr);
}


static void
ngx_http_container_redis_event_handler(ngx_event_t *ev)
{
    ngx_connection_t            *c;
    ngx_http_container_redis_t  *rd;

    c = ev->data;
    rd = c->data;

    if (rd->ac == NULL) {
        return;
    }

    if (ev->write) {
        redisAsyncHandleWrite(rd->ac);

    } else {
        redisAsyncHandleRead(rd->ac);
    }
}


/*
 * hiredis's event hooks. Level-triggered events: hiredis reads at most one
 * buffer a call, and an edge-triggered event would not fire again for the
 * rest. Adding or removing twice is harmless.
 */

static void
ngx_http_container_redis_add_read(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_container_redis_del_read(void *data)
{
    ngx_connection_t  *c = data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_container_redis_add_write(void *data)
{
    ngx_connection_t  *c = data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT);
    }
}


static void
ngx_http_container_redis_del_write(void *data)
{
    ngx_connection_t  *c = data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis closes the socket itself, right after this */

static void
ngx_http_container_redis_cleanup(void *data)
{
    ngx_connection_t            *c = data;
    ngx_http_container_redis_t  *rd;

    rd = c->data;

    ngx_http_container_redis_del_read(c);
    ngx_http_container_redis_del_write(c);

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (rd->conn == c) {
        rd->conn = NULL;
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


static void
ngx_http_container_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *data)
{
    ngx_http_container_redis_t *rd = data;

    u_char      why[128], *p;
    redisReply  *reply = r;

    if (reply == NULL || rd->ac != ac) {
        /* a connection given up already */
        return;
    }

    ngx_http_container_redis_replied(rd);

    if (reply->type == REDIS_REPLY_ERROR) {
        p = ngx_snprintf(why, sizeof(why) - 1, "AUTH or SELECT refused: %*s",
                         (size_t) reply->len, reply->str);
        *p = '\0';

        ngx_http_container_redis_lost(rd, (const char *) why);
        return;
    }

    if (--rd->setup == 0 && !rd->subscriber) {
        ngx_http_container_connected(1);
    }
}


/* a name is only for people: a Redis that refuses CLIENT is still used */

static void
ngx_http_container_redis_name_reply(redisAsyncContext *ac, void *r,
    void *data)
{
    ngx_http_container_redis_t *rd = data;

    redisReply  *reply = r;

    if (reply == NULL || rd->ac != ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry %V connection: "
                      "CLIENT SETNAME failed: %*s", &rd->name,
                      (size_t) reply->len, reply->str);
    }
}


ngx_int_t
ngx_http_container_registry_claim(ngx_http_container_node_t *node,
    ngx_msec_t wake_timeout)
{
    int                 rc;
    u_char              timeout[NGX_INT_T_LEN];
    size_t              argvlen[5];
    const char         *argv[5];
    redisAsyncContext  *ac;

    ac = ngx_http_container_cmd.ac;

    if (ac == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_http_container_cmd.setup) {
        /* sent by ngx_http_container_connected() once AUTH, SELECT answer */
        return NGX_AGAIN;
    }

    argv[0] = "EVAL";
    argvlen[0] = sizeof("EVAL") - 1;
    argv[1] = ngx_http_container_claim_script;
    argvlen[1] = sizeof(ngx_http_container_claim_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) node->sn.str.data;
    argvlen[3] = node->sn.str.len;
    argv[4] = (const char *) timeout;
    argvlen[4] = ngx_sprintf(timeout, "%M",
                             ngx_http_container_claim_ms(wake_timeout))
                 - timeout;

    rc = redisAsyncCommandArgv(ac, ngx_http_container_claim_reply, node, 5,
                               argv, argvlen);
    if (rc != REDIS_OK) {
        return NGX_ERROR;
    }

    ngx_http_container_redis_sent(&ngx_http_container_cmd);

    return NGX_OK;
}


/*
 * how long a claim lasts: a launcher needs a moment to take the wake,
 * however short the wait of the requests
 */

static ngx_msec_t
ngx_http_container_claim_ms(ngx_msec_t wake_timeout)
{
    return ngx_max(wake_timeout, NGX_HTTP_CONTAINER_CLAIM_MIN);
}


static void
ngx_http_container_claim_reply(redisAsyncContext *ac, void *r, void *data)
{
    ngx_http_container_node_t *node = data;

    ngx_str_t    status, gen, arg, error;
    redisReply  *reply = r;

    ngx_str_null(&status);
    ngx_str_null(&gen);
    ngx_str_null(&arg);
    ngx_str_null(&error);

    ngx_http_container_redis_replied(&ngx_http_container_cmd);

    if (reply == NULL) {
        ngx_str_set(&error, "connection lost");
        goto done;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        error.len = reply->len;
        error.data = (u_char *) reply->str;
        goto done;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_str_set(&error, "unexpected reply to the claim script");
        goto done;
    }

    status.len = reply->element[0]->len;
    status.data = (u_char *) reply->element[0]->str;
    gen.len = reply->element[1]->len;
    gen.data = (u_char *) reply->element[1]->str;

    /* the address of a ready instance, or the state of the record */

    if (reply->elements > 2
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        arg.len = reply->element[2]->len;
        arg.data = (u_char *) reply->element[2]->str;
    }

    if (status.len != sizeof("claimed") - 1
        || ngx_strncmp(status.data, "claimed", status.len) != 0)
    {
        goto done;
    }

    /* this gateway won the claim: ask for the wake, once */

    if (ngx_http_container_wake(ac, node, &gen) != NGX_OK) {
        ngx_str_set(&error, "wake request not sent");
    }

done:

    ngx_http_container_claim_done(node, &status, &gen, &arg, &error);
}


/* RPUSH {"class": ..., "id": ..., "gen": N} on the class's wake list */

static ngx_int_t
ngx_http_container_wake(redisAsyncContext *ac,
    ngx_http_container_node_t *node, ngx_str_t *gen)
{
    int          rc;
    char        *text;
    u_char       key[sizeof(NGX_HTTP_CONTAINER_KEY_WAKE)
                     + NGX_HTTP_CONTAINER_CLASS_MAX];
    u_char       ttl[NGX_INT_T_LEN];
    cJSON       *json;
    size_t       argvlen[3];
    ngx_int_t    n;
    const char  *argv[3];

    n = ngx_atoi(gen->data, gen->len);
    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    json = cJSON_CreateObject();
    if (json == NULL) {
        return NGX_ERROR;
    }

    text = NULL;

    if (cJSON_AddStringToObject(json, "class", node->class_z) == NULL
        || cJSON_AddStringToObject(json, "id", node->id_z) == NULL
        || cJSON_AddNumberToObject(json, "gen", (double) n) == NULL)
    {
        goto failed;
    }

    text = cJSON_PrintUnformatted(json);
    if (text == NULL) {
        goto failed;
    }

    argv[0] = "RPUSH";
    argvlen[0] = sizeof("RPUSH") - 1;
    argv[1] = (const char *) key;
    argvlen[1] = ngx_sprintf(key, NGX_HTTP_CONTAINER_KEY_WAKE "%V",
                             &node->class)
                 - key;
    argv[2] = text;
    argvlen[2] = ngx_strlen(text);

    rc = redisAsyncCommandArgv(ac, ngx_http_container_wake_reply, NULL, 3,
                               argv, argvlen);

    if (rc == REDIS_OK) {
        ngx_http_container_redis_sent(&ngx_http_container_cmd);

        /*
         * a wake that no launcher popped within its claim's time is stale:
         * a list that nothing pops (a class that no launcher serves) goes
         * a minute after its last push, rather than growing for ever
         */

        argv[0] = "PEXPIRE";
        argvlen[0] = sizeof("PEXPIRE") - 1;
        argv[2] = (const char *) ttl;
        argvlen[2] = ngx_sprintf(ttl, "%M",
                                 ngx_http_container_claim_ms(
                                     node->wake_timeout)
                                 + NGX_HTTP_CONTAINER_WAKE_TTL)
                     - ttl;

        if (redisAsyncCommandArgv(ac, NULL, NULL, 3, argv, argvlen)
            != REDIS_OK)
        {
            rc = REDIS_ERR;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                   NGX_HTTP_CONTAINER_LOG "wake asked: %*s",
                   argvlen[2], text);

    cJSON_free(text);
    cJSON_Delete(json);

    return rc == REDIS_OK ? NGX_OK : NGX_ERROR;

failed:

    cJSON_Delete(json);
    return NGX_ERROR;
}


static void
ngx_http_container_wake_reply(redisAsyncContext *ac, void *r, void *data)
{
    redisReply  *reply = r;

    ngx_http_container_redis_replied(&ngx_http_container_cmd);

    /*
     * a wake request that is lost leaves the record "waking" until its
     * deadline; the held requests time out, and the next one claims again
     */

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry RPUSH of a wake "
                      "request failed: %*s", (size_t) reply->len,
                      reply->str);
    }
}


void
ngx_http_container_registry_touch(ngx_http_container_node_t *node)
{
    size_t              argvlen[4];
    const char         *argv[4];
    redisAsyncContext  *ac;

    ac = ngx_http_container_cmd.ac;

    if (ac == NULL || ngx_http_container_cmd.setup) {
        return;
    }

    argv[0] = "EVAL";
    argvlen[0] = sizeof("EVAL") - 1;
    argv[1] = ngx_http_container_touch_script;
    argvlen[1] = sizeof(ngx_http_container_touch_script) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) node->sn.str.data;
    argvlen[3] = node->sn.str.len;

    (void) redisAsyncCommandArgv(ac, NULL, NULL, 4, argv, argvlen);
}


static void
ngx_http_container_message(redisAsyncContext *ac, void *r, void *data)
{
    ngx_http_container_redis_t *rd = data;

    ngx_str_t    kind, class, id, state, addr, reason;
    cJSON       *json, *gen;
    redisReply  *reply = r;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry SUBSCRIBE failed: "
                      "%*s", (size_t) reply->len, reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind.len = reply->element[0]->len;
    kind.data = (u_char *) reply->element[0]->str;

    if (kind.len == sizeof("subscribe") - 1
        && ngx_strncmp(kind.data, "subscribe", kind.len) == 0)
    {
        if (rd->ac != ac) {
            return;
        }

        ngx_http_container_redis_replied(rd);

        rd->subscribed = 1;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                       NGX_HTTP_CONTAINER_LOG "registry subscribed");

        ngx_http_container_subscribed(1);
        return;
    }

    if (kind.len != sizeof("message") - 1
        || ngx_strncmp(kind.data, "message", kind.len) != 0
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    json = cJSON_ParseWithLength(reply->element[2]->str,
                                 reply->element[2]->len);
    if (json == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "event on \"%s\" is not JSON, "
                      "ignored", ngx_http_container_channel);
        return;
    }

    gen = cJSON_GetObjectItemCaseSensitive(json, "gen");

    if (ngx_http_container_json_str(json, "class", &class) != NGX_OK
        || ngx_http_container_json_str(json, "id", &id) != NGX_OK
        || ngx_http_container_json_str(json, "state", &state) != NGX_OK
        || !cJSON_IsNumber(gen) || !(gen->valuedouble >= 0)
        || gen->valuedouble >= NGX_HTTP_CONTAINER_GEN_MAX)
    {
        /* a generation past 2^53 is not exact, nor one that Lua writes */

        ngx_log_error(NGX_LOG_WARN, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "event on \"%s\" lacks class, "
                      "id, state or a valid gen, ignored",
                      ngx_http_container_channel);
        cJSON_Delete(json);
        return;
    }

    if (ngx_http_container_json_str(json, "addr", &addr) != NGX_OK) {
        ngx_str_null(&addr);
    }

    if (ngx_http_container_json_str(json, "reason", &reason) != NGX_OK) {
        ngx_str_null(&reason);
    }

    ngx_http_container_event(&class, &id, (uint64_t) gen->valuedouble,
                             &state, &addr, &reason);

    cJSON_Delete(json);
}


static ngx_int_t
ngx_http_container_json_str(void *json, const char *name, ngx_str_t *s)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(json, name);

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return NGX_DECLINED;
    }

    s->data = (u_char *) item->valuestring;
    s->len = ngx_strlen(item->valuestring);

    return NGX_OK;
}


/*
 * Every NGX_HTTP_CONTAINER_BEAT: a heartbeat not back within
 * connect_timeout gives the subscriber up (it reconnects, and the worker
 * forgets its cached addresses and claims again for its held requests, as
 * after any lost subscription); else the next one is published.
 */

static void
ngx_http_container_beat_handler(ngx_event_t *ev)
{
    size_t                       argvlen[3];
    ngx_uint_t                   checked;
    const char                  *argv[3];
    ngx_http_container_redis_t  *cmd, *sub;

    cmd = &ngx_http_container_cmd;
    sub = &ngx_http_container_sub;

    ngx_add_timer(ev, NGX_HTTP_CONTAINER_BEAT);

    checked = (sub->ac != NULL && sub->subscribed
               && ngx_http_container_beat_on);

    if (!checked) {
        ngx_http_container_beat_sent = 0;

    } else if (ngx_http_container_beat_sent) {
        if (ngx_current_msec - ngx_http_container_beat_sent
            >= ngx_http_container_rcf->connect_timeout)
        {
            ngx_http_container_redis_lost(sub, "no heartbeat in time");
        }

        return;
    }

    /*
     * sent while nothing is subscribed too: its reply, awaited, is what
     * tells an idle command connection that went silent
     */

    if (cmd->ac == NULL || cmd->setup || ngx_http_container_beat_refused) {
        return;
    }

    argv[0] = "PUBLISH";
    argvlen[0] = sizeof("PUBLISH") - 1;
    argv[1] = ngx_http_container_beat_channel;
    argvlen[1] = ngx_strlen(ngx_http_container_beat_channel);
    argv[2] = "beat";
    argvlen[2] = sizeof("beat") - 1;

    if (redisAsyncCommandArgv(cmd->ac, ngx_http_container_beat_reply, NULL,
                              3, argv, argvlen)
        != REDIS_OK)
    {
        return;
    }

    ngx_http_container_redis_sent(cmd);

    if (checked) {
        /* ngx_current_msec is never 0 in a running worker */
        ngx_http_container_beat_sent = ngx_current_msec;
    }
}


/* PUBLISH answers how many heard it: none means Redis dropped our SUBSCRIBE */

static void
ngx_http_container_beat_reply(redisAsyncContext *ac, void *r, void *data)
{
    redisReply  *reply = r;

    ngx_http_container_redis_replied(&ngx_http_container_cmd);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {

        /*
         * an ACL without PUBLISH: no heartbeat, rather than a subscriber
         * given up every second; the command connection's next setup
         * tries again
         */

        ngx_log_error(NGX_LOG_WARN, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry heartbeat PUBLISH "
                      "refused, the subscriber goes unchecked: %*s",
                      (size_t) reply->len, reply->str);

        ngx_http_container_beat_refused = 1;
        ngx_http_container_beat_sent = 0;
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 0 || ngx_http_container_sub.ac == NULL
        || !ngx_http_container_beat_sent)
    {
        return;
    }

    ngx_http_container_redis_lost(&ngx_http_container_sub,
                                  "no longer subscribed");
}


static void
ngx_http_container_beat_message(redisAsyncContext *ac, void *r, void *data)
{
    ngx_http_container_redis_t *rd = data;

    redisReply  *reply = r;

    if (reply == NULL || rd->ac != ac
        || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (reply->element[0]->len == sizeof("subscribe") - 1
        && ngx_strncmp(reply->element[0]->str, "subscribe",
                       sizeof("subscribe") - 1)
           == 0)
    {
        ngx_http_container_redis_replied(rd);
        ngx_http_container_beat_on = 1;
        return;
    }

    ngx_http_container_beat_sent = 0;
}
