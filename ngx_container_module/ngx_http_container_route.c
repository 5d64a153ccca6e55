
/*
 * Routing a request to its instance. Each worker keeps a table of the IDs
 * it has seen (one node per class and ID): the address when it is known and
 * trusted, the requests held while the instance wakes, the count of
 * requests in flight. A known address serves the request with no registry
 * round trip; the events channel says when one stops being valid.
 */


#include "ngx_http_container.h"


static ngx_http_container_node_t *ngx_http_container_node(ngx_str_t *class,
    ngx_str_t *id, ngx_uint_t create, ngx_log_t *log);
static void ngx_http_container_node_evict(void);
static u_char *ngx_http_container_escape(u_char *dst, u_char *src,
    size_t len);
static ngx_int_t ngx_http_container_node_addr(ngx_http_container_node_t *node,
    ngx_str_t *addr);
static ngx_int_t ngx_http_container_claim(ngx_http_container_node_t *node,
    ngx_msec_t wake_timeout);
static void ngx_http_container_reclaim(ngx_http_container_node_t *node);
static void ngx_http_container_forward(ngx_http_container_ctx_t *ctx,
    ngx_http_container_cache_e cache);
static void ngx_http_container_resume_all(ngx_http_container_node_t *node,
    ngx_http_container_cache_e cache);
static void ngx_http_container_fail_all(ngx_http_container_node_t *node,
    ngx_int_t status, const char *why, ngx_str_t *reason);
static void ngx_http_container_fail(ngx_http_container_ctx_t *ctx,
    ngx_int_t status, const char *retry);
static void ngx_http_container_post(ngx_http_container_ctx_t *ctx);
static void ngx_http_container_resume_handler(ngx_event_t *ev);
static void ngx_http_container_timeout_handler(ngx_event_t *ev);
static void ngx_http_container_touch_handler(ngx_event_t *ev);
static void ngx_http_container_cleanup(void *data);


static ngx_rbtree_t        ngx_http_container_tree;
static ngx_rbtree_node_t   ngx_http_container_sentinel;
static ngx_queue_t         ngx_http_container_lru;
static ngx_queue_t         ngx_http_container_touches;
static ngx_queue_t         ngx_http_container_resumes;
static ngx_uint_t          ngx_http_container_nodes;
static ngx_event_t         ngx_http_container_touch_ev;
static ngx_event_t         ngx_http_container_resume_ev;
static ngx_pool_t         *ngx_http_container_pool;
static ngx_log_t          *ngx_http_container_log;

/* nginx's debug log reads a timer's data as a connection, for its fd */
static ngx_connection_t    ngx_http_container_dummy;


