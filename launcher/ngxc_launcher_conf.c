
/*
 * The classes file: which programs to start for which class, on which
 * ports, and how long they may take to start and sit idle.
 *
 * {
 *   "registry": "127.0.0.1:6379",           (or "unix:/path"; -r wins)
 *   "classes": {
 *     "counter": {
 *       "command": ["python3", "counter.py"], (required; no shell)
 *       "dir": ".",                           (the file's directory)
 *       "env": {"GREETING": "hi"},
 *       "host": "127.0.0.1",
 *       "ports": [20000, 20099],              (required)
 *       "idle_timeout": 300,                  (seconds, fractions too)
 *       "stop_grace": 10,
 *       "start_timeout": 30,
 *       "ready": {"path": "/healthz", "interval": 0.02},
 *       "max_instances": 20
 *     }
 *   }
 * }
 *
 * Defaults are as shown, but for "ready.path": without it, a port that
 * accepts connections is ready.
 */


#include "ngxc_launcher.h"

#include <sys/stat.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>


static int ngxc_launcher_conf_class_load(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *confdir);
static int ngxc_launcher_conf_command(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json);
static int ngxc_launcher_conf_dir(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *confdir);
static int ngxc_launcher_conf_env(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json);
static int ngxc_launcher_conf_host(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json);
static int ngxc_launcher_conf_ports(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json);
static int ngxc_launcher_conf_ready(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json);
static int ngxc_launcher_conf_seconds(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *field,
    int zero, double *value);
static int ngxc_launcher_conf_known(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char **fields,
    const char *prefix);
