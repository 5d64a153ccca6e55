
/*
 * Log lines and clocks.  Every line goes to stderr in one write(), so that
 * lines stay whole when the instances, which share our stderr, write too.
 */


#include "ngxc_launcher.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#define NGXC_LAUNCHER_LOG_MAX  8192


static size_t ngxc_launcher_log_time(char *buf, size_t size);
static void ngxc_launcher_log_write(char *buf, size_t len);


void
ngxc_launcher_log(const char *fmt, ...)
{
    int      n;
    char     buf[NGXC_LAUNCHER_LOG_MAX];
    size_t   len;
    va_list  args;

    len = ngxc_launcher_log_time(buf, sizeof(buf));

    va_start(args, fmt);
    n = vsnprintf(buf + len, sizeof(buf) - len, fmt, args);
    va_end(args);

    if (n > 0) {
        len += n;
    }

    ngxc_launcher_log_write(buf, len);
}


/*
 * "<time> launcher: <step> class=<c> id=<id> gen=<n>" and what fmt adds;
 * fmt starts with a space when it adds anything
 */

void
ngxc_launcher_log_step(const char *step, const char *cls, const u_char *id,
    size_t id_len, const char *gen, const char *fmt, ...)
{
    int      n;
    char     buf[NGXC_LAUNCHER_LOG_MAX];
    char     qcls[256], qid[NGXC_LAUNCHER_ID_LOG_MAX];
    size_t   len;
    va_list  args;

    len = ngxc_launcher_log_time(buf, sizeof(buf));

    n = snprintf(buf + len, sizeof(buf) - len, "%s class=%s id=%s gen=%s",
                 step,
                 ngxc_launcher_quote(qcls, sizeof(qcls), (u_char *) cls,
                                     strlen(cls)),
                 ngxc_launcher_quote(qid, sizeof(qid), id, id_len), gen);

    if (n > 0) {
        len += n;
    }

    if (len < sizeof(buf)) {
        va_start(args, fmt);
        n = vsnprintf(buf + len, sizeof(buf) - len, fmt, args);
        va_end(args);

        if (n > 0) {
            len += n;
        }
    }

    ngxc_launcher_log_write(buf, len);
}


/*
 * an ID (or a reason, or a class from a wake request) as it can stand in a
 * log line: bare when it is made of harmless characters, else in double
 * quotes with quotes, backslashes and non-printable bytes escaped
 */

char *
ngxc_launcher_quote(char *buf, size_t size, const u_char *s, size_t len)
{
    char          *p, *last;
    size_t         i;
    unsigned       bare;
    static char    hex[] = "0123456789abcdef";

    bare = (len > 0);

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || strchr("-_.:/@+,~", s[i]) != NULL))
        {
            bare = 0;
            break;
        }
    }

    p = buf;
    last = buf + size - 1;

    if (!bare && p + 1 < last) {
        *p++ = '"';
    }

    /* room is kept for the closing quote */

    for (i = 0; i < len && p + 5 < last; i++) {

        if (bare || (s[i] >= 0x20 && s[i] < 0x7f
                     && s[i] != '"' && s[i] != '\\'))
        {
            *p++ = s[i];

        } else if (s[i] == '"' || s[i] == '\\') {
            *p++ = '\\';
            *p++ = s[i];

        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[s[i] >> 4];
            *p++ = hex[s[i] & 0xf];
        }
    }

    if (!bare) {
        *p++ = '"';
    }

    *p = '\0';

    return buf;
}


/* a clock for timers, which jumps of the wall clock do not move */

int64_t
ngxc_launcher_msec(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


struct timeval
ngxc_launcher_timeval(double seconds)
{
    struct timeval  tv;

    if (seconds < 0) {
        seconds = 0;
    }

    tv.tv_sec = (time_t) seconds;
    tv.tv_usec = (suseconds_t) ((seconds - tv.tv_sec) * 1000000);

    return tv;
}


/* "2024-12-03T19:10:00.123Z launcher: " */

static size_t
ngxc_launcher_log_time(char *buf, size_t size)
{
    int              n;
    size_t           len;
    struct tm        tm;
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    len = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(buf + len, size - len, ".%03dZ launcher: ",
                 (int) (ts.tv_nsec / 1000000));

    return len + (n > 0 ? (size_t) n : 0);
}


static void
ngxc_launcher_log_write(char *buf, size_t len)
{
    size_t   done;
    ssize_t  n;

    /* a line cut by the buffer still ends with a newline */

    if (len > NGXC_LAUNCHER_LOG_MAX - 2) {
        len = NGXC_LAUNCHER_LOG_MAX - 2;
    }

    buf[len++] = '\n';

    for (done = 0; done < len; done += n) {
        n = write(STDERR_FILENO, buf + done, len - done);

        if (n < 0) {
            if (errno == EINTR) {
                n = 0;
                continue;
            }

            return;
        }
    }
}
