# Idle instances are put to sleep; the next request wakes a new one
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
        keepalive 8;
    }
};

# one location per class: the class is part of the configuration
our $Config = join '', map { qq{
    location ~ ^/$_/(?<oid>[^/]+)(?<rest>/.*)\$ {
        container $_ \$oid;
        rewrite ^ \$rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_read_timeout 10s;
        add_header X-Cache \$container_cache always;
    }
} } qw(idle stubborn echo);

$Config .= q{
    location = /launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: idle longer than idle_timeout (2 s): stopped, woken again
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /idle/idle-1/a", "GET /echo/idle-pause/sleep?s=4", "GET /idle/idle-1/b"]
--- response_headers eval
["X-Cache: cold", "X-Cache: cold", "X-Cache: cold"]
--- response_body_like eval
[qr{^method=GET\npath=/a\nid=idle-1\n}, qr{^method=GET\npath=/sleep\?s=4\n}, qr{^method=GET\npath=/b\nid=idle-1\n}]
--- timeout: 15
--- no_error_log
[error]



=== TEST 2: a request in flight keeps its instance awake past idle_timeout
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /idle/idle-2/a", "GET /idle/idle-2/sleep?s=4", "GET /idle/idle-2/b"]
--- response_headers eval
["X-Cache: cold", "X-Cache: hit", "X-Cache: hit"]
--- timeout: 15
--- no_error_log
[error]



=== TEST 3: an instance that ignores SIGTERM is killed after its grace
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /stubborn/idle-3/a", "GET /echo/idle-pause/sleep?s=5", "GET /stubborn/idle-3/b"]
--- response_headers eval
["X-Cache: cold", "X-Cache: warm", "X-Cache: cold"]
--- timeout: 15
--- no_error_log
[error]



=== TEST 4: an instance that takes its grace to stop
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /stubborn/stop-wait/a
--- response_headers
X-Cache: cold
--- no_error_log
[error]



=== TEST 5: a request while it stops waits until it is gone: one at a time
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_field('ngxc:inst:{stubborn:stop-wait}', 'state',
                             'stopping');
--- request eval
["GET /stubborn/stop-wait/b", "GET /launcher.log"]
--- response_headers eval
["X-Cache: cold", "!X-Cache"]
--- response_body_like eval
[qr{^method=GET\npath=/b\nid=stop-wait\n[\s\S]*\ngen=\d+\n},
 qr{\bexit class=stubborn id=stop-wait gen=(\d+) [^\n]*signal 9[\s\S]*\bstart class=stubborn id=stop-wait gen=(?!\1 )\d+ }]
--- timeout: 10
--- no_error_log
[error]