ngx_int_t
ngx_http_container_route_init(ngx_cycle_t *cycle)
{
    ngx_http_container_log = cycle->log;

    /* scratch memory for parsing addresses, reset after each use */

    ngx_http_container_pool = ngx_create_pool(1024, cycle->log);
    if (ngx_http_container_pool == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&ngx_http_container_tree, &ngx_http_container_sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_queue_init(&ngx_http_container_lru);
    ngx_queue_init(&ngx_http_container_touches);
    ngx_queue_init(&ngx_http_container_resumes);

    ngx_http_container_dummy.fd = (ngx_socket_t) -1;

    ngx_http_container_touch_ev.handler = ngx_http_container_touch_handler;
    ngx_http_container_touch_ev.data = &ngx_http_container_dummy;
    ngx_http_container_touch_ev.log = cycle->log;
    ngx_http_container_touch_ev.cancelable = 1;

    ngx_http_container_resume_ev.handler = ngx_http_container_resume_handler;
    ngx_http_container_resume_ev.data = &ngx_http_container_dummy;
    ngx_http_container_resume_ev.log = cycle->log;

    ngx_add_timer(&ngx_http_container_touch_ev, NGX_HTTP_CONTAINER_TOUCH);

    return NGX_OK;
}


void
ngx_http_container_route_exit(void)
{
    ngx_queue_t                *q;
    ngx_http_container_node_t  *node;

    while (!ngx_queue_empty(&ngx_http_container_lru)) {
        q = ngx_queue_head(&ngx_http_container_lru);
        node = ngx_queue_data(q, ngx_http_container_node_t, lru);

        ngx_queue_remove(q);
        ngx_free(node);
    }

    if (ngx_http_container_pool) {
        ngx_destroy_pool(ngx_http_container_pool);
        ngx_http_container_pool = NULL;
    }
}


ngx_int_t
ngx_http_container_handler(ngx_http_request_t *r)
{
    ngx_str_t                       id;
    ngx_pool_cleanup_t             *cln;
    ngx_http_container_ctx_t       *ctx;
    ngx_http_container_node_t      *node;
    ngx_http_container_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_container_module);

    if (clcf->class.len == 0) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_container_module);

    if (ctx) {
        if (!ctx->done) {
            /* an unrelated event of the connection: keep holding */
            return NGX_AGAIN;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       NGX_HTTP_CONTAINER_LOG "resumed addr:\"%V\" "
                       "status:%i", &ctx->addr, ctx->status);

        return ctx->status == NGX_OK ? NGX_DECLINED : ctx->status;
    }

    if (ngx_http_complex_value(r, clcf->id, &id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the context first, so that $container_id shows a refused ID too */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_container_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_container_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->id = id;

    ngx_http_set_ctx(r, ctx, ngx_http_container_module);

    /* the ID is data only, but it goes into keys, JSON and C strings */

    if (id.len == 0 || id.len > NGX_HTTP_CONTAINER_ID_MAX
        || ngx_strlchr(id.data, id.data + id.len, '\0'))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      NGX_HTTP_CONTAINER_LOG "invalid object id for class "
                      "\"%V\": %s", &clcf->class,
                      id.len == 0 ? "empty"
                      : id.len > NGX_HTTP_CONTAINER_ID_MAX ? "too long"
                      : "has a NUL byte");

        ngx_http_container_fail(ctx, NGX_HTTP_BAD_REQUEST, NULL);
        return ctx->status;
    }

    node = ngx_http_container_node(&clcf->class, &id, 1, r->connection->log);
    if (node == NULL) {
        ngx_http_container_fail(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return ctx->status;
    }

    ctx->node = node;

    if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
        ngx_http_container_forward(ctx, NGX_HTTP_CONTAINER_CACHE_HIT);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       NGX_HTTP_CONTAINER_LOG "hit id:\"%V\" addr:\"%V\"",
                       &node->log_id, &ctx->addr);

        ctx->done = 1;
        return NGX_DECLINED;
    }

    if (!ngx_http_container_registry_up()) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry unavailable, class "
                      "\"%V\" id \"%V\"", &clcf->class, &node->log_id);

        ngx_http_container_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                NGX_HTTP_CONTAINER_RETRY_DOWN);
        return ctx->status;
    }

    if (node->state == NGX_HTTP_CONTAINER_NODE_IDLE
        || (node->state == NGX_HTTP_CONTAINER_NODE_WAITING
            && (ngx_msec_int_t) (ngx_current_msec - node->deadline) >= 0))
    {
        if (ngx_http_container_claim(node, clcf->wake_timeout) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          NGX_HTTP_CONTAINER_LOG "registry claim not sent, "
                          "class \"%V\" id \"%V\"", &clcf->class,
                          &node->log_id);

            ngx_http_container_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_HTTP_CONTAINER_RETRY_DOWN);
            return ctx->status;
        }
    }

    /* hold the request until the registry answers or the timer fires */

    ngx_queue_insert_tail(&node->waiters, &ctx->queue);
    ctx->queued = 1;

    ctx->timer.handler = ngx_http_container_timeout_handler;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;

    ngx_add_timer(&ctx->timer, clcf->wake_timeout);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   NGX_HTTP_CONTAINER_LOG "holding id:\"%V\" state:%d",
                   &node->log_id, node->state);

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_container_claim(ngx_http_container_node_t *node,
    ngx_msec_t wake_timeout)
{
    ngx_int_t  rc;

    /*
     * one claim of a node at a time: the reply of the one on its way
     * decides for every request held meanwhile, and claims again if the
     * events since make it stale; a node is never evicted with a reply due
     */

    if (node->busy) {
        return NGX_OK;
    }

    rc = ngx_http_container_registry_claim(node, wake_timeout);

    if (rc != NGX_OK && rc != NGX_AGAIN) {
        return NGX_ERROR;
    }

    node->wake_timeout = wake_timeout;
    node->deadline = ngx_current_msec + wake_timeout;

    if (rc == NGX_AGAIN) {
        /* the connection is being set up: ngx_http_container_connected() */
        node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
        return NGX_OK;
    }

    node->state = NGX_HTTP_CONTAINER_NODE_CLAIMING;
    node->busy = 1;
    node->claim_gen = node->gen;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                   NGX_HTTP_CONTAINER_LOG "claim class:\"%V\" id:\"%V\"",
                   &node->class, &node->log_id);

    return NGX_OK;
}


