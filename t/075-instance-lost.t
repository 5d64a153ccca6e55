# An instance that dies while it serves: the request fails cleanly
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
    }

    location ~ ^/twice/(?<oid>[^/]+)$ {
        ssi on;
        ssi_types text/plain;
        return 200 '<!--# include virtual="/echo/$oid/a" wait="yes" --><!--# include virtual="/echo/$oid/crash" wait="yes" -->';
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: it dies on a kept-alive connection: 502 at once, no retry loop
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /twice/lost-1
--- response_body_like eval
qr{^method=GET\npath=/a\nid=lost-1\n[\s\S]*<title>502 Bad Gateway</title>}
--- grep_error_log eval
qr/connect\(\) failed \(111: Connection refused\)|recv\(\) failed \(104: Connection reset by peer\)|upstream prematurely closed connection/
--- grep_error_log_out eval
qr/\A(?:(?:connect\(\) failed \(111: Connection refused\)|recv\(\) failed \(104: Connection reset by peer\)|upstream prematurely closed connection)\n){1,3}\z/
--- timeout: 3



=== TEST 2: the next request wakes a new instance
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /echo/lost-1/b
--- response_body_like
^method=GET
path=/b
id=lost-1
--- response_headers
X-Cache: cold
--- no_error_log
[error]
