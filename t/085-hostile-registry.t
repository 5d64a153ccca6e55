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
--- no_error_log
bad address



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



=== TEST 6: a generation that went back (the record lost, written again)
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::get('/echo/gen-back/a') =~ /^id=gen-back$/m
    or die "the first request did not reach gen-back";
my $key = 'ngxc:inst:{echo:gen-back}';
my ($gen, $addr) = map { NgxcRegistry::field($key, $_) } qw(gen addr);
# the worker hears of a later generation, stopping, and forgets the
# address; then the registry has only the earlier one, as after a loss
my $later = $gen + 1000;
NgxcRegistry::redis('publish', 'ngxc:events', qq({"class":"echo",)
    . qq("id":"gen-back","gen":$later,"state":"stopping","addr":"$addr"}));
sleep 0.3;
--- request
GET /echo/gen-back/b
--- error_code: 200
--- response_body_like
^method=GET
path=/b
id=gen-back
--- response_headers
X-Cache: warm
--- error_log eval
qr/container: registry generation of class "echo" id "gen-back" went back from \d+ to \d+: the record was lost/
--- no_error_log
[error]



=== TEST 7: a generation and a deadline that are not numbers
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::redis(qw(hset ngxc:inst:{echo:hostile-7} state waking gen abc
                       deadline xyz));
--- request
GET /echo/hostile-7/x
--- error_code: 200
--- response_body_like
^method=GET
path=/x
id=hostile-7
--- response_headers
X-Cache: cold
--- no_error_log
[error]



=== TEST 8: events with generations no double holds exactly are ignored
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
NgxcRegistry::get('/echo/hostile-8/a') =~ /^id=hostile-8$/m
    or die "the first request did not reach hostile-8";
NgxcRegistry::redis(qw(publish ngxc:events), $_) for
    '{"class":"echo","id":"hostile-8","gen":1e400,"state":"stopped"}',
    '{"class":"echo","id":"hostile-8","gen":18446744073709551616,"state":"stopped"}',
    '{"class":"echo","id":"hostile-8","gen":1152921504606846976,"state":"stopped"}',
    '{"class":"echo","id":"hostile-8","gen":-1,"state":"stopped"}';
sleep 0.3;
--- request
GET /echo/hostile-8/b
--- error_code: 200
--- response_body_like
^method=GET
path=/b
id=hostile-8
--- response_headers
X-Cache: hit
--- error_log
lacks class, id, state or a valid gen, ignored
--- no_error_log
[error]