static char *ngxc_launcher_conf_read(const char *file);
static void ngxc_launcher_conf_error(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


static const char  *ngxc_launcher_conf_top_fields[] = {
    "registry", "classes", NULL
};

static const char  *ngxc_launcher_conf_class_fields[] = {
    "command", "dir", "env", "host", "ports", "idle_timeout", "stop_grace",
    "start_timeout", "ready", "max_instances", NULL
};

static const char  *ngxc_launcher_conf_ready_fields[] = {
    "path", "interval", NULL
};


ngxc_launcher_conf_t *
ngxc_launcher_conf_load(const char *file)
{
    char                   *text, *path, *confdir, *slash;
    cJSON                  *root, *item, *classes;
    size_t                  i, n;
    const char             *end;
    ngxc_launcher_conf_t   *conf;
    ngxc_launcher_class_t  *cls;

    conf = calloc(1, sizeof(ngxc_launcher_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->file = strdup(file);
    if (conf->file == NULL) {
        goto failed;
    }

    text = ngxc_launcher_conf_read(file);
    if (text == NULL) {
        goto failed;
    }

    root = cJSON_ParseWithOpts(text, &end, 1);

    if (root == NULL) {
        n = 1;

        for (i = 0; end != NULL && text + i < end; i++) {
            n += (text[i] == '\n');
        }

        ngxc_launcher_conf_error(conf, NULL, "invalid JSON at line %zu", n);
        free(text);
        goto failed;
    }

    free(text);

    /* the default dir, and what a relative dir is relative to */

    path = realpath(file, NULL);
    if (path == NULL) {
        ngxc_launcher_conf_error(conf, NULL, "%s", strerror(errno));
        goto failed_json;
    }

    slash = strrchr(path, '/');
    confdir = path;

    if (slash == path) {
        slash[1] = '\0';

    } else {
        *slash = '\0';
    }

    if (!cJSON_IsObject(root)) {
        ngxc_launcher_conf_error(conf, NULL, "not a JSON object");
        goto failed_path;
    }

    if (ngxc_launcher_conf_known(conf, NULL, root,
                                 ngxc_launcher_conf_top_fields, "")
        != 0)
    {
        goto failed_path;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "registry");

    if (item != NULL) {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
            ngxc_launcher_conf_error(conf, NULL,
                                     "\"registry\" must be a string, "
                                     "\"host:port\" or \"unix:/path\"");
            goto failed_path;
        }

        conf->registry = strdup(item->valuestring);
        if (conf->registry == NULL) {
            goto failed_path;
        }
    }

    classes = cJSON_GetObjectItemCaseSensitive(root, "classes");

    if (!cJSON_IsObject(classes) || cJSON_GetArraySize(classes) == 0) {
        ngxc_launcher_conf_error(conf, NULL,
                                 "\"classes\" must be an object naming "
                                 "at least one class");
        goto failed_path;
    }

    n = cJSON_GetArraySize(classes);

    conf->classes = calloc(n, sizeof(ngxc_launcher_class_t));
    if (conf->classes == NULL) {
        goto failed_path;
    }

    cJSON_ArrayForEach(item, classes) {
        cls = &conf->classes[conf->nclasses++];

        if (ngxc_launcher_conf_class_load(conf, cls, item, confdir) != 0) {
            goto failed_path;
        }

        if (cls->stop_grace > conf->max_stop_grace) {
            conf->max_stop_grace = cls->stop_grace;
        }
    }

    free(path);
    cJSON_Delete(root);

    return conf;

failed_path:

    free(path);

failed_json:

    cJSON_Delete(root);

failed:

    ngxc_launcher_conf_free(conf);

    return NULL;
}


void
ngxc_launcher_conf_free(ngxc_launcher_conf_t *conf)
{
    size_t                  i, j;
    ngxc_launcher_class_t  *cls;

    if (conf == NULL) {
        return;
    }

    for (i = 0; i < conf->nclasses; i++) {
        cls = &conf->classes[i];

        for (j = 0; cls->argv != NULL && cls->argv[j] != NULL; j++) {
            free(cls->argv[j]);
        }

        for (j = 0; j < cls->nenv; j++) {
            free(cls->env[j]);
        }

        free(cls->name);
        free(cls->argv);
        free(cls->dir);
        free(cls->env);
        free(cls->host);
        free(cls->ready_path);
    }

    free(conf->classes);
    free(conf->registry);
    free(conf->file);
    free(conf);
}


ngxc_launcher_class_t *
ngxc_launcher_conf_class(ngxc_launcher_conf_t *conf, const char *name)
{
    size_t  i;

    for (i = 0; i < conf->nclasses; i++) {
        if (strcmp(conf->classes[i].name, name) == 0) {
            return &conf->classes[i];
        }
    }

    return NULL;
}


static int
ngxc_launcher_conf_class_load(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *confdir)
{
    char         *p;
    cJSON        *item;
    double        n;
    const char   *name;

    name = json->string;

    cls->name = strdup(name);
    if (cls->name == NULL) {
        return -1;
    }

    /*
     * the name goes into keys: a ":" would let "a:b" + "c" and "a" + "b:c"
     * share a record, and braces would move the Cluster hash tag
     */

    if (name[0] == '\0' || strlen(name) > NGXC_LAUNCHER_CLASS_MAX) {
        ngxc_launcher_conf_error(conf, cls,
                                 "name must have 1 to 64 characters");
        return -1;
    }

    for (p = cls->name; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'
              || *p == '.'))
        {
            ngxc_launcher_conf_error(conf, cls,
                                     "name may only have letters, digits, "
                                     "\"_\", \"-\" and \".\"");
            return -1;
        }
    }

    if (ngxc_launcher_conf_class(conf, name) != cls) {
        ngxc_launcher_conf_error(conf, cls, "is duplicate");
        return -1;
    }

    if (!cJSON_IsObject(json)) {
        ngxc_launcher_conf_error(conf, cls, "must be an object");
        return -1;
    }

    if (ngxc_launcher_conf_known(conf, cls, json,
                                 ngxc_launcher_conf_class_fields, "")
        != 0)
    {
        return -1;
    }

    if (ngxc_launcher_conf_command(conf, cls, json) != 0
        || ngxc_launcher_conf_dir(conf, cls, json, confdir) != 0
        || ngxc_launcher_conf_env(conf, cls, json) != 0
        || ngxc_launcher_conf_host(conf, cls, json) != 0
        || ngxc_launcher_conf_ports(conf, cls, json) != 0
        || ngxc_launcher_conf_ready(conf, cls, json) != 0)
    {
        return -1;
    }

    cls->idle_timeout = 300;
    cls->stop_grace = 10;
    cls->start_timeout = 30;

    if (ngxc_launcher_conf_seconds(conf, cls, json, "idle_timeout", 0,
                                   &cls->idle_timeout)
        != 0
        || ngxc_launcher_conf_seconds(conf, cls, json, "stop_grace", 1,
                                      &cls->stop_grace)
           != 0
        || ngxc_launcher_conf_seconds(conf, cls, json, "start_timeout", 0,
                                      &cls->start_timeout)
           != 0)
    {
        return -1;
    }

    cls->max_instances = 20;

    item = cJSON_GetObjectItemCaseSensitive(json, "max_instances");

    if (item != NULL) {
        n = cJSON_IsNumber(item) ? item->valuedouble : 0;

        if (n < 1 || n > INT_MAX || n != (int) n) {
            ngxc_launcher_conf_error(conf, cls,
                                     "\"max_instances\" must be "
                                     "a whole number of at least 1");
            return -1;
        }

        cls->max_instances = (int) n;
    }

    return 0;
}


