# A client that goes away while its request is held leaves nothing behind
use Test::Nginx::Socket 'no_plan';

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
