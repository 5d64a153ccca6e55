# Upstream keepalive: connections to an instance are reused
use Test::Nginx::Socket 'no_plan';

# two sequential subrequests for one ID; echo.py says which port of the
# gateway each came from
our $Config = q{
    location ~ ^/echo/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }

    location ~ ^/twice/(?<oid>[^/]+)$ {
        ssi on;
        ssi_types text/plain;
        return 200 '<!--# include virtual="/echo/$oid/a" wait="yes" --><!--# include virtual="/echo/$oid/b" wait="yes" -->';
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: with keepalive, the second request reuses the connection
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        container_balancer;
        keepalive 8;
    }
--- config eval: $::Config
--- request
GET /twice/keepalive-1
--- response_body_like eval
qr{^method=GET\npath=/a\nid=keepalive-1\n[\s\S]*\npeer=(\d+)\nmethod=GET\npath=/b\nid=keepalive-1\n[\s\S]*\npeer=\1\n\z}
--- no_error_log
[error]



=== TEST 2: without keepalive, each request has its own connection
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        container_balancer;
    }
--- config eval: $::Config
--- request
GET /twice/keepalive-1
--- response_body_like eval
qr{^method=GET\npath=/a\nid=keepalive-1\n[\s\S]*\npeer=(\d+)\nmethod=GET\npath=/b\nid=keepalive-1\n[\s\S]*\npeer=(?!\1\n)\d+\n\z}
--- no_error_log
[error]