static int
ngxc_launcher_conf_command(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json)
{
    int     n, i;
    cJSON  *item, *arg;

    item = cJSON_GetObjectItemCaseSensitive(json, "command");
    n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : 0;

    if (n == 0) {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"command\" must be a non-empty array "
                                 "of strings");
        return -1;
    }

    cls->argv = calloc(n + 1, sizeof(char *));
    if (cls->argv == NULL) {
        return -1;
    }

    i = 0;

    cJSON_ArrayForEach(arg, item) {
        if (!cJSON_IsString(arg) || (i == 0 && arg->valuestring[0] == '\0')) {
            ngxc_launcher_conf_error(conf, cls,
                                     "\"command\" must be a non-empty array "
                                     "of strings, the first not empty");
            return -1;
        }

        cls->argv[i] = strdup(arg->valuestring);
        if (cls->argv[i] == NULL) {
            return -1;
        }

        i++;
    }

    return 0;
}


static int
ngxc_launcher_conf_dir(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *confdir)
{
    int          n;
    char        *joined;
    cJSON       *item;
    struct stat  st;

    item = cJSON_GetObjectItemCaseSensitive(json, "dir");

    if (item == NULL) {
        cls->dir = strdup(confdir);
        return (cls->dir == NULL) ? -1 : 0;
    }

    if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"dir\" must be a non-empty string");
        return -1;
    }

    if (item->valuestring[0] == '/') {
        joined = strdup(item->valuestring);

    } else {
        n = asprintf(&joined, "%s/%s", confdir, item->valuestring);

        if (n < 0) {
            joined = NULL;
        }
    }

    if (joined == NULL) {
        return -1;
    }

    cls->dir = realpath(joined, NULL);

    if (cls->dir == NULL || stat(cls->dir, &st) != 0
        || !S_ISDIR(st.st_mode))
    {
        ngxc_launcher_conf_error(conf, cls, "\"dir\" \"%s\" is not a "
                                 "directory: %s", joined,
                                 cls->dir ? strerror(ENOTDIR)
                                          : strerror(errno));
        free(joined);
        return -1;
    }

    free(joined);

    return 0;
}


static int
ngxc_launcher_conf_env(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json)
{
    int     n;
    cJSON  *item, *var;

    item = cJSON_GetObjectItemCaseSensitive(json, "env");

    if (item == NULL) {
        return 0;
    }

    if (!cJSON_IsObject(item)) {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"env\" must be an object of strings");
        return -1;
    }

    cls->env = calloc(cJSON_GetArraySize(item) + 1, sizeof(char *));
    if (cls->env == NULL) {
        return -1;
    }

    cJSON_ArrayForEach(var, item) {
        if (var->string[0] == '\0' || strchr(var->string, '=') != NULL
            || !cJSON_IsString(var))
        {
            ngxc_launcher_conf_error(conf, cls,
                                     "\"env\" \"%s\" must be a string, "
                                     "under a name without \"=\"",
                                     var->string);
            return -1;
        }

        n = asprintf(&cls->env[cls->nenv], "%s=%s", var->string,
                     var->valuestring);

        if (n < 0) {
            cls->env[cls->nenv] = NULL;
            return -1;
        }

        cls->nenv++;
    }

    return 0;
}


static int
ngxc_launcher_conf_host(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json)
{
    int               rc;
    cJSON            *item;
    struct addrinfo   hints, *res;

    item = cJSON_GetObjectItemCaseSensitive(json, "host");

    if (item != NULL
        && (!cJSON_IsString(item) || item->valuestring[0] == '\0'))
    {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"host\" must be a non-empty string");
        return -1;
    }

    cls->host = strdup(item ? item->valuestring : "127.0.0.1");
    if (cls->host == NULL) {
        return -1;
    }

    /* resolved once here, so that a start never blocks on the resolver */

    memset(&hints, 0, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(cls->host, NULL, &hints, &res);

    if (rc != 0) {
        ngxc_launcher_conf_error(conf, cls, "\"host\" \"%s\": %s",
                                 cls->host, gai_strerror(rc));
        return -1;
    }

    memcpy(&cls->sockaddr, res->ai_addr, res->ai_addrlen);
    cls->socklen = res->ai_addrlen;

    freeaddrinfo(res);

    return 0;
}


static int
ngxc_launcher_conf_ports(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json)
{
    cJSON   *item, *low, *high;
    double   l, h;

    item = cJSON_GetObjectItemCaseSensitive(json, "ports");

    low = cJSON_GetArrayItem(item, 0);
    high = cJSON_GetArrayItem(item, 1);

    l = cJSON_IsNumber(low) ? low->valuedouble : 0;
    h = cJSON_IsNumber(high) ? high->valuedouble : 0;

    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2
        || l < 1 || h > 65535 || l > h || l != (int) l || h != (int) h)
    {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"ports\" must be [low, high] with "
                                 "1 <= low <= high <= 65535");
        return -1;
    }

    cls->port_low = (int) l;
    cls->port_high = (int) h;
    cls->port_next = cls->port_low;

    return 0;
}