/*
 * The held requests are claimed again: the registry's answer is older
 * than what the events said since, or the instance they waited for has
 * stopped. A registry whose records and events keep disagreeing cannot
 * hold them for ever.
 */

static void
ngx_http_container_reclaim(ngx_http_container_node_t *node)
{
    if (++node->reclaims > NGX_HTTP_CONTAINER_RECLAIMS) {
        ngx_http_container_fail_all(node, NGX_HTTP_BAD_GATEWAY,
                                    "registry record and events disagree",
                                    NULL);
        return;
    }

    if (ngx_http_container_claim(node, node->wake_timeout) != NGX_OK) {
        ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "registry claim not sent", NULL);
    }
}


/*
 * The registry answered a claim ("The registry protocol", README.md):
 * "ready" with the address, or "waiting"/"claimed" with the state of the
 * record ("waking", "starting", "stopping"). Events about the same
 * generation may have come before the reply, on the other connection.
 */

void
ngx_http_container_claim_done(ngx_http_container_node_t *node,
    ngx_str_t *status, ngx_str_t *gen, ngx_str_t *arg, ngx_str_t *error)
{
    ngx_int_t   n;
    ngx_uint_t  stopping;

    node->busy = 0;

    if (node->state == NGX_HTTP_CONTAINER_NODE_CLAIMING) {
        node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
    }

    if (error->len) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry claim for class "
                      "\"%V\" id \"%V\" failed: %V", &node->class,
                      &node->log_id, error);

        ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NULL, NULL);
        return;
    }

    n = ngx_atoi(gen->data, gen->len);
    if (n == NGX_ERROR) {
        ngx_http_container_fail_all(node, NGX_HTTP_BAD_GATEWAY,
                                    "bad generation in registry", gen);
        return;
    }

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                   NGX_HTTP_CONTAINER_LOG "%V class:\"%V\" id:\"%V\" gen:%i "
                   "known:%uL", status, &node->class, &node->log_id, n,
                   node->gen);

    /*
     * The record's generation only grows, so a claim answers at least the
     * generation known when it was sent. Less means the registry lost the
     * record since (a flush, a restart without persistence, an expiry, a
     * hand's DEL): its answer is the truth now, else the ID would be
     * claimed again and again, each answer taken as stale.
     */

    if ((uint64_t) n < node->claim_gen) {
        ngx_log_error(NGX_LOG_WARN, ngx_http_container_log, 0,
                      NGX_HTTP_CONTAINER_LOG "registry generation of class "
                      "\"%V\" id \"%V\" went back from %uL to %i: the "
                      "record was lost", &node->class, &node->log_id,
                      node->gen, n);

        node->gen = n;
        node->gen_state = NGX_HTTP_CONTAINER_GEN_LIVE;

        if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
            node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
        }
    }

    if (status->len == sizeof("ready") - 1
        && ngx_strncmp(status->data, "ready", status->len) == 0)
    {
        if ((uint64_t) n < node->gen
            || ((uint64_t) n == node->gen
                && node->gen_state != NGX_HTTP_CONTAINER_GEN_LIVE))
        {
            /* it was ready, and has been put to sleep since */
            ngx_http_container_reclaim(node);
            return;
        }

        if (ngx_http_container_node_addr(node, arg) != NGX_OK) {
            /* ngx_http_container_node_addr() said why */
            ngx_http_container_fail_all(node, NGX_HTTP_BAD_GATEWAY, NULL,
                                        NULL);
            return;
        }

        node->gen = n;
        node->gen_state = NGX_HTTP_CONTAINER_GEN_LIVE;

        /* without the events channel nobody would say it went stale */

        if (ngx_http_container_registry_subscribed()) {
            node->state = NGX_HTTP_CONTAINER_NODE_READY;
        }

        ngx_http_container_resume_all(node, NGX_HTTP_CONTAINER_CACHE_WARM);
        return;
    }

    /* "waiting" or "claimed": held until an event says how it went */

    stopping = (arg->len == sizeof("stopping") - 1
                && ngx_strncmp(arg->data, "stopping", arg->len) == 0);

    if ((uint64_t) n > node->gen) {
        node->gen = n;
        node->gen_state = stopping ? NGX_HTTP_CONTAINER_GEN_STOPPING
                                   : NGX_HTTP_CONTAINER_GEN_LIVE;
        node->state = NGX_HTTP_CONTAINER_NODE_WAITING;
        return;
    }

    if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
        /* its "ready" came first */
        ngx_http_container_resume_all(node, NGX_HTTP_CONTAINER_CACHE_COLD);
        return;
    }

    if (node->gen_state == NGX_HTTP_CONTAINER_GEN_FAILED) {
        ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    "wake failed", NULL);
        return;
    }

    if ((uint64_t) n == node->gen
        && (node->gen_state == NGX_HTTP_CONTAINER_GEN_LIVE
            || (node->gen_state == NGX_HTTP_CONTAINER_GEN_STOPPING
                && stopping)))
    {
        node->state = NGX_HTTP_CONTAINER_NODE_WAITING;
        return;
    }

    /* what the reply waits for has ended already */

    ngx_http_container_reclaim(node);
}


