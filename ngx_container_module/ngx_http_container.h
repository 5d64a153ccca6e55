
/*
 * ngx_http_container_module: route requests by object ID to the one
 * container instance that owns the ID, waking it through a Redis registry.
 *
 * Files:
 *   ngx_http_container_module.c    directives, configuration, variables
 *   ngx_http_container_registry.c  hiredis on nginx's event loop: the
 *                                  command and subscriber connections
 *   ngx_http_container_route.c     the per-worker table of IDs, holding
 *                                  and resuming requests, activity touches
 *   ngx_http_container_balancer.c  "container_balancer": the upstream peer
 *                                  is the instance resolved for the request
 */


#ifndef _NGX_HTTP_CONTAINER_H_INCLUDED_
#define _NGX_HTTP_CONTAINER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* registry names: README.md, "The registry protocol", describes each */
#define NGX_HTTP_CONTAINER_KEY_INST     "ngxc:inst:{"
#define NGX_HTTP_CONTAINER_KEY_WAKE     "ngxc:{wake}:"
#define NGX_HTTP_CONTAINER_CHANNEL      "ngxc:events"
#define NGX_HTTP_CONTAINER_BEAT_PREFIX  "ngxc:beat:"

#define NGX_HTTP_CONTAINER_ID_MAX       512

/* generations are below 2^53: exact in JSON, Lua and cJSON's doubles */
#define NGX_HTTP_CONTAINER_GEN_MAX      9007199254740992.0

/* how much of an ID, escaped, an error-log line shows */
#define NGX_HTTP_CONTAINER_LOG_ID_MAX   128
#define NGX_HTTP_CONTAINER_CLASS_MAX    64

/*
 * how often the held requests of one ID are claimed again because the
 * registry's answer and its events disagree, before they get 502
 */
#define NGX_HTTP_CONTAINER_RECLAIMS     8

/* how many IDs one worker remembers before it forgets idle ones */
#define NGX_HTTP_CONTAINER_NODES_MAX    10000

/* how often a worker tells the registry which instances are in use */
#define NGX_HTTP_CONTAINER_TOUCH        1000

/* the shortest a claim lasts before a launcher must have taken it */
#define NGX_HTTP_CONTAINER_CLAIM_MIN    1000

/* how long after the last push a wake list that nothing pops lasts */
#define NGX_HTTP_CONTAINER_WAKE_TTL     60000

/* how often a worker checks that its subscription still hears Redis */
#define NGX_HTTP_CONTAINER_BEAT         1000

/* how long a worker waits before it connects to the registry again */
#define NGX_HTTP_CONTAINER_RECONNECT    1000

/* Retry-After for a registry that cannot be reached, and for a wake */
#define NGX_HTTP_CONTAINER_RETRY_DOWN   "1"
#define NGX_HTTP_CONTAINER_RETRY_WAKE   "5"

#define NGX_HTTP_CONTAINER_LOG          "container: "


typedef enum {
    NGX_HTTP_CONTAINER_NODE_IDLE = 0,   /* nothing known, nothing asked */
    NGX_HTTP_CONTAINER_NODE_CLAIMING,   /* a claim is on its way */
    NGX_HTTP_CONTAINER_NODE_WAITING,    /* woken, waiting for "ready" */
    NGX_HTTP_CONTAINER_NODE_READY       /* address known and trusted */
} ngx_http_container_node_state_e;


/* what the events said of the node's newest generation */
typedef enum {
    NGX_HTTP_CONTAINER_GEN_LIVE = 0,    /* waking, starting or ready */
    NGX_HTTP_CONTAINER_GEN_STOPPING,    /* put to sleep, not gone yet */
    NGX_HTTP_CONTAINER_GEN_STOPPED,
    NGX_HTTP_CONTAINER_GEN_FAILED
} ngx_http_container_gen_state_e;


typedef enum {
    NGX_HTTP_CONTAINER_CACHE_NONE = 0,
    NGX_HTTP_CONTAINER_CACHE_HIT,       /* the worker had the address */
    NGX_HTTP_CONTAINER_CACHE_WARM,      /* the registry had it ready */
    NGX_HTTP_CONTAINER_CACHE_COLD       /* it had to be woken */
} ngx_http_container_cache_e;


