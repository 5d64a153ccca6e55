# A client that goes away while its request is held leaves nothing behind
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
    }
};

our $Config = q{
    location ~ ^/slow/(?<oid>[^/]+)(?<rest>/.*)$ {
        container slow $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }

    location = /launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the client gives up while the instance wakes
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /slow/abort-1/x
--- timeout: 0.3
--- abort
--- ignore_response
--- wait: 0.2
--- error_log
client prematurely closed connection
--- no_error_log
[alert]
[crit]



=== TEST 2: the wake went on: the next request finds it ready
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /slow/abort-1/y
--- response_headers_like
X-Cache: warm|cold
--- response_body_like
^method=GET
path=/y
id=abort-1
--- timeout: 10
--- no_error_log
[error]



=== TEST 3: a wake whose claim lapsed before a launcher took it starts nothing
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
# every client gave up while no launcher was there to take the wake
NgxcRegistry::redis(qw(hset ngxc:inst:{slow:lapsed-1} state waking gen 1
                       deadline 1));
NgxcRegistry::redis('rpush', 'ngxc:{wake}:slow',
                    '{"class":"slow","id":"lapsed-1","gen":1}');
sleep 0.5;
--- request
GET /launcher.log
--- response_body_like eval
qr/\A(?![\s\S]*\bstart class=slow id=lapsed-1 )[\s\S]*\bstale class=slow id=lapsed-1 gen=1\n/
