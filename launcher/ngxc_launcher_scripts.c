
/*
 * The launcher's steps of the registry protocol (README.md, "The registry
 * protocol"), one Lua script each, run with EVAL on the instance record
 * only, so each is atomic and works unchanged on Redis Cluster.
 *
 * KEYS[1]  ngxc:inst:{<class>:<id>}
 * ARGV[1]  gen, the generation the step is about
 * ARGV[2]  owner, the name of this launcher; empty in the fail of a wake
 *          that was never taken, which can then fail a waking record only
 * ARGV[3]  class, ARGV[4] id: only for the event
 * ARGV[5]  and ARGV[6]: what the step needs, said at each script ("" if
 *          nothing)
 * ARGV[7]  the events channel
 *
 * Times are Redis's own clock in milliseconds.  An event is published in the
 * same script as the write, so no gateway sees it before the record.
 */


#include "ngxc_launcher.h"


#define NGXC_LAUNCHER_LUA_PROLOGUE                                            \
    "local t = redis.call('TIME')\n"                                          \
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"                     \
    "local r = redis.call('HMGET', KEYS[1], 'state', 'gen', 'owner',\n"       \
    "                     'last_active', 'addr', 'deadline')\n"               \
    "local function publish(state, name, value)\n"                            \
    "  redis.call('PUBLISH', ARGV[7],\n"                                      \
    "    '{\"class\":' .. cjson.encode(ARGV[3])\n"                            \
    "    .. ',\"id\":' .. cjson.encode(ARGV[4])\n"                            \
    "    .. ',\"gen\":' .. ARGV[1]\n"                                         \
    "    .. ',\"state\":\"' .. state .. '\"'\n"                               \
    "    .. ',\"' .. name .. '\":' .. cjson.encode(value) .. '}')\n"          \
    "end\n"


/*
 * ARGV[5]: how long the start may take, ms: start_timeout, and the stop of
 * a process that missed it (stop_grace and slack), so that no gateway
 * claims again while it may still run; returns 1 if taken, 0 if stale:
 * another generation, or a claim that lapsed, whose requests have had
 * their 503.  When the generation is gone (a flush, a DEL, a newer claim)
 * "stopped" is published for it, so that gateways holding requests for it
 * claim again instead of waiting out their wake timeout.
 */

static const char  ngxc_launcher_script_take[] =
    NGXC_LAUNCHER_LUA_PROLOGUE
    "if r[2] ~= ARGV[1] then\n"
    "  publish('stopped', 'reason', 'record moved on')\n"
    "  return 0\n"
    "end\n"
    "if r[1] ~= 'waking' then return 0 end\n"
    "if (tonumber(r[6]) or 0) <= now then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'starting', 'owner', ARGV[2],\n"
    "           'deadline', now + tonumber(ARGV[5]), 'updated', now)\n"
    "return 1\n";


/*
 * ARGV[5]: addr, ARGV[6]: pid; returns 1 if ready, 0 if the record moved on
 * (and "stopped" for this generation when it is gone, as take does).
 * The same ready again (its reply was lost with the connection) is 1 too.
 * A ready record does not expire (the claim gave it a day, for a wake
 * that nobody would take).
 */

static const char  ngxc_launcher_script_ready[] =
    NGXC_LAUNCHER_LUA_PROLOGUE
    "if r[2] ~= ARGV[1] then\n"
    "  publish('stopped', 'reason', 'record moved on')\n"
    "  return 0\n"
    "end\n"
    "if r[3] ~= ARGV[2] then return 0 end\n"
    "if r[1] == 'ready' and r[5] == ARGV[5] then return 1 end\n"
    "if r[1] ~= 'starting' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'ready', 'addr', ARGV[5],\n"
    "           'pid', ARGV[6], 'last_active', now, 'updated', now)\n"
    "redis.call('HDEL', KEYS[1], 'deadline')\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "publish('ready', 'addr', ARGV[5])\n"
    "return 1\n";


/*
 * ARGV[5]: idle timeout, ms; ARGV[6]: how long the stop may take, ms (the
 * deadline before which gateways wait for it to end rather than claim);
 * returns 0 if the record is now stopping (or was already, by an idle
 * whose reply was lost), the milliseconds left before it is idle, or -1 if
 * the record is no longer this instance's.  In that last case the record
 * was lost (a flush, a restart without persistence) or retired, and the
 * launcher stops the process: "stopped" is published all the same, so no
 * gateway keeps its address for a port that will be handed out again.
 */

static const char  ngxc_launcher_script_idle[] =
    NGXC_LAUNCHER_LUA_PROLOGUE
    "if r[2] ~= ARGV[1] or r[3] ~= ARGV[2]\n"
    "   or (r[1] ~= 'ready' and r[1] ~= 'stopping')\n"
    "then\n"
    "  publish('stopped', 'reason', 'record moved on')\n"
    "  return -1\n"
    "end\n"
    "if r[1] == 'stopping' then return 0 end\n"
    "local left = (tonumber(r[4]) or 0) + tonumber(ARGV[5]) - now\n"
    "if left > 0 then return left end\n"
    "redis.call('HSET', KEYS[1], 'state', 'stopping', 'updated', now,\n"
    "           'deadline', now + tonumber(ARGV[6]))\n"
    "publish('stopping', 'addr', r[5])\n"
    "return 0\n";


