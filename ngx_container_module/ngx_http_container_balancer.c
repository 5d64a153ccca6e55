
/*
 * "container_balancer" in an upstream block: the peer of a request is the
 * instance its "container" location resolved, so nginx's own proxy does
 * the forwarding, and "keepalive" in the same block (after this directive)
 * keeps connections to instances.
 */


#include "ngx_http_container.h"


static ngx_int_t ngx_http_container_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_container_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_container_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_container_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);


char *
ngx_http_container_balancer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_upstream_server_t    *us;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    if (uscf->peer.init_upstream == ngx_http_container_init_upstream) {
        return "is duplicate";
    }

    if (uscf->peer.init_upstream) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"container_balancer\" must come before "
                           "\"keepalive\" and any other balancing method "
                           "in upstream \"%V\"", &uscf->host);
        return NGX_CONF_ERROR;
    }

    uscf->peer.init_upstream = ngx_http_container_init_upstream;
    uscf->flags = NGX_HTTP_UPSTREAM_CREATE;

    /*
     * nginx wants a "server" in every upstream block; the instances come
     * and go at run time, so this placeholder, never used, stands in
     */

    us = ngx_array_push(uscf->servers);
    if (us == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(us, sizeof(ngx_http_upstream_server_t));
    ngx_str_set(&us->name, "container_balancer");

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_container_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_server_t  *server;

    /* the placeholder is the first; a "server" of the user's is not used */

    server = us->servers->elts;

    if (us->servers->nelts > 1 || server[0].naddrs != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" in %s:%ui has \"container_balancer\" "
                      "and a \"server\": its peers are the instances, "
                      "remove the \"server\"", &us->host, us->file_name,
                      us->line);
        return NGX_ERROR;
    }

    /* "zone" shares round-robin peers between workers: there are none */

    if (us->shm_zone) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "upstream \"%V\" in %s:%ui has \"container_balancer\" "
                      "and a \"zone\", which it cannot use: remove the "
                      "\"zone\"", &us->host, us->file_name, us->line);
        return NGX_ERROR;
    }

    us->peer.init = ngx_http_container_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_http_container_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_container_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_container_module);

    if (ctx == NULL || ctx->status != NGX_OK || ctx->socklen == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      NGX_HTTP_CONTAINER_LOG "upstream \"%V\" has "
                      "\"container_balancer\", but the location has no "
                      "\"container\"", &us->host);
        return NGX_ERROR;
    }

    r->upstream->peer.data = ctx;
    r->upstream->peer.get = ngx_http_container_get_peer;
    r->upstream->peer.free = ngx_http_container_free_peer;

    /* one instance owns the ID: there is no other peer to try */

    r->upstream->peer.tries = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_container_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_container_ctx_t *ctx = data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   NGX_HTTP_CONTAINER_LOG "forward id:\"%V\" addr:\"%V\"",
                   &ctx->node->log_id, &ctx->addr);

    /*
     * a fresh connection unless "keepalive" hands a cached one after this:
     * ngx_http_upstream_next() gives back the try of a failed cached
     * connection, and a flag left over from it would make every later
     * failure look cached too, retrying without end
     */

    pc->cached = 0;
    pc->connection = NULL;

    pc->sockaddr = &ctx->sockaddr.sockaddr;
    pc->socklen = ctx->socklen;
    pc->name = &ctx->addr;

    return NGX_OK;
}


static void
ngx_http_container_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_container_ctx_t *ctx = data;

    if (state & NGX_PEER_FAILED) {
        ngx_http_container_peer_failed(ctx);
    }

    if (pc->tries) {
        pc->tries--;
    }
}