/* an event on the channel: a state change of one instance */

void
ngx_http_container_event(ngx_str_t *class, ngx_str_t *id, uint64_t gen,
    ngx_str_t *state, ngx_str_t *addr, ngx_str_t *reason)
{
    ngx_http_container_node_t  *node;

    if (id->len == 0 || id->len > NGX_HTTP_CONTAINER_ID_MAX
        || class->len == 0 || class->len > NGX_HTTP_CONTAINER_CLASS_MAX)
    {
        return;
    }

    node = ngx_http_container_node(class, id, 0, ngx_http_container_log);

    if (node == NULL) {
        return;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_http_container_log, 0,
                   NGX_HTTP_CONTAINER_LOG "event class:\"%V\" id:\"%V\" "
                   "gen:%uL state:%V", class, &node->log_id, gen, state);

    if (gen < node->gen) {
        return;
    }

    if (gen > node->gen) {
        node->gen = gen;
        node->gen_state = NGX_HTTP_CONTAINER_GEN_LIVE;
    }

    if (state->len == sizeof("ready") - 1
        && ngx_strncmp(state->data, "ready", state->len) == 0)
    {
        if (ngx_http_container_node_addr(node, addr) != NGX_OK) {
            if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
                node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
            }

            ngx_http_container_fail_all(node, NGX_HTTP_BAD_GATEWAY, NULL,
                                        NULL);
            return;
        }

        node->gen_state = NGX_HTTP_CONTAINER_GEN_LIVE;
        node->state = NGX_HTTP_CONTAINER_NODE_READY;
        ngx_http_container_resume_all(node, NGX_HTTP_CONTAINER_CACHE_COLD);
        return;
    }

    /* stopping, stopped, failed: the address is no longer to be used */

    if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
        node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
    }

    if (state->len == sizeof("stopping") - 1
        && ngx_strncmp(state->data, "stopping", state->len) == 0)
    {
        /* the requests held meanwhile wait for it to be gone */
        node->gen_state = NGX_HTTP_CONTAINER_GEN_STOPPING;
        return;
    }

    if (node->state == NGX_HTTP_CONTAINER_NODE_WAITING) {
        node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
    }

    if (state->len == sizeof("stopped") - 1
        && ngx_strncmp(state->data, "stopped", state->len) == 0)
    {
        /* at most one instance of an ID: the next may start only now */

        node->gen_state = NGX_HTTP_CONTAINER_GEN_STOPPED;

        if (!node->busy && !ngx_queue_empty(&node->waiters)) {
            ngx_http_container_reclaim(node);
        }

        return;
    }

    node->gen_state = NGX_HTTP_CONTAINER_GEN_FAILED;

    ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "wake failed", reason);
}


