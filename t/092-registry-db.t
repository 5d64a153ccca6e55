# A database other than 0 (container_registry db=, the launcher's -d): its
# records, wake lists and events channel are its own, and a database that
# Redis refuses is an error, never a fall back to database 0
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;
use NgxcLauncher;
use POSIX ();

sub http_config {
    my ($db) = @_;
    return qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT db=$db;

    upstream containers {
        container_balancer;
    }
};
}

our $Config = join '', map { qq{
    location ~ ^/$_/(?<oid>[^/]+)(?<rest>/.*)\$ {
        container $_ \$oid;
        rewrite ^ \$rest break;
        proxy_pass http://containers;
        add_header X-Cache \$container_cache always;
    }
} } qw(echo orphan);

$Config .= q{
    container_wake_timeout 3s;

    location = /registry {
        alias $TEST_NGINX_LAUNCHER_LOG.registry;
    }

    location = /orphan-launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG.orphan.log;
    }
};

# a wake of database 5, made by hand as a gateway of that database would
sub wake_in_db5 {
    my ($id) = @_;
    my $pid = fork // die "fork: $!";
    return if $pid;
    select undef, undef, undef, 0.5;
    NgxcRegistry::redis('-n', 5, 'hset', "ngxc:inst:{orphan:$id}",
                        'state', 'waking', 'gen', 1,
                        'deadline', 9999999999999);
    NgxcRegistry::redis('-n', 5, 'rpush', 'ngxc:{wake}:orphan',
                        qq({"class":"orphan","id":"$id","gen":1}));
    POSIX::_exit(0);
}

no_shuffle();
run_tests();

__DATA__

=== TEST 1: a database that Redis refuses: 503, and the reason in the log
--- http_config eval: main::http_config(99)
--- config eval: $::Config
--- request
GET /echo/db-refused/x
--- error_code: 503
--- response_headers
Retry-After: 1
--- error_log eval
qr/container: registry command connection to "127\.0\.0\.1:\d+" lost: AUTH or SELECT refused: ERR DB index is out of range/
--- timeout: 3



=== TEST 2: nothing of it reached database 0
--- http_config eval: main::http_config(0)
--- config eval: $::Config
--- init
NgxcRegistry::report([qw(exists ngxc:inst:{echo:db-refused})]);
--- request
GET /registry
--- response_body
0



=== TEST 3: a gateway and a launcher on database 5
--- http_config eval: main::http_config(5)
--- config eval: $::Config
--- init
NgxcLauncher::start('-d', 5);
--- request
GET /orphan/db-five/x
--- response_body_like
^method=GET
path=/x
id=db-five
--- response_headers
X-Cache: cold
--- no_error_log
[error]
--- timeout: 5



=== TEST 4: the record is in database 5, not in 0
--- http_config eval: main::http_config(0)
--- config eval: $::Config
--- init
NgxcRegistry::report([qw(-n 5 hget ngxc:inst:{orphan:db-five} state)],
                     [qw(exists ngxc:inst:{orphan:db-five})]);
--- request
GET /registry
--- response_body
ready
0



=== TEST 5: a gateway of database 0 does not hear of database 5's instances
--- http_config eval: main::http_config(0)
--- config eval: $::Config
--- init
main::wake_in_db5('db-cross');
--- request
GET /orphan/db-cross/x
--- error_code: 503
--- error_log
wake timed out after 3000ms, class "orphan" id "db-cross"
--- timeout: 5



=== TEST 6: while database 5's launcher did start that ID, for database 5
--- http_config eval: main::http_config(0)
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan-launcher.log
--- response_body_like
ready class=orphan id=db-cross gen=\d+ pid=\d+ port=\d+ addr=127\.0\.0\.1:\d+



=== TEST 7: a launcher whose database Redis refuses touches nothing in 0
--- http_config eval: main::http_config(0)
--- config eval: $::Config
--- init
# a record of the launcher's own name: its reconcile would stop it in db 0
NgxcRegistry::redis(qw(hset ngxc:inst:{orphan:db-stale} state ready gen 3
                       owner db-refused addr 127.0.0.1:20799));
NgxcLauncher::start('-n', 'db-refused', '-d', 99);
NgxcRegistry::report([qw(hget ngxc:inst:{orphan:db-stale} state)]);
NgxcLauncher::stop('TERM');
NgxcRegistry::redis(qw(del ngxc:inst:{orphan:db-stale}));
--- request eval
["GET /registry", "GET /orphan-launcher.log"]
--- response_body_like eval
[qr/\Aready\n\z/,
 qr/reconcile waits for the registry at 127\.0\.0\.1:\d+: SELECT 99: ERR DB index is out of range, retrying every second\n/]
