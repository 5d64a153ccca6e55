# The registry connections come back by themselves
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;
use NgxcProxy;

# the registry through a relay that can go silent (NgxcProxy)
our $ProxyPort = $ENV{TEST_NGINX_REDIS_PORT} + 100;

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
    }
};

our $Config = q{
    location ~ ^/echo/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: connections killed by Redis: reconnected, and requests served
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::kill_gateway_connections();
sleep 1.5;
--- request
GET /echo/reconnect-1/x
--- response_body_like
^method=GET
path=/x
id=reconnect-1
--- response_headers
X-Cache: cold
--- error_log eval
[qr/container: registry command connection to "127\.0\.0\.1:\d+" lost: /,
 qr/container: registry subscriber connection to "127\.0\.0\.1:\d+" lost: /]
--- timeout: 5



=== TEST 2: Redis hangs (CLIENT PAUSE): 503 after connect_timeout, not the wake timeout
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT connect_timeout=500ms;
    upstream containers {
        container_balancer;
    }
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::redis(qw(client pause 2000 all));
--- request
GET /echo/reconnect-2/x
--- error_code: 503
--- error_log eval
[qr/container: registry command connection to "127\.0\.0\.1:\d+" lost: no reply in time/,
 qr/container: registry claim for class "echo" id "reconnect-2" failed: connection lost/]
--- timeout: 1.5



=== TEST 3: once Redis answers again, so does the gateway
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
sleep 2;
--- request
GET /echo/reconnect-2/y
--- response_body_like
^method=GET
path=/y
id=reconnect-2
--- no_error_log
[alert]
[crit]
--- timeout: 5



=== TEST 4: a subscriber that goes silent is noticed by its heartbeat
--- http_config eval
qq{
    container_registry 127.0.0.1:$::ProxyPort connect_timeout=500ms;

    upstream containers {
        container_balancer;
    }
}
--- config eval: "    container_wake_timeout 6s;\n" . $::Config
--- init
NgxcProxy::start($::ProxyPort);
NgxcRegistry::wait_for_gateway();
sleep 0.5;
NgxcProxy::silence_subscribers();
--- request
GET /echo/silent-sub/x
--- response_body_like
^method=GET
path=/x
id=silent-sub
--- response_headers_like
X-Cache: (cold|warm)
--- error_log eval
qr/container: registry subscriber connection to "127\.0\.0\.1:\d+" lost: no heartbeat in time/
--- timeout: 10



=== TEST 5: a subscriber that connects but is never answered is given up
--- http_config eval
qq{
    container_registry 127.0.0.1:$::ProxyPort connect_timeout=500ms;

    upstream containers {
        container_balancer;
    }
}
--- config eval: "    container_wake_timeout 6s;\n" . $::Config
--- init
NgxcRegistry::wait_for_gateway();
# the subscriber's next connection reaches a relay that never answers it
NgxcProxy::hold_new(1);
my $ids = NgxcRegistry::gateway_clients();
NgxcRegistry::redis('client', 'kill', 'id', $_) for @{ $ids->{sub} };
sleep 3;
NgxcProxy::hold_new(0);
--- request
GET /echo/held-sub/x
--- response_body_like
^method=GET
path=/x
id=held-sub
--- error_log eval
qr/container: registry subscriber connection to "127\.0\.0\.1:\d+" lost: no reply in time/
--- timeout: 10



=== TEST 6: the relay is gone
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcProxy::stop();
--- request
GET /echo/silent-sub/y
--- response_body_like
^method=GET
path=/y
id=silent-sub



=== TEST 7: a Redis user that may not PUBLISH: no heartbeat, and no reconnect loop
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::redis(qw(acl setuser default -publish));
sleep 2.5;
NgxcRegistry::redis(qw(acl setuser default +publish));
--- request
GET /echo/silent-sub/z
--- response_body_like
^method=GET
path=/z
id=silent-sub
--- error_log
registry heartbeat PUBLISH refused, the subscriber goes unchecked
--- no_error_log
no heartbeat in time
lost:

