# A launcher killed outright, then started again: the records it left
# "ready" point at dead processes, and at ports it may hand out anew. The
# new launcher records them as stopped before it takes any wake; and a
# port handed out again retires whatever record still names it.
use Test::Nginx::Socket 'no_plan';
use lib 't/tools';
use NgxcRegistry;
use NgxcLauncher;

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
    }
};

our $Config = q{
    container_wake_timeout 5s;

    location ~ ^/orphan/(?<oid>[^/]+)(?<rest>/.*)$ {
        container orphan $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }

    location ~ ^/oneport/(?<oid>[^/]+)(?<rest>/.*)$ {
        container oneport $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        add_header X-Cache $container_cache always;
    }

    location ~ ^/forky/(?<oid>[^/]+)(?<rest>/.*)$ {
        container forky $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
    }

    location = /registry {
        alias $TEST_NGINX_LAUNCHER_LOG.registry;
    }

    location = /orphan-launcher.log {
        alias $TEST_NGINX_LAUNCHER_LOG.orphan.log;
    }
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an instance of the class "orphan"
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::start();
--- request
GET /orphan/restart-1/x
--- response_body_like
^method=GET
path=/x
id=restart-1
--- response_headers
X-Cache: cold
--- timeout: 5



=== TEST 2: the launcher is killed and started again: a new instance answers
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('KILL');
NgxcLauncher::start();
--- request
GET /orphan/restart-1/y
--- response_body_like
^method=GET
path=/y
id=restart-1
--- response_headers
X-Cache: cold
--- timeout: 8



=== TEST 3: the second launcher goes as it should
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan/restart-2/x
--- error_code: 503
--- timeout: 8



=== TEST 4: a stale record names the port the next instance gets
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
# left by a launcher the reconcile cannot know (another name, another host)
NgxcRegistry::redis(qw(hset ngxc:inst:{orphan:stale-1} state ready gen 4
                       owner elsewhere:1 addr 127.0.0.1:20750));
NgxcRegistry::redis(qw(set ngxc:addr:{127.0.0.1:20750}
                       ngxc:inst:{orphan:stale-1}));
NgxcLauncher::start();
--- request
GET /orphan/fresh-1/x
--- response_body_like
^method=GET
path=/x
id=fresh-1
--- timeout: 5



=== TEST 5: the stale ID gets its own instance, never the other ID's
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
--- request
GET /orphan/stale-1/y
--- response_body_like
^method=GET
path=/y
id=stale-1
--- response_headers
X-Cache: cold
--- timeout: 5



=== TEST 6: the launcher goes
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan/restart-3/x
--- error_code: 503
--- timeout: 8



=== TEST 7: a launcher with a name of its own (-n)
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::start('-n', 'orphans-here');
--- request
GET /orphan/named-1/x
--- response_body_like
^method=GET
path=/x
id=named-1
--- response_headers
X-Cache: cold
--- timeout: 5



=== TEST 8: killed, started again under that name: the records are its own
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('KILL');
NgxcLauncher::start('-n', 'orphans-here');
--- request
GET /orphan/named-1/y
--- response_body_like
^method=GET
path=/y
id=named-1
--- response_headers
X-Cache: cold
--- timeout: 8



=== TEST 9: the restarted launcher recorded its earlier run's instance stopped
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan-launcher.log
--- response_body_like
reconcile class=orphan id=named-1 gen=\d+ owner=orphans-here



=== TEST 10: a port handed out again: the cached address is retired first
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
NgxcRegistry::wait_for_gateway();
# the one port of "oneport" serves port-x, cached in the worker; its
# launcher is killed (port-x dies with it, its record stays ready), and
# one of another name starts, which does not know the record
NgxcLauncher::start('-n', 'oneport-first');
NgxcRegistry::get('/oneport/port-x/a') =~ /^id=port-x$/m
    or die "the first request did not reach port-x";
NgxcLauncher::stop('KILL');
NgxcLauncher::start('-n', 'oneport-second');
# port-y gets the port, and answers 2 s before its health path does
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    NgxcRegistry::get('/oneport/port-y/a');
    POSIX::_exit(0);
}
sleep 1;
--- request
GET /oneport/port-x/b
--- error_code: 503
--- response_body_unlike
id=port-y
--- timeout: 5



=== TEST 11: port-y is served by its own instance
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
wait;
--- request
GET /oneport/port-y/b
--- response_body_like
^method=GET
path=/b
id=port-y
--- timeout: 8



=== TEST 12: the launcher goes, and port-y with it
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan-launcher.log
--- response_body_like
exit class=oneport id=port-y gen=\d+ [^\n]*reason="launcher stopped"



=== TEST 13: what a killed launcher's instance started itself is killed next time
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcRegistry::wait_for_gateway();
# "forky" is a shell that starts the server in the background: the server
# is not the launcher's child, and outlives a launcher killed outright
NgxcLauncher::start('-n', 'forky-own');
my ($pid) = NgxcRegistry::get('/forky/fork-1/a') =~ /^pid=(\d+)$/m
    or die "the first request did not reach fork-1";
NgxcLauncher::stop('KILL');
sleep 0.3;
kill 0, $pid or die "the server died with its launcher: nothing to test";
NgxcLauncher::start('-n', 'forky-own');
my $state = '';
for (1 .. 40) {
    my $status = -r "/proc/$pid/status" ? `cat /proc/$pid/status` : '';
    $state = $status =~ /^State:\s+([A-Z])/m ? $1 : 'gone';
    last if $state eq 'gone' || $state eq 'Z';
    select undef, undef, undef, 0.05;
}
open my $fh, '>', $NgxcRegistry::Report or die;
print $fh $state eq 'Z' ? "gone\n" : "$state\n";
close $fh;
--- request
GET /registry
--- response_body
gone



=== TEST 14: the launcher said so, and goes
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
NgxcLauncher::stop('TERM');
--- request
GET /orphan-launcher.log
--- response_body_like
reconcile class=forky id=fork-1 gen=\d+ killed=1 reason="left behind by its instance"