static int
ngxc_launcher_conf_ready(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json)
{
    char   *p;
    cJSON  *ready, *item;

    cls->ready_interval = 0.02;

    ready = cJSON_GetObjectItemCaseSensitive(json, "ready");

    if (ready == NULL) {
        return 0;
    }

    if (!cJSON_IsObject(ready)) {
        ngxc_launcher_conf_error(conf, cls, "\"ready\" must be an object");
        return -1;
    }

    if (ngxc_launcher_conf_known(conf, cls, ready,
                                 ngxc_launcher_conf_ready_fields, "ready.")
        != 0)
    {
        return -1;
    }

    item = cJSON_GetObjectItemCaseSensitive(ready, "path");

    if (item != NULL) {

        /* the path goes into the request line as it is */

        for (p = cJSON_IsString(item) ? item->valuestring : NULL;
             p != NULL && *p > 0x20 && *p < 0x7f;
             p++)
        {
            /* void */
        }

        if (!cJSON_IsString(item) || item->valuestring[0] != '/'
            || *p != '\0')
        {
            ngxc_launcher_conf_error(conf, cls,
                                     "\"ready.path\" must start with \"/\" "
                                     "and have no spaces or control "
                                     "characters");
            return -1;
        }

        cls->ready_path = strdup(item->valuestring);
        if (cls->ready_path == NULL) {
            return -1;
        }
    }

    return ngxc_launcher_conf_seconds(conf, cls, ready, "interval", 0,
                                      &cls->ready_interval);
}


/* a time in seconds, fractions allowed; zero only where it makes sense */

static int
ngxc_launcher_conf_seconds(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char *field, int zero,
    double *value)
{
    cJSON       *item;
    const char  *prefix;

    item = cJSON_GetObjectItemCaseSensitive(json, field);

    if (item == NULL) {
        return 0;
    }

    prefix = (strcmp(field, "interval") == 0) ? "ready." : "";

    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)
        || item->valuedouble < 0 || (!zero && item->valuedouble == 0)
        || item->valuedouble > 365 * 86400)
    {
        ngxc_launcher_conf_error(conf, cls,
                                 "\"%s%s\" must be a number of seconds%s",
                                 prefix, field,
                                 zero ? "" : " greater than 0");
        return -1;
    }

    *value = item->valuedouble;

    return 0;
}


/*
 * an unknown field is most likely a misspelt known one, which would
 * otherwise silently fall back to its default
 */

static int
ngxc_launcher_conf_known(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, cJSON *json, const char **fields,
    const char *prefix)
{
    cJSON        *item;
    const char  **f;

    cJSON_ArrayForEach(item, json) {
        for (f = fields; *f != NULL; f++) {
            if (strcmp(item->string, *f) == 0) {
                break;
            }
        }

        if (*f == NULL) {
            ngxc_launcher_conf_error(conf, cls, "unknown field \"%s%s\"",
                                     prefix, item->string);
            return -1;
        }
    }

    return 0;
}


static char *
ngxc_launcher_conf_read(const char *file)
{
    char    *text, *p;
    FILE    *f;
    size_t   len, size, n;

    f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": %s: %s\n", file,
                strerror(errno));
        return NULL;
    }

    len = 0;
    size = 4096;

    text = malloc(size);
    if (text == NULL) {
        fclose(f);
        return NULL;
    }

    for ( ;; ) {
        n = fread(text + len, 1, size - len - 1, f);
        len += n;

        if (len < size - 1) {
            break;
        }

        p = realloc(text, size * 2);
        if (p == NULL) {
            free(text);
            fclose(f);
            return NULL;
        }

        text = p;
        size *= 2;
    }

    if (ferror(f)) {
        fprintf(stderr, NGXC_LAUNCHER_NAME ": %s: %s\n", file,
                strerror(errno));
        free(text);
        fclose(f);
        return NULL;
    }

    fclose(f);

    text[len] = '\0';

    return text;
}


static void
ngxc_launcher_conf_error(ngxc_launcher_conf_t *conf,
    ngxc_launcher_class_t *cls, const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, NGXC_LAUNCHER_NAME ": %s: ", conf->file);

    if (cls != NULL) {
        fprintf(stderr, "class \"%s\": ", cls->name);
    }

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fputc('\n', stderr);
}