/*
 * The events channel came (on) or went (off). Without it no cached
 * address can be trusted; once back, the held requests are claimed again,
 * since their "ready" may have been published while nobody listened.
 */

void
ngx_http_container_subscribed(ngx_uint_t on)
{
    ngx_queue_t                *q;
    ngx_http_container_node_t  *node;

    for (q = ngx_queue_head(&ngx_http_container_lru);
         q != ngx_queue_sentinel(&ngx_http_container_lru);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_container_node_t, lru);

        if (!on) {
            if (node->state == NGX_HTTP_CONTAINER_NODE_READY) {
                node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
            }

            continue;
        }

        if (ngx_queue_empty(&node->waiters)) {
            continue;
        }

        /* a node with a claim on its way waits for its reply instead */

        if (ngx_http_container_claim(node, node->wake_timeout) != NGX_OK) {
            ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "registry claim not sent", NULL);
        }
    }
}


/*
 * The command connection is set up (on: AUTH and SELECT answered) or gone
 * (off). The claims kept back while it was being set up are sent now, or
 * their requests get 503 at once, as they would have without a connection.
 */

void
ngx_http_container_connected(ngx_uint_t on)
{
    ngx_queue_t                *q;
    ngx_http_container_node_t  *node;

    for (q = ngx_queue_head(&ngx_http_container_lru);
         q != ngx_queue_sentinel(&ngx_http_container_lru);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_container_node_t, lru);

        if (node->busy || node->state != NGX_HTTP_CONTAINER_NODE_IDLE
            || ngx_queue_empty(&node->waiters))
        {
            continue;
        }

        if (on
            && ngx_http_container_claim(node, node->wake_timeout) == NGX_OK)
        {
            continue;
        }

        ngx_http_container_fail_all(node, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NULL, NULL);
    }
}


/* the instance refused or broke a connection: ask the registry next time */

void
ngx_http_container_peer_failed(ngx_http_container_ctx_t *ctx)
{
    ngx_http_container_node_t  *node;

    node = ctx->node;

    if (node == NULL || node->state != NGX_HTTP_CONTAINER_NODE_READY) {
        return;
    }

    if (ngx_cmp_sockaddr(&node->sockaddr.sockaddr, node->socklen,
                         &ctx->sockaddr.sockaddr, ctx->socklen, 1)
        == NGX_OK)
    {
        node->state = NGX_HTTP_CONTAINER_NODE_IDLE;
    }
}


static void
ngx_http_container_forward(ngx_http_container_ctx_t *ctx,
    ngx_http_container_cache_e cache)
{
    ngx_http_container_node_t  *node;

    node = ctx->node;

    ngx_memcpy(&ctx->sockaddr, &node->sockaddr, node->socklen);
    ctx->socklen = node->socklen;

    ngx_memcpy(ctx->addr_data, node->addr.data, node->addr.len);
    ctx->addr.len = node->addr.len;
    ctx->addr.data = ctx->addr_data;

    ctx->cache = cache;
    ctx->status = NGX_OK;

    /* in flight until the request ends: it keeps the instance awake */

    if (!ctx->counted) {
        ctx->counted = 1;
        node->inflight++;
    }

    if (!node->in_touch) {
        node->in_touch = 1;
        ngx_queue_insert_tail(&ngx_http_container_touches, &node->touch);
    }

    ngx_queue_remove(&node->lru);
    ngx_queue_insert_head(&ngx_http_container_lru, &node->lru);
}


