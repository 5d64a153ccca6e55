# A herd of requests for one cold ID: one claim, one start, one instance
use Test::Nginx::Socket 'no_plan';

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
        keepalive 32;
    }
};

# SSI includes without "wait" run as concurrent subrequests: twenty
# requests for the same cold ID are held at once
our $Config = q{
    location ~ ^/counter/(?<oid>[^/]+)(?<rest>/.*)$ {
        container counter $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }

    location = /herd {
        ssi on;
        ssi_types text/plain;
        return 200 '<!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" --><!--# include virtual="/counter/herd-1/hit" -->';
    }

    location = /launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: 20 concurrent requests for one cold ID: one claim
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /herd
--- response_body_like eval
qr/\A(?:\d+\n){20}\z/
--- grep_error_log eval
qr/container: (?:claimed|waiting) class:"counter" id:"herd-1"/
--- grep_error_log_out
container: claimed class:"counter" id:"herd-1"
--- no_error_log
[error]



=== TEST 2: all 20 reached one instance, which the launcher started once
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /counter/herd-1/", "GET /launcher.log"]
--- response_body_like eval
[qr/\A20\n\z/,
 qr/\A(?![\s\S]*\bstart\b[^\n]*id=herd-1\b[\s\S]*\bstart\b[^\n]*id=herd-1\b)[\s\S]*\bstart\b[^\n]*id=herd-1\b/]
--- no_error_log
[error]
