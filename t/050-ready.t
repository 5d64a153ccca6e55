# An instance gets requests only once it is ready: port open, health 2xx
use Test::Nginx::Socket 'no_plan';

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
        add_header X-Cache \$container_cache always;
    }
} } qw(slow health);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a container that sleeps 1.5 s before it listens: no 502
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /slow/ready-slow/first", "GET /slow/ready-slow/second"]
--- error_code eval
[200, 200]
--- response_body_like eval
[qr{^method=GET\npath=/first\nid=ready-slow\n}, qr{^method=GET\npath=/second\nid=ready-slow\n}]
--- response_headers eval
["X-Cache: cold", "X-Cache: hit"]
--- timeout: 10
--- no_error_log
[error]



=== TEST 2: a port that accepts before its health path answers 2xx
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /health/ready-health/first
--- error_code: 200
--- response_body_like
^method=GET
path=/first
id=ready-health
--- response_headers
X-Cache: cold
--- timeout: 10
--- no_error_log
[error]