typedef struct {
    ngx_str_t                   name;       /* as written, for the log */
    ngx_str_t                   host;       /* numeric, or a unix path */
    in_port_t                   port;       /* 0 for a unix socket */
    ngx_str_t                   password;
    ngx_int_t                   db;
    ngx_msec_t                  connect_timeout;
} ngx_http_container_registry_conf_t;


typedef struct {
    ngx_http_container_registry_conf_t  registry;
    ngx_flag_t                  registry_set;

    /* where "container" was first used, for the missing registry error */
    ngx_str_t                   used_file;
    ngx_uint_t                  used_line;
} ngx_http_container_main_conf_t;


typedef struct {
    ngx_str_t                   class;      /* empty: not a gateway */
    ngx_http_complex_value_t   *id;
    ngx_msec_t                  wake_timeout;
} ngx_http_container_loc_conf_t;


/* one object ID of one class, as one worker knows it */
typedef struct {
    ngx_str_node_t              sn;         /* key: the registry key */
    ngx_queue_t                 lru;
    ngx_queue_t                 touch;      /* in the touch queue */
    ngx_queue_t                 waiters;    /* held requests' ctx */

    ngx_str_t                   class;      /* slices of sn.str */
    ngx_str_t                   id;
    char                       *class_z;    /* the same, NUL-terminated */
    char                       *id_z;
    ngx_str_t                   log_id;     /* escaped for the log */

    ngx_http_container_node_state_e  state;
    ngx_http_container_gen_state_e   gen_state;
    uint64_t                    gen;        /* newest generation known */
    uint64_t                    claim_gen;  /* gen when the claim went */
    ngx_uint_t                  reclaims;   /* for the held requests */
    unsigned                    in_touch:1;
    unsigned                    busy:1;     /* a reply will name it */

    ngx_msec_t                  deadline;   /* claim again after it */
    ngx_msec_t                  wake_timeout;
    ngx_uint_t                  inflight;

    ngx_sockaddr_t              sockaddr;
    socklen_t                   socklen;
    ngx_str_t                   addr;
    u_char                      addr_data[NGX_SOCKADDR_STRLEN];
} ngx_http_container_node_t;


typedef struct {
    ngx_http_request_t         *request;
    ngx_http_container_node_t  *node;
    ngx_queue_t                 queue;      /* node's waiters, or resume */
    ngx_event_t                 timer;      /* wake timeout */

    ngx_str_t                   id;
    ngx_http_container_cache_e  cache;
    ngx_int_t                   status;     /* NGX_OK or an HTTP error */

    ngx_sockaddr_t              sockaddr;
    socklen_t                   socklen;
    ngx_str_t                   addr;
    u_char                      addr_data[NGX_SOCKADDR_STRLEN];

    unsigned                    queued:1;
    unsigned                    done:1;
    unsigned                    counted:1;  /* in node->inflight */
} ngx_http_container_ctx_t;


extern ngx_module_t  ngx_http_container_module;


/* ngx_http_container_registry.c */
ngx_int_t ngx_http_container_registry_init(ngx_cycle_t *cycle,
    ngx_http_container_registry_conf_t *rcf);
void ngx_http_container_registry_exit(void);
ngx_int_t ngx_http_container_registry_claim(ngx_http_container_node_t *node,
    ngx_msec_t wake_timeout);
void ngx_http_container_registry_touch(ngx_http_container_node_t *node);
ngx_uint_t ngx_http_container_registry_subscribed(void);
ngx_uint_t ngx_http_container_registry_up(void);

/* ngx_http_container_route.c */
ngx_int_t ngx_http_container_route_init(ngx_cycle_t *cycle);
void ngx_http_container_route_exit(void);
ngx_int_t ngx_http_container_handler(ngx_http_request_t *r);
void ngx_http_container_claim_done(ngx_http_container_node_t *node,
    ngx_str_t *status, ngx_str_t *gen, ngx_str_t *arg, ngx_str_t *error);
void ngx_http_container_event(ngx_str_t *class, ngx_str_t *id,
    uint64_t gen, ngx_str_t *state, ngx_str_t *addr, ngx_str_t *reason);
void ngx_http_container_subscribed(ngx_uint_t on);
void ngx_http_container_connected(ngx_uint_t on);
void ngx_http_container_peer_failed(ngx_http_container_ctx_t *ctx);

/* ngx_http_container_balancer.c */
char *ngx_http_container_balancer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_CONTAINER_H_INCLUDED_ */
