
/*
 * Directives, configuration and variables of ngx_http_container_module.
 */


#include "ngx_http_container.h"


static ngx_int_t ngx_http_container_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_container_init(ngx_conf_t *cf);
static void *ngx_http_container_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_container_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_container_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_container_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_container_registry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_container(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_container_positive(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_container_init_process(ngx_cycle_t *cycle);
static void ngx_http_container_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_container_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


typedef enum {
    NGX_HTTP_CONTAINER_VAR_CLASS = 0,
    NGX_HTTP_CONTAINER_VAR_ID,
    NGX_HTTP_CONTAINER_VAR_ADDR,
    NGX_HTTP_CONTAINER_VAR_CACHE
} ngx_http_container_var_e;


static ngx_conf_post_handler_pt  ngx_http_container_positive_p =
    ngx_http_container_positive;


static ngx_command_t  ngx_http_container_commands[] = {

    { ngx_string("container_registry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_container_registry,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("container"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_container,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("container_wake_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_container_loc_conf_t, wake_timeout),
      &ngx_http_container_positive_p },

    { ngx_string("container_balancer"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS,
      ngx_http_container_balancer,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_container_module_ctx = {
    ngx_http_container_add_variables,      /* preconfiguration */
    ngx_http_container_init,               /* postconfiguration */

    ngx_http_container_create_main_conf,   /* create main configuration */
    ngx_http_container_init_main_conf,     /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_container_create_loc_conf,    /* create location configuration */
    ngx_http_container_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_container_module = {
    NGX_MODULE_V1,
    &ngx_http_container_module_ctx,        /* module context */
    ngx_http_container_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_container_init_process,       /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_container_exit_process,       /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_container_vars[] = {

    { ngx_string("container_class"), NULL, ngx_http_container_variable,
      NGX_HTTP_CONTAINER_VAR_CLASS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("container_id"), NULL, ngx_http_container_variable,
      NGX_HTTP_CONTAINER_VAR_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("container_addr"), NULL, ngx_http_container_variable,
      NGX_HTTP_CONTAINER_VAR_ADDR, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("container_cache"), NULL, ngx_http_container_variable,
      NGX_HTTP_CONTAINER_VAR_CACHE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_http_container_cache_names[] = {
    ngx_null_string,
    ngx_string("hit"),
    ngx_string("warm"),
    ngx_string("cold")
};


static ngx_int_t
ngx_http_container_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_container_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_container_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    /*
     * precontent runs after access, so allow/deny and auth_request decide
     * before an instance is woken for the request
     */

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_container_handler;

    return NGX_OK;
}


static void *
ngx_http_container_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_container_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_container_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->registry_set = 0;
     *     cmcf->registry.password = { 0, NULL };
     *     cmcf->used_file = { 0, NULL };
     */

    cmcf->registry.db = NGX_CONF_UNSET;
    cmcf->registry.connect_timeout = NGX_CONF_UNSET_MSEC;

    return cmcf;
}


static char *
ngx_http_container_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_container_main_conf_t *cmcf = conf;

    if (cmcf->used_file.len && !cmcf->registry_set) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"container\" in %V:%ui needs \"container_registry\" "
                      "in the http block", &cmcf->used_file, cmcf->used_line);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(cmcf->registry.db, 0);
    ngx_conf_init_msec_value(cmcf->registry.connect_timeout, 1000);

    return NGX_CONF_OK;
}


static void *
ngx_http_container_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_container_loc_conf_t  *clcf;

    clcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_container_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     clcf->class = { 0, NULL };
     *     clcf->id = NULL;
     */

    clcf->wake_timeout = NGX_CONF_UNSET_MSEC;

    return clcf;
}


static char *
ngx_http_container_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_container_loc_conf_t *prev = parent;
    ngx_http_container_loc_conf_t *conf = child;

    ngx_conf_merge_msec_value(conf->wake_timeout, prev->wake_timeout, 30000);

    /* "container" is not inherited: a nested location is its own gateway */

    return NGX_CONF_OK;
}


static char *
ngx_http_container_registry(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_container_main_conf_t *cmcf = conf;

    ngx_int_t                            n;
    ngx_str_t                           *value, s;
    ngx_url_t                            u;
    ngx_uint_t                           i, k, seen;
    struct sockaddr_in                  *sin;
    ngx_http_container_registry_conf_t  *rcf;

    static ngx_str_t  params[] = {
        ngx_string("password="),
        ngx_string("db="),
        ngx_string("connect_timeout=")
    };

    if (cmcf->registry_set) {
        return "is duplicate";
    }

    rcf = &cmcf->registry;
    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 0;

    /*
     * the name is resolved here, once: hiredis would resolve it with a
     * blocking getaddrinfo() in a worker on every connect
     */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid registry address \"%V\"%s%s",
                           &u.url, u.err ? ": " : "", u.err ? u.err : "");
        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0 || u.addrs == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "registry address \"%V\" resolves to nothing",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    /* a name may resolve to IPv6 first: take its first IPv4 address */

    for (i = 0; i + 1 < u.naddrs; i++) {
        if (u.addrs[i].sockaddr->sa_family == AF_INET) {
            break;
        }
    }

    switch (u.addrs[i].sockaddr->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        rcf->host.len = u.url.len - (sizeof("unix:") - 1);
        rcf->host.data = ngx_pnalloc(cf->pool, rcf->host.len + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(rcf->host.data, u.url.data + sizeof("unix:") - 1,
                   rcf->host.len);
        rcf->host.data[rcf->host.len] = '\0';
        rcf->port = 0;
        break;
#endif

    case AF_INET:
        if (u.no_port) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "no port in registry address \"%V\"", &u.url);
            return NGX_CONF_ERROR;
        }

        sin = (struct sockaddr_in *) u.addrs[i].sockaddr;

        rcf->host.data = ngx_pnalloc(cf->pool, NGX_INET_ADDRSTRLEN + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        rcf->host.len = ngx_inet_ntop(AF_INET, &sin->sin_addr,
                                      rcf->host.data, NGX_INET_ADDRSTRLEN);
        rcf->host.data[rcf->host.len] = '\0';
        rcf->port = u.port;
        break;

    default:
        /* hiredis 0.14 connects by a numeric IPv4 address or a unix path */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "registry address \"%V\" is not IPv4 or unix:",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    seen = 0;

    for (i = 2; i < cf->args->nelts; i++) {

        /* a parameter given twice is a mistake: the first would be lost */

        for (k = 0; k < sizeof(params) / sizeof(ngx_str_t); k++) {
            if (value[i].len >= params[k].len
                && ngx_strncmp(value[i].data, params[k].data, params[k].len)
                   == 0)
            {
                if (seen & (1 << k)) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "duplicate parameter \"%V\"",
                                       &params[k]);
                    return NGX_CONF_ERROR;
                }

                seen |= 1 << k;
            }
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.len = value[i].len - 9;
            rcf->password.data = value[i].data + 9;

            if (rcf->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.len = value[i].len - 16;
            s.data = value[i].data + 16;

            rcf->connect_timeout = ngx_parse_time(&s, 0);
            if (rcf->connect_timeout == (ngx_msec_t) NGX_ERROR
                || rcf->connect_timeout == 0)
            {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    rcf->name = value[1];
    cmcf->registry_set = 1;

    return NGX_CONF_OK;

invalid:

    if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
        /* never echo a password into the log */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"password=\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


static char *
ngx_http_container(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_container_loc_conf_t *clcf = conf;

    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_http_container_main_conf_t     *cmcf;
    ngx_http_compile_complex_value_t    ccv;

    if (clcf->class.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* the class is part of registry keys and list names: keep it plain */

    if (value[1].len == 0 || value[1].len > NGX_HTTP_CONTAINER_CLASS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid class \"%V\": 1 to %d characters",
                           &value[1], NGX_HTTP_CONTAINER_CLASS_MAX);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < value[1].len; i++) {
        if (!(isalnum(value[1].data[i]) || value[1].data[i] == '_'
              || value[1].data[i] == '-' || value[1].data[i] == '.'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid class \"%V\": only letters, digits, "
                               "\"_\", \"-\" and \".\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    clcf->class = value[1];

    /* a constant ID would be refused with 400 on every request */

    if (value[2].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid id \"\": the object ID must not be "
                           "empty");
        return NGX_CONF_ERROR;
    }

    clcf->id = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (clcf->id == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = clcf->id;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_container_module);

    if (cmcf->used_file.len == 0) {
        cmcf->used_file = cf->conf_file->file.name;
        cmcf->used_line = cf->conf_file->line;
    }

    return NGX_CONF_OK;
}


/* a wake timeout of 0 would fail every cold request at once */

static char *
ngx_http_container_positive(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_container_init_process(ngx_cycle_t *cycle)
{
    ngx_http_conf_ctx_t             *ctx;
    ngx_http_container_main_conf_t  *cmcf;

    ctx = (ngx_http_conf_ctx_t *) ngx_get_conf(cycle->conf_ctx,
                                               ngx_http_module);
    if (ctx == NULL) {
        return NGX_OK;
    }

    cmcf = ctx->main_conf[ngx_http_container_module.ctx_index];

    if (!cmcf->registry_set) {
        return NGX_OK;
    }

    if (ngx_http_container_route_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_container_registry_init(cycle, &cmcf->registry);
}


static void
ngx_http_container_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_container_registry_exit();
    ngx_http_container_route_exit();
}


static ngx_int_t
ngx_http_container_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                      *s;
    ngx_http_container_ctx_t       *ctx;
    ngx_http_container_loc_conf_t  *clcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_container_module);

    if (ctx == NULL && data != NGX_HTTP_CONTAINER_VAR_CLASS) {
        v->not_found = 1;
        return NGX_OK;
    }

    switch (data) {

    case NGX_HTTP_CONTAINER_VAR_CLASS:
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_container_module);
        s = &clcf->class;
        break;

    case NGX_HTTP_CONTAINER_VAR_ID:
        s = &ctx->id;
        break;

    case NGX_HTTP_CONTAINER_VAR_ADDR:
        s = &ctx->addr;
        break;

    default: /* NGX_HTTP_CONTAINER_VAR_CACHE */
        s = &ngx_http_container_cache_names[ctx->cache];
        break;
    }

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}