static void
ngx_http_container_resume_all(ngx_http_container_node_t *node,
    ngx_http_container_cache_e cache)
{
    ngx_queue_t               *q;
    ngx_http_container_ctx_t  *ctx;

    node->reclaims = 0;

    while (!ngx_queue_empty(&node->waiters)) {
        q = ngx_queue_head(&node->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_container_ctx_t, queue);
        ctx->queued = 0;

        ngx_http_container_forward(ctx, cache);
        ngx_http_container_post(ctx);
    }
}


static void
ngx_http_container_fail_all(ngx_http_container_node_t *node,
    ngx_int_t status, const char *why, ngx_str_t *reason)
{
    u_char                     buf[NGX_HTTP_CONTAINER_LOG_ID_MAX * 4];
    ngx_str_t                  text;
    ngx_queue_t               *q;
    ngx_http_container_ctx_t  *ctx;

    node->reclaims = 0;

    /* the reason comes from the registry: escaped like an ID */

    text.data = buf;
    text.len = 0;

    if (reason) {
        text.len = ngx_http_container_escape(buf, reason->data,
                       ngx_min(reason->len, NGX_HTTP_CONTAINER_LOG_ID_MAX))
                   - buf;
    }

    while (!ngx_queue_empty(&node->waiters)) {
        q = ngx_queue_head(&node->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_container_ctx_t, queue);
        ctx->queued = 0;

        if (why && reason && reason->len) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          NGX_HTTP_CONTAINER_LOG "%s, class \"%V\" id "
                          "\"%V\": \"%*s\"", why, &node->class,
                          &node->log_id, text.len, text.data);

        } else if (why) {
            ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                          NGX_HTTP_CONTAINER_LOG "%s, class \"%V\" id "
                          "\"%V\"", why, &node->class, &node->log_id);
        }

        ngx_http_container_fail(ctx, status,
                                status == NGX_HTTP_SERVICE_UNAVAILABLE
                                ? (why ? NGX_HTTP_CONTAINER_RETRY_WAKE
                                       : NGX_HTTP_CONTAINER_RETRY_DOWN)
                                : NULL);
        ngx_http_container_post(ctx);
    }
}


static void
ngx_http_container_fail(ngx_http_container_ctx_t *ctx, ngx_int_t status,
    const char *retry)
{
    ngx_table_elt_t  *h;

    ctx->status = status;
    ctx->done = 1;

    if (retry == NULL) {
        return;
    }

    h = ngx_list_push(&ctx->request->headers_out.headers);
    if (h == NULL) {
        return;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = (u_char *) retry;
    h->value.len = ngx_strlen(retry);
}


/*
 * Requests are resumed from a posted event rather than from inside the
 * hiredis callback: a resumed request may finish, and its cleanup must not
 * run while the callback still walks the node.
 */

static void
ngx_http_container_post(ngx_http_container_ctx_t *ctx)
{
    ctx->done = 1;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    ngx_queue_insert_tail(&ngx_http_container_resumes, &ctx->queue);
    ctx->queued = 1;

    ngx_post_event(&ngx_http_container_resume_ev, &ngx_posted_events);
}


static void
ngx_http_container_resume_handler(ngx_event_t *ev)
{
    ngx_queue_t               *q;
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_container_ctx_t  *ctx;

    while (!ngx_queue_empty(&ngx_http_container_resumes)) {
        q = ngx_queue_head(&ngx_http_container_resumes);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_http_container_ctx_t, queue);
        ctx->queued = 0;

        r = ctx->request;
        c = r->connection;

        ngx_http_set_log_request(c->log, r);

        r->write_event_handler(r);
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_container_timeout_handler(ngx_event_t *ev)
{
    ngx_http_container_ctx_t       *ctx = ev->data;
    ngx_http_container_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(ctx->request,
                                        ngx_http_container_module);

    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  NGX_HTTP_CONTAINER_LOG "wake timed out after %Mms, class "
                  "\"%V\" id \"%V\"", clcf->wake_timeout, &clcf->class,
                  &ctx->node->log_id);

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ctx->queued = 0;
    }

    ngx_http_container_fail(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                            NGX_HTTP_CONTAINER_RETRY_WAKE);
    ngx_http_container_post(ctx);
}


