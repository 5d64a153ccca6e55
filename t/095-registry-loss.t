# The registry loses its data (a Redis restart without persistence): the
# instance that runs is taken again, not started a second time. This file
# empties the test registry, so it runs last.
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

our $Config = q{
    container_wake_timeout 5s;

    location ~ ^/counter/(?<oid>[^/]+)(?<rest>/.*)$ {
        container counter $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Cache $container_cache always;
    }

    location ~ ^/slow/(?<oid>[^/]+)(?<rest>/.*)$ {
        container slow $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }

    location ~ ^/idle/(?<oid>[^/]+)(?<rest>/.*)$ {
        container idle $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an instance with a count
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
["GET /counter/loss-1/hit", "GET /counter/loss-1/hit"]
--- response_body eval
["1\n", "2\n"]
--- no_error_log
[error]



=== TEST 2: after the registry lost everything, the same instance answers
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::lose_registry();
sleep 1.5;
--- request
GET /counter/loss-1/hit
--- response_body
3
--- response_headers
X-Cache: cold
--- timeout: 8



=== TEST 3: a record lost while its instance runs: no worker keeps the address
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::get('/idle/lost-addr/a') =~ /^id=lost-addr$/m
    or die "the first request did not reach lost-addr";
my $key = 'ngxc:inst:{idle:lost-addr}';
# no connection drops: only the record goes, then the launcher's idle
# step (idle_timeout 2 s) finds it gone and stops the instance
NgxcRegistry::redis('del', $key);
sleep 3.5;
--- request
GET /idle/lost-addr/b
--- response_headers
X-Cache: cold
--- response_body_like
^method=GET
path=/b
id=lost-addr
--- no_error_log
[error]
--- timeout: 8



=== TEST 4: the registry is lost while a wake is under way: still served
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
# "slow" listens 1.5 s after it starts: the loss comes while it starts
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    sleep 0.5;
    NgxcRegistry::lose_registry();
    POSIX::_exit(0);
}
--- request
GET /slow/loss-wake/x
--- response_body_like
^method=GET
path=/x
id=loss-wake
--- timeout: 8



=== TEST 5: the record is deleted while its instance starts: claimed again
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
# no connection drops: only the record goes, before the ready step
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    sleep 0.7;
    NgxcRegistry::redis(qw(del ngxc:inst:{slow:del-wake}));
    POSIX::_exit(0);
}
--- request
GET /slow/del-wake/x
--- response_body_like
^method=GET
path=/x
id=del-wake
--- timeout: 8