/* ARGV[5]: reason; returns 1 if failed, 0 if the record moved on */

static const char  ngxc_launcher_script_fail[] =
    NGXC_LAUNCHER_LUA_PROLOGUE
    "if r[2] ~= ARGV[1] then return 0 end\n"
    "if r[1] ~= 'waking' and not ((r[1] == 'starting' or r[1] == 'ready')\n"
    "                             and r[3] == ARGV[2])\n"
    "then\n"
    "  return 0\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', 'failed', 'reason', ARGV[5],\n"
    "           'updated', now)\n"
    "redis.call('HDEL', KEYS[1], 'addr', 'deadline')\n"
    "redis.call('PEXPIRE', KEYS[1], 86400000)\n"
    "publish('failed', 'reason', ARGV[5])\n"
    "return 1\n";


/*
 * ARGV[5]: reason; returns 1 if stopped, 0 if the record moved on.  A record
 * already stopped or failed is left alone, so running exit twice (its reply
 * was lost with the connection) neither rewrites it nor publishes again.
 * A record that is another generation's, or gone, is left alone too, but
 * "stopped" is published for this one: a gateway may still hold its
 * address.
 */

static const char  ngxc_launcher_script_exit[] =
    NGXC_LAUNCHER_LUA_PROLOGUE
    "if r[2] ~= ARGV[1] or r[3] ~= ARGV[2] then\n"
    "  publish('stopped', 'reason', ARGV[5])\n"
    "  return 0\n"
    "end\n"
    "if r[1] == 'stopped' or r[1] == 'failed' then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'stopped', 'reason', ARGV[5],\n"
    "           'updated', now)\n"
    "redis.call('HDEL', KEYS[1], 'addr', 'deadline')\n"
    "redis.call('PEXPIRE', KEYS[1], 86400000)\n"
    "publish('stopped', 'reason', ARGV[5])\n"
    "return 1\n";


/*
 * The address index, ngxc:addr:{<host:port>}: the record key of the
 * instance last placed at that address. Before an instance's process
 * starts on a port (and again before it is announced ready), its launcher
 * sets the index and gets the record that held the address before; if
 * that record still says it is there, it is retired with "forget". So a
 * port handed out again never leaves an old record, nor a gateway that
 * cached it, pointing at another ID's container, whoever wrote the old
 * record (a launcher that died, another launcher, another name). Two
 * scripts on one key each, so that both work on Redis Cluster.
 *
 * addr: KEYS[1] the index key, ARGV[1] the record key; returns the record
 * key that held the address before, or "".
 */

const char  ngxc_launcher_script_addr[] =
    "local old = redis.call('GET', KEYS[1])\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "if old and old ~= ARGV[1] then return old end\n"
    "return ''\n";


/*
 * forget: KEYS[1] the record that held the address, ARGV[1] the address,
 * ARGV[2] the reason, ARGV[3] the events channel; stops the record only if
 * it still names that address, and publishes "stopped" as the exit step
 * does
 */

const char  ngxc_launcher_script_forget[] =
    "local r = redis.call('HMGET', KEYS[1], 'state', 'addr', 'gen')\n"
    "if r[2] ~= ARGV[1] or (r[1] ~= 'ready' and r[1] ~= 'stopping') then\n"
    "  return 0\n"
    "end\n"
    "local cls, id = string.match(KEYS[1], '^ngxc:inst:{([^:]*):(.*)}$')\n"
    "if not cls then return 0 end\n"
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('HSET', KEYS[1], 'state', 'stopped', 'reason', ARGV[2],\n"
    "           'updated', now)\n"
    "redis.call('HDEL', KEYS[1], 'addr', 'deadline')\n"
    "redis.call('PEXPIRE', KEYS[1], 86400000)\n"
    "redis.call('PUBLISH', ARGV[3],\n"
    "  '{\"class\":' .. cjson.encode(cls) .. ',\"id\":' .. cjson.encode(id)\n"
    "  .. ',\"gen\":' .. (r[3] or '0') .. ',\"state\":\"stopped\"'\n"
    "  .. ',\"reason\":' .. cjson.encode(ARGV[2]) .. '}')\n"
    "return 1\n";


/* indexed by ngxc_launcher_step_e */

const char  *ngxc_launcher_scripts[] = {
    ngxc_launcher_script_take,
    ngxc_launcher_script_ready,
    ngxc_launcher_script_idle,
    ngxc_launcher_script_fail,
    ngxc_launcher_script_exit
};


const char  *ngxc_launcher_step_names[] = {
    "take",
    "ready",
    "idle",
    "fail",
    "exit"
};
