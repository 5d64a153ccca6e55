# Routing by object ID: cold wake, warm and cached paths, stickiness
use Test::Nginx::Socket 'no_plan';

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
        keepalive 8;
    }
};

our $Config = q{
    location ~ ^/echo/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Cache $container_cache always;
        add_header X-Addr $container_addr always;
        add_header X-Class $container_class always;
    }

    location ~ ^/counter/(?<oid>[^/]+)(?<rest>/.*)$ {
        container counter $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Cache $container_cache always;
    }

    location = /by-header {
        container echo $http_x_object_id;
        proxy_pass http://containers;
        add_header X-Id "[$container_id]" always;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a cold ID is woken while its request waits
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /echo/route-cold/hello?x=1
--- response_body_like
^method=GET
path=/hello\?x=1
id=route-cold
pid=\d+
bytes=0
--- response_headers_like
X-Cache: cold
X-Class: echo
X-Addr: 127\.0\.0\.1:20[23]\d\d
--- no_error_log
[error]



=== TEST 2: warm from the registry, then cached in the worker
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /echo/route-cold/a", "GET /echo/route-cold/b"]
--- response_headers eval
["X-Cache: warm", "X-Cache: hit"]
--- response_body_like eval
[qr{^method=GET\npath=/a\nid=route-cold\n}, qr{^method=GET\npath=/b\nid=route-cold\n}]
--- no_error_log
[error]



=== TEST 3: 100 requests for one ID reach the same instance
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
[map { "GET /counter/route-sticky/hit" } 1 .. 100]
--- response_body eval
[map { "$_\n" } 1 .. 100]
--- no_error_log
[error]



=== TEST 4: different IDs reach different instances
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
[map { ("GET /counter/route-many-$_/hit", "GET /counter/route-many-$_/hit") } 1 .. 5]
--- response_body eval
[map { ("1\n", "2\n") } 1 .. 5]
--- response_headers eval
[map { ("X-Cache: cold", "X-Cache: hit") } 1 .. 5]
--- no_error_log
[error]



=== TEST 5: the ID from a header; $container_id; CONTAINER_ID
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /by-header
--- more_headers
X-Object-Id: route header 1
--- response_headers
X-Id: [route header 1]
--- response_body_like
^method=GET
path=/by-header
id=route header 1
--- no_error_log
[error]



=== TEST 6: hostile IDs are data: quotes, braces, percent, non-ASCII
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /echo/route%22%7D%7B%0A%25%C3%A9/x", "GET /echo/route%22%7D%7B%0A%25%C3%A9/y"]
--- response_body_like eval
[qr{^method=GET\npath=/x\nid=route"\}\{%0A%25%C3%A9\n}, qr{^method=GET\npath=/y\nid=route"\}\{%0A%25%C3%A9\n}]
--- response_headers eval
["X-Cache: cold", "X-Cache: hit"]
--- no_error_log
[error]



=== TEST 7: an empty ID is refused with 400
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /by-header
--- error_code: 400
--- error_log
container: invalid object id for class "echo": empty



=== TEST 8: an ID over 512 bytes is refused with 400
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
"GET /echo/" . ("x" x 513) . "/"
--- error_code: 400
--- response_headers
X-Class: echo
--- error_log
container: invalid object id for class "echo": too long



=== TEST 9: an ID of 512 bytes is fine
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
"GET /echo/" . ("y" x 512) . "/z"
--- response_body_like eval
qr{^method=GET\npath=/z\nid=y{512}\n}
--- no_error_log
[error]



=== TEST 10: a location without "container" cannot use the balancer
--- http_config eval: $::HttpConfig
--- config
    location /plain {
        proxy_pass http://containers;
    }
--- request
GET /plain
--- error_code: 500
--- error_log
container: upstream "containers" has "container_balancer", but the location has no "container"
