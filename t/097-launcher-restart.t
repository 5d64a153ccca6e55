# A launcher killed outright, then started again: the records it left
# "ready" point at dead processes, and at ports it may hand out anew. The
# new launcher records them as stopped before it takes any wake; and a
# port handed out again retires whatever record still names it.
use Test::Nginx::Socket 'no_plan';
use Cwd qw(abs_path);
use lib 't/tools';
use NgxcRegistry;

# a launcher of its own, serving only the class "orphan"
our $Pidfile = "$ENV{TEST_NGINX_LAUNCHER_LOG}.orphan.pid";
our $Log = "$ENV{TEST_NGINX_LAUNCHER_LOG}.orphan.log";

sub start_launcher {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $Log or die;
        open STDERR, '>&', \*STDOUT or die;
        exec abs_path('build/ngx-container-launcher'),
             '-c', abs_path('t/orphan-launcher.json'),
             '-r', "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}";
        die "exec: $!";
    }
    open my $fh, '>', $Pidfile or die;
    print $fh $pid;
    close $fh;
    select undef, undef, undef, 0.5;
}

sub stop_launcher {
    my ($signal) = @_;
    open my $fh, '<', $Pidfile or return;
    my $pid = <$fh>;
    close $fh;
    kill $signal, $pid;
    waitpid $pid, 0;
    unlink $Pidfile;
}

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
};

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an instance of the class "orphan"
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- init
main::start_launcher();
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
main::stop_launcher('KILL');
main::start_launcher();
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
main::stop_launcher('TERM');
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
main::start_launcher();
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
main::stop_launcher('TERM');
--- request
GET /orphan/restart-3/x
--- error_code: 503
--- timeout: 8
