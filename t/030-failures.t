# When an instance cannot be had: 503 with Retry-After and a reason in the log
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
    }
};

# one location per class: the class is part of the configuration
our $Config = "    container_wake_timeout 1s;\n" . join '', map { qq{
    location ~ ^/$_/(?<oid>[^/]+)(?<rest>/.*)\$ {
        container $_ \$oid;
        rewrite ^ \$rest break;
        proxy_pass http://containers;
    }
} } qw(crash nosuch single);

no_shuffle();
run_tests();

__DATA__

=== TEST 1: the wake takes longer than container_wake_timeout
--- http_config eval: $::HttpConfig
--- config
    location ~ ^/sleepy/(?<oid>[^/]+)(?<rest>/.*)$ {
        container sleepy $oid;
        container_wake_timeout 1s;
        rewrite ^ $rest break;
        proxy_pass http://containers;
    }
--- request
GET /sleepy/fail-timeout/x
--- error_code: 503
--- response_headers
Retry-After: 5
--- error_log
container: wake timed out after 1000ms, class "sleepy" id "fail-timeout"
--- timeout: 5



=== TEST 2: Redis unreachable: 503 at once
--- http_config
    container_registry 127.0.0.1:1;
    upstream containers {
        container_balancer;
    }
--- config
    location ~ ^/echo/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        proxy_pass http://containers;
    }
--- request
GET /echo/fail-down/x
--- error_code: 503
--- response_headers
Retry-After: 1
--- error_log eval
[qr/container: registry command connection to "127\.0\.0\.1:1" failed: Connection refused/,
 qr/container: registry unavailable, class "echo" id "fail-down"/]
--- timeout: 2



=== TEST 3: Redis unreachable: nginx keeps serving other locations
--- http_config
    container_registry 127.0.0.1:1;
--- config
    location = /ok {
        return 200 "still here\n";
    }
--- request
GET /ok
--- response_body
still here



=== TEST 4: the container exits before it is ready: 503 with its reason
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /crash/fail-crash/x
--- error_code: 503
--- response_headers
Retry-After: 5
--- error_log eval
qr/container: wake failed, class "crash" id "fail-crash": "exited with status 3 before ready"/



=== TEST 5: a class that no launcher serves times out
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /nosuch/fail-class/x
--- error_code: 503
--- error_log
container: wake timed out after 1000ms, class "nosuch" id "fail-class"



=== TEST 6: max_instances: the class has room for one instance
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /single/fail-max-1/x
--- error_code: 200
--- no_error_log
[error]



=== TEST 7: max_instances: a second ID fails with the launcher's reason
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /single/fail-max-2/x
--- error_code: 503
--- response_headers
Retry-After: 5
--- error_log
container: wake failed, class "single" id "fail-max-2": "max_instances (1) reached"



=== TEST 8: max_instances: the first ID is still served
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /single/fail-max-1/y
--- error_code: 200
--- no_error_log
[error]



=== TEST 9: an ID cannot forge error-log lines
--- log_level: error
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /nosuch/x%0D%0AFORGED%20line%22/x
--- error_code: 503
--- error_log
container: wake timed out after 1000ms, class "nosuch" id "x\x0d\x0aFORGED line\x22"
--- no_error_log eval
qr/^FORGED/



=== TEST 10: a start that times out: no second process until the first is gone
--- http_config eval: $::HttpConfig
--- config
    location ~ ^/neverready/(?<oid>[^/]+)(?<rest>/.*)$ {
        container neverready $oid;
        container_wake_timeout 3s;
        rewrite ^ $rest break;
        proxy_pass http://containers;
    }

    location = /launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG;
    }
--- request eval
["GET /neverready/one-at-a-time/a", "GET /neverready/one-at-a-time/b",
 "GET /launcher.log"]
--- error_code eval
[503, 503, 200]
--- response_body_like eval
[qr/503/, qr/503/,
 qr/\bstart class=neverready id=one-at-a-time gen=(\d+) (?:(?!\bstart class=neverready id=one-at-a-time )[\s\S])*\bexit class=neverready id=one-at-a-time gen=\1 [^\n]*signal 9[\s\S]*\bfail class=neverready id=one-at-a-time gen=\1 reason="not ready after 1s"/]
--- timeout: 12



=== TEST 11: what a class that no launcher serves leaves behind expires
--- http_config eval: $::HttpConfig
--- config eval
$::Config . q{
    location = /registry {
        alias $TEST_NGINX_LAUNCHER_LOG.registry;
    }
}
--- init
NgxcRegistry::report([qw(pttl ngxc:inst:{nosuch:fail-class})],
                     [qw(pttl ngxc:{wake}:nosuch)],
                     [qw(llen ngxc:{wake}:nosuch)]);
--- request
GET /registry
--- response_body_like eval
qr/\A86\d{6}\n[1-6]\d{4}\n[1-9]\n\z/