static void
ngx_http_container_touch_handler(ngx_event_t *ev)
{
    ngx_queue_t                *q, *next;
    ngx_http_container_node_t  *node;

    for (q = ngx_queue_head(&ngx_http_container_touches);
         q != ngx_queue_sentinel(&ngx_http_container_touches);
         q = next)
    {
        next = ngx_queue_next(q);
        node = ngx_queue_data(q, ngx_http_container_node_t, touch);

        ngx_http_container_registry_touch(node);

        /* an instance with requests in flight is touched every time */

        if (node->inflight == 0) {
            ngx_queue_remove(q);
            node->in_touch = 0;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_CONTAINER_TOUCH);
}


static void
ngx_http_container_cleanup(void *data)
{
    ngx_http_container_ctx_t *ctx = data;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    if (ctx->queued) {
        ngx_queue_remove(&ctx->queue);
        ctx->queued = 0;
    }

    if (ctx->counted) {
        ctx->node->inflight--;
        ctx->counted = 0;
    }
}


static ngx_http_container_node_t *
ngx_http_container_node(ngx_str_t *class, ngx_str_t *id, ngx_uint_t create,
    ngx_log_t *log)
{
    u_char                     *p;
    size_t                      len;
    uint32_t                    hash;
    ngx_str_t                   key;
    ngx_http_container_node_t  *node;
    u_char                      buf[sizeof(NGX_HTTP_CONTAINER_KEY_INST)
                                    + NGX_HTTP_CONTAINER_CLASS_MAX
                                    + NGX_HTTP_CONTAINER_ID_MAX + 2];

    /* the key of the node is the registry key of the record */

    p = ngx_cpymem(buf, NGX_HTTP_CONTAINER_KEY_INST,
                   sizeof(NGX_HTTP_CONTAINER_KEY_INST) - 1);
    p = ngx_cpymem(p, class->data, class->len);
    *p++ = ':';
    p = ngx_cpymem(p, id->data, id->len);
    *p++ = '}';

    key.data = buf;
    key.len = p - buf;

    hash = ngx_crc32_long(key.data, key.len);

    node = (ngx_http_container_node_t *)
               ngx_str_rbtree_lookup(&ngx_http_container_tree, &key, hash);

    if (node || !create) {
        return node;
    }

    if (ngx_http_container_nodes >= NGX_HTTP_CONTAINER_NODES_MAX) {
        ngx_http_container_node_evict();
    }

    len = sizeof(ngx_http_container_node_t) + key.len + class->len + 1
          + id->len + 1
          + ngx_min(id->len, NGX_HTTP_CONTAINER_LOG_ID_MAX) * 4
          + sizeof("...") - 1;

    node = ngx_alloc(len, log);
    if (node == NULL) {
        return NULL;
    }

    ngx_memzero(node, sizeof(ngx_http_container_node_t));

    p = (u_char *) (node + 1);

    node->sn.str.data = p;
    node->sn.str.len = key.len;
    node->sn.node.key = hash;
    p = ngx_cpymem(p, key.data, key.len);

    node->class.data = node->sn.str.data + sizeof(NGX_HTTP_CONTAINER_KEY_INST)
                       - 1;
    node->class.len = class->len;
    node->id.data = node->class.data + class->len + 1;
    node->id.len = id->len;

    node->class_z = (char *) p;
    p = ngx_cpymem(p, class->data, class->len);
    *p++ = '\0';

    node->id_z = (char *) p;
    p = ngx_cpymem(p, id->data, id->len);
    *p++ = '\0';

    node->log_id.data = p;
    p = ngx_http_container_escape(p, id->data,
                                  ngx_min(id->len,
                                          NGX_HTTP_CONTAINER_LOG_ID_MAX));

    if (id->len > NGX_HTTP_CONTAINER_LOG_ID_MAX) {
        p = ngx_cpymem(p, "...", sizeof("...") - 1);
    }

    node->log_id.len = p - node->log_id.data;

    ngx_queue_init(&node->waiters);
    ngx_queue_insert_head(&ngx_http_container_lru, &node->lru);

    ngx_rbtree_insert(&ngx_http_container_tree, &node->sn.node);
    ngx_http_container_nodes++;

    return node;
}


/* forget the least recently used IDs that nothing refers to */

static void
ngx_http_container_node_evict(void)
{
    ngx_uint_t                  n;
    ngx_queue_t                *q, *prev;
    ngx_http_container_node_t  *node;

    n = 0;

    for (q = ngx_queue_last(&ngx_http_container_lru);
         q != ngx_queue_sentinel(&ngx_http_container_lru) && n < 8;
         q = prev)
    {
        prev = ngx_queue_prev(q);
        node = ngx_queue_data(q, ngx_http_container_node_t, lru);

        if (node->busy || node->in_touch || node->inflight
            || !ngx_queue_empty(&node->waiters))
        {
            continue;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ngx_http_container_tree, &node->sn.node);
        ngx_free(node);

        ngx_http_container_nodes--;
        n++;
    }
}


static ngx_int_t
ngx_http_container_node_addr(ngx_http_container_node_t *node,
    ngx_str_t *addr)
{
    u_char      buf[64 * 4];
    size_t      len;
    ngx_int_t   rc;
    ngx_addr_t  a;

    if (addr->len == 0 || addr->len >= NGX_SOCKADDR_STRLEN) {
        goto invalid;
    }

    /* the same address as before: nothing to parse */

    if (node->addr.len == addr->len
        && ngx_strncmp(node->addr.data, addr->data, addr->len) == 0)
    {
        return NGX_OK;
    }

    rc = ngx_parse_addr_port(ngx_http_container_pool, &a, addr->data,
                             addr->len);

    if (rc != NGX_OK || a.socklen > sizeof(ngx_sockaddr_t)
        || ngx_inet_get_port(a.sockaddr) == 0)
    {
        ngx_reset_pool(ngx_http_container_pool);
        goto invalid;
    }

    ngx_memcpy(&node->sockaddr, a.sockaddr, a.socklen);
    node->socklen = a.socklen;

    ngx_reset_pool(ngx_http_container_pool);

    ngx_memcpy(node->addr_data, addr->data, addr->len);
    node->addr.data = node->addr_data;
    node->addr.len = addr->len;

    return NGX_OK;

invalid:

    len = ngx_http_container_escape(buf, addr->data, ngx_min(addr->len, 64))
          - buf;

    ngx_log_error(NGX_LOG_ERR, ngx_http_container_log, 0,
                  NGX_HTTP_CONTAINER_LOG "invalid address \"%*s\" in the "
                  "registry for class \"%V\" id \"%V\"", len, buf,
                  &node->class, &node->log_id);

    return NGX_ERROR;
}


/*
 * Any bytes may come in an ID, and in what the registry says: a CR LF in
 * an error-log line would start a forged one. Quotes, backslashes and
 * bytes outside printable ASCII are written as \xHH; dst has room for
 * four bytes for each of src.
 */

static u_char *
ngx_http_container_escape(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        if (*src < 0x20 || *src >= 0x7f || *src == '"' || *src == '\\') {
            *dst++ = '\\';
            *dst++ = 'x';
            *dst++ = hex[*src >> 4];
            *dst++ = hex[*src & 0xf];

        } else {
            *dst++ = *src;
        }

        src++;
    }

    return dst;
}
