# Registry data that is wrong or hostile: a clear error, never a crash
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
    container_wake_timeout 2s;

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

=== TEST 1: a ready record whose address is not host:port
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::redis(qw(hset ngxc:inst:{echo:hostile-1} state ready gen 7 addr not-an-address));
--- request
GET /echo/hostile-1/x
--- error_code: 502
--- error_log
container: invalid address "not-an-address" in the registry for class "echo" id "hostile-1"



=== TEST 2: a ready record with port 0
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::redis(qw(hset ngxc:inst:{echo:hostile-2} state ready gen 7 addr 127.0.0.1:0));
--- request
GET /echo/hostile-2/x
--- error_code: 502
--- error_log
container: invalid address "127.0.0.1:0" in the registry for class "echo" id "hostile-2"



=== TEST 3: a ready record with an address far too long
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::redis('hset', 'ngxc:inst:{echo:hostile-3}', 'state', 'ready', 'gen', 7,
            'addr', '1' x 5000);
--- request
GET /echo/hostile-3/x
--- error_code: 502
--- error_log eval
qr/container: invalid address "1{64}" in the registry for class "echo" id "hostile-3"/



=== TEST 4: a record that is not a hash
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::redis(qw(set ngxc:inst:{echo:hostile-4} surprise));
--- request
GET /echo/hostile-4/x
--- error_code: 503
--- error_log eval
qr/container: registry claim for class "echo" id "hostile-4" failed: .*WRONGTYPE/



=== TEST 5: garbage on the events channel is ignored, requests go on
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::redis(qw(publish ngxc:events), $_) for
    'not json', '{"class":1}', '{"class":"echo","id":"hostile-5","gen":"x","state":"ready"}',
    '{"class":"echo","id":"hostile-5","gen":1,"state":"ready","addr":"junk"}',
    '{"class":"echo","id":"' . ('z' x 100000) . '","gen":1,"state":"ready"}', '[]', '{}';
--- request
GET /echo/hostile-5/x
--- error_code: 200
--- response_body_like
^method=GET
path=/x
id=hostile-5
--- error_log
is not JSON, ignored
--- no_error_log
[alert]
[crit]
