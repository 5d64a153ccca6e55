package Test::Nginx::Util;

# Server-management half of the project's small Test::Nginx::Socket
# work-alike (see Test/Nginx/Socket.pm for the supported subset).  It mirrors
# openresty/test-nginx's Test::Nginx::Util (version 0.33): same globals, same
# environment variables, same nginx.conf template (byte for byte), same
# start/stop protocol.  Only perl core modules and Debian's libtest-base-perl
# are needed.

use strict;
use warnings;

use base 'Exporter';

use POSIX qw(SIGQUIT SIGKILL SIGTERM WNOHANG);
use File::Spec ();
use File::Path qw(make_path remove_tree);
use List::Util qw(shuffle min);
use Scalar::Util qw(looks_like_number);
use Time::HiRes qw(sleep);
use IO::Socket::INET ();
use Config ();
use Carp qw(croak);

our $Verbose             = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary         = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $ServerAddr          = '127.0.0.1';
our $ServerName          = 'localhost';
our $ServerPort          = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort || 1984;
our $Timeout             = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep      = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $LoadModules         = $ENV{TEST_NGINX_LOAD_MODULES};
our $UseValgrind         = $ENV{TEST_NGINX_USE_VALGRIND};
our $NoShuffle           = $ENV{TEST_NGINX_NO_SHUFFLE} || 0;
our $CheckAccumErrLog    = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $EventType           = $ENV{TEST_NGINX_EVENT_TYPE};
our $WorkerUser          = $ENV{TEST_NGINX_WORKER_USER};
our $ForceRestartOnTest  = $ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} // 1;
our $LogLevel            = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled       = $UseValgrind ? 'off' : 'on';
our $Workers             = 1;
our $WorkerConnections   = 64;
our $RepeatEach          = 1;
our $NoRootLocation      = 0;
our $ConfigPreamble      = '';
our $NoLongString;
our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @TestCleanupHandlers);
our ($RunTestHelper, $CheckErrorLog);     # installed by Test::Nginx::Socket
our ($NginxVersion, $NginxRawVersion, $NginxV, $PrevConfig, $ChildPid);
our ($ErrLogFilePos, $InSubprocess, $RandPorts) = (0, undef, {});

our $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;
our $LogDir     = File::Spec->catfile($ServRoot, 'logs');
our $ErrLogFile = File::Spec->catfile($LogDir, 'error.log');
our $AccLogFile = File::Spec->catfile($LogDir, 'access.log');
our $HtmlDir    = File::Spec->catfile($ServRoot, 'html');
our $ConfDir    = File::Spec->catfile($ServRoot, 'conf');
our $ConfFile   = File::Spec->catfile($ConfDir, 'nginx.conf');
our $PidFile    = File::Spec->catfile($LogDir, 'nginx.pid');
our $CacheDir   = File::Spec->catfile($ServRoot, 'cache');

our @EXPORT = qw(
    env_to_nginx is_str is_running no_long_string $NoLongString server_addr
    $ServerAddr server_name $ServerName parse_time verbose sleep_time bail_out
    add_cleanup_handler add_test_cleanup_handler error_log_data
    expand_env_in_text setup_server_root write_config_file get_nginx_version
    trim show_all_chars parse_headers run_tests
    get_pid_from_pidfile $ServerPortForClient $ServerPort $NginxVersion
    $PidFile $ServRoot $ConfFile $RunTestHelper $CheckErrorLog $RepeatEach
    add_block_preprocessor timeout worker_connections workers master_on
    master_off config_preamble repeat_each master_process_enabled log_level
    no_shuffle no_root_location html_dir server_root server_port
    server_port_for_client check_accum_error_log
);

# ---------------------------------------------------------------- settings
sub no_long_string ()       { $NoLongString = 1 }
sub no_shuffle ()           { $NoShuffle = 1 }
sub no_root_location ()     { $NoRootLocation = 1 }
sub check_accum_error_log () { $CheckAccumErrLog = 1 }
sub master_on ()            { $MasterProcessEnabled = 'on' }
sub master_off ()           { $MasterProcessEnabled = 'off' }
sub config_preamble ($)     { $ConfigPreamble = shift }
sub html_dir ()             { $HtmlDir }
sub server_root ()          { $ServRoot }
sub sleep_time ()           { $TestNginxSleep }
sub verbose ()              { $Verbose }
sub add_block_preprocessor (&) { unshift @BlockPreprocessors, shift }
sub add_cleanup_handler ($) { unshift @CleanupHandlers, shift }
sub add_test_cleanup_handler ($) { unshift @TestCleanupHandlers, shift }

# getter/setter pairs, exactly like the real module
sub timeout (@)            { @_ ? ($Timeout = shift) : $Timeout }
sub server_addr (@)        { @_ ? ($ServerAddr = shift) : $ServerAddr }
sub server_name (@)        { @_ ? ($ServerName = shift) : $ServerName }
sub server_port (@)        { @_ ? ($ServerPort = shift) : $ServerPort }
sub server_port_for_client (@) { @_ ? ($ServerPortForClient = shift) : $ServerPortForClient }
sub repeat_each (@)        { $RepeatEach = shift if @_; $RepeatEach }
sub worker_connections (@) { @_ ? ($WorkerConnections = shift) : $WorkerConnections }
sub workers (@)            { @_ ? ($Workers = shift) : $Workers }
sub log_level (@)          { @_ ? ($LogLevel = shift) : $LogLevel }

sub master_process_enabled (@) {
    return $MasterProcessEnabled unless @_;
    $MasterProcessEnabled = shift() ? 'on' : 'off';
}

sub env_to_nginx (@) {
    croak "env_to_nginx: no arguments specified" unless @_;
    for my $v (@_) {
        croak "env_to_nginx: bad argument value: $v\n"
            if $v !~ /^[A-Za-z_]/ || $v =~ /\n/;
        push @EnvToNginx, $v;
    }
}

# ---------------------------------------------------------------- helpers
my $HaveLongString = eval { require Test::LongString; 1 };

sub is_str (@) {
    my ($got, $expected, $desc) = @_;
    return Test::More::like($got, $expected, $desc)
        if ref $expected && ref $expected eq 'Regexp';
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return Test::Base::is($got, $expected, $desc)
        if $NoLongString || !$HaveLongString;
    return Test::LongString::is_string($got, $expected, $desc);
}

# a daemonized nginx is re-parented to PID 1, which may be slow to reap it:
# a zombie counts as gone
sub is_running ($) {
    my $pid = shift;
    return 0 unless kill 0, $pid;
    open my $in, '<', "/proc/$pid/stat" or return 1;
    my $stat = <$in> // '';
    return $stat !~ /^\d+ \(.*\) Z/;
}

sub bail_out (@) { cleanup(); Test::More::BAIL_OUT(@_) }

sub parse_time ($) {            # "50ms" -> 0.05, "2s"/"2" -> 2
    my $tm = shift;
    if (defined $tm) {
        if ($tm =~ s/([^_a-zA-Z])ms$/$1/) { $tm /= 1000 }
        else { $tm =~ s/([^_a-zA-Z])s$/$1/ }
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub show_all_chars ($) {
    my $s = shift;
    $s =~ s/\n/\\n/gs; $s =~ s/\r/\\r/gs; $s =~ s/\t/\\t/gs;
    return $s;
}

# "Name: value" lines -> { Name => value }; "!Name" -> { Name => undef }
sub parse_headers ($) {
    my %headers;
    for (split /\n/, shift) {
        s/^\s+|\s+$//g;
        next if $_ eq '';
        if (s/^!\s*//) { $headers{$_} = undef; next }
        my ($key, $val) = split /\s*:\s*/, $_, 2;
        $headers{$key} = $val;
    }
    return \%headers;
}

sub get_pid_from_pidfile ($) {
    my $name = shift;
    open my $in, '<', $PidFile
        or bail_out("$name - Failed to open the pid file $PidFile for reading: $!");
    my $pid = do { local $/; <$in> };
    close $in;
    chomp $pid if defined $pid;
    return $pid;
}

# The lines of error.log written since the last call (unless
# check_accum_error_log): the checks only see what the current request logged.
sub error_log_data () {
    sleep $TestNginxSleep * 3;    # let the log phase finish writing
    open my $in, '<', $ErrLogFile or return [];
    seek $in, $ErrLogFilePos, 0 if !$CheckAccumErrLog && $ErrLogFilePos > 0;
    my @lines = <$in>;
    $ErrLogFilePos = tell($in) unless $CheckAccumErrLog;
    close $in;
    return \@lines;
}

sub gen_rand_port ($) {
    my $used = shift;
    for (1 .. 1000) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(LocalAddr => $ServerAddr,
                                         LocalPort => $port, Proto => 'tcp');
        if ($sock) { close $sock; return $port }
    }
    return undef;
}

# $TEST_NGINX_FOO -> $ENV{TEST_NGINX_FOO} (bail out when unset);
# $TEST_NGINX_RAND_PORT_N -> a free port, stable within the block.
sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;
    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            $rand_ports->{$var} //= gen_rand_port({ $ServerPort => 1,
                                                    map { $_ => 1 } grep { defined } values %$rand_ports })
                // bail_out("$name - Cannot find an available listening port number for $var.\n");
        } else {
            bail_out("$name - No environment $var defined.\n") unless defined $ENV{$var};
            $ENV{$var};
        }
    }eg;
    return $text;
}

sub can_run ($) {
    my $cmd = shift;
    return (-f $cmd && -x $cmd ? $cmd : undef) if $cmd =~ m{/};
    for my $dir (split(/\Q$Config::Config{path_sep}\E/, $ENV{PATH} // ''), '.') {
        next if $dir eq '';
        my $abs = File::Spec->catfile($dir, $cmd);
        return $abs if -f $abs && -x $abs;
    }
    return undef;
}

sub get_nginx_version () {
    # Debian keeps nginx in /usr/sbin, which may be missing from a user's PATH
    $NginxBinary = '/usr/sbin/nginx'
        if $NginxBinary eq 'nginx' && !can_run('nginx') && -x '/usr/sbin/nginx';
    $NginxV = `$NginxBinary -V 2>&1`;
    bail_out("Failed to get the version of the Nginx in PATH: " . ($NginxV // ''))
        if !defined $NginxV || $? != 0;
    if ($NginxV =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $NginxV =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return sprintf "%d.%03d%03d", $1, $2, $3;
    }
    bail_out("Failed to parse the output of \"nginx -V\": $NginxV\n");
}

# ---------------------------------------------------------------- server root
sub setup_server_root () {
    if (-d $ServRoot) {
        # like the real one: never "rm -rf" a mis-set TEST_NGINX_SERVROOT
        remove_tree($ConfDir, glob("$ServRoot/*_cache"), glob("$ServRoot/*_temp"),
                    $CacheDir, $HtmlDir, $LogDir);
        rmdir $ServRoot or bail_out("Can't remove $ServRoot (not empty?): $!");
    }
    for my $dir ($ServRoot, $LogDir, $HtmlDir, $ConfDir) {
        mkdir $dir or bail_out("Failed to do mkdir $dir\n");
    }
    open my $out, '>', "$HtmlDir/index.html"
        or bail_out("Can't open $HtmlDir/index.html for writing: $!\n");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

# --- user_files: ">>> name [touch-date]" lines, or eval [[name, body, date]]
sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files or return;
    if (!ref $files) {
        my ($list, $cur) = ([], undef);
        for my $line (split /^/, $files) {
            if ($line =~ />>> (\S+)(?:\s+(.+))?/) {
                push @$list, $cur = [$1, undef, $2];
            } elsif ($cur) {
                $cur->[1] .= $line;
            }
        }
        $files = $list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type: " . ref($files)
                 . ", only scalar or ARRAY are accepted");
    }
    for my $file (@$files) {
        my ($fname, $body, $date) = @$file;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/} && !-d $1) {
            make_path($1) or bail_out("$name - Cannot create directory $1");
        }
        $body = expand_env_in_text($body // '', $name, $rand_ports);
        open my $out, '>', $path or bail_out("$name - Cannot open $path for writing: $!\n");
        binmode $out;
        print $out $body;
        close $out;
        if ($date) {
            system("TZ=GMT touch -t '$date' '$path'") == 0
                or bail_out("Failed to touch $path\n");
        }
    }
}

# --- nginx.conf: same template, line for line, as test-nginx 0.33
# (temp paths under servroot, load_module lines first, keepalive in ms).
sub write_config_file ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $http_config = expand_env_in_text($block->http_config, $name, $rand_ports) // '';
    my $main_config = $block->main_config // '';
    my $post_main_config = expand_env_in_text($block->post_main_config, $name, $rand_ports) // '';
    my $err_log_file = expand_env_in_text($block->error_log_file || $ErrLogFile,
                                          $name, $rand_ports);
    my $server_name = $block->server_name // $ServerName;
    $config //= '';

    if ($LoadModules) {
        my @modules = map { "load_module $_;" } grep { $_ } split /\s+/, $LoadModules;
        $main_config = join " ", @modules, $main_config if @modules;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);

    my $env = join '', map { my $v = /\s/ ? "'$_'" : $_; "env $v;\n" } @EnvToNginx;
    my %temp = map { $_ => "${_}_temp_path $ServRoot/${_}_temp;" }
                   qw(client_body proxy fastcgi scgi uwsgi);
    for my $mod (qw(fastcgi scgi uwsgi)) {
        $temp{$mod} = '' if ($NginxV // '') =~ /--without-http_${mod}_module/;
    }
    for my $mod (qw(proxy client_body)) {
        $temp{$mod} = '' if $http_config =~ /\b${mod}_temp_path\b/;
    }
    my $temp_paths = join ' ', @temp{qw(client_body proxy fastcgi scgi uwsgi)};
    my $root_location = $NoRootLocation ? '' : <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    my $http3_placeholder = '';    # http3 ssl directives in the real one
    my $events_use = $EventType ? "    use $EventType;\n" : '';
    my $user = defined $WorkerUser ? "user $WorkerUser;\n"
             : $> == 0             ? "user root;\n" : '';

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!\n");
    print $out <<_EOC_;
worker_processes  $Workers;
daemon $DaemonEnabled;
master_process $MasterProcessEnabled;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
$env#env LUA_PATH;
#env LUA_CPATH;

$main_config

http {
    access_log $AccLogFile; $temp_paths
    #access_log off;

    default_type text/plain;
    keepalive_timeout  68000ms;

$http_config
    server {
        listen          $ServerPort;
        #placeholder
        server_name     '$server_name';
        $http3_placeholder
        client_max_body_size 30M;
        #client_body_buffer_size 4k;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

$root_location    }
}

$post_main_config

#timer_resolution 100ms;

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
${events_use}}
env ASAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
_EOC_
    print $out $user;
    close $out;
}

# ---------------------------------------------------------------- processes
sub kill_process ($$) {
    my ($pid, $name) = @_;
    kill $ENV{TEST_NGINX_FAST_SHUTDOWN} ? SIGTERM : SIGQUIT, $pid;
    my $left = timeout();
    while ($left > 0 && is_running($pid)) {
        waitpid($pid, WNOHANG);
        sleep 0.05;
        $left -= 0.05;
    }
    my $step = $TestNginxSleep;
    for (1 .. 20) {
        return unless is_running($pid);
        kill SIGTERM, $pid;
        $step *= 1.2;
        sleep($step > 0.5 ? 0.5 : $step);
        waitpid($pid, WNOHANG);
    }
    warn "$name - WARNING: killing the child process $pid with force...";
    kill SIGKILL, (getpgrp($pid) == $pid ? -$pid : $pid);
    waitpid($pid, 0);
}

sub stop_nginx_by_pidfile ($) {
    my $name = shift;
    return unless -f $PidFile;
    my $pid = get_pid_from_pidfile($name);
    if (defined $pid && $pid =~ /^\d+$/ && is_running($pid)) {
        kill_process($pid, $name);
    } else {
        unlink $PidFile;
    }
}

sub cleanup () {
    $_->() for @CleanupHandlers;
    if (defined $ChildPid) {
        kill_process($ChildPid, 'cleanup');
        undef $ChildPid;
    }
}

# like test-nginx 0.33: "-e" makes what nginx logs while parsing nginx.conf
# (e.g. the [emerg] of a must_die block) land in servroot's error.log
sub nginx_command () {
    return "$NginxBinary -e $ServRoot/logs/error.log -p $ServRoot/ -c $ConfFile";
}

sub valgrind_command ($) {
    my $cmd = shift;
    return "valgrind -q $UseValgrind $cmd" unless $UseValgrind =~ /^\d+$/;
    my ($supp) = grep { -f } 'valgrind.suppress', 't/valgrind.suppress';
    return "valgrind --num-callers=100 -q --tool=memcheck --leak-check=full"
         . " --keep-debuginfo=yes --show-possibly-lost=no --gen-suppressions=all"
         . ($supp ? " --suppressions=$supp" : '') . " $cmd";
}

# nginx under valgrind runs in the foreground (daemon off) as our child, its
# stderr (where valgrind reports) going to logs/valgrind.log.
sub start_valgrind_nginx ($$) {
    my ($name, $cmd) = @_;
    $cmd = valgrind_command($cmd);
    warn "$name\n";
    my $pid = fork() // bail_out("$name - fork() failed: $!");
    if ($pid == 0) {
        setpgrp;
        $InSubprocess = 1;
        Test::More->builder->no_ending(1);
        exec "exec $cmd > /dev/null 2> $LogDir/valgrind.log";
    }
    $ChildPid = $pid;
}

sub stop_valgrind_nginx ($) {
    my $name = shift;
    return unless defined $ChildPid;
    kill SIGQUIT, $ChildPid;
    my $left = 10 + timeout();    # valgrind's leak check runs at exit
    while ($left > 0 && waitpid($ChildPid, WNOHANG) == 0) {
        sleep 0.1;
        $left -= 0.1;
    }
    if ($left <= 0) {
        warn "$name - timeout when waiting for valgrind/nginx to exit";
        kill SIGKILL, -$ChildPid;
        waitpid($ChildPid, 0);
    }
    undef $ChildPid;
    unlink $PidFile;
    open my $in, '<', "$LogDir/valgrind.log" or return;
    my $out = do { local $/; <$in> };
    close $in;
    my @errors = grep { /^==\d+== / && !/^==\d+== Warning:/ } split /\n/, $out;
    if (@errors) {
        Test::More::diag($out);
        Test::More::fail("$name - valgrind reported " . scalar(@errors)
                         . " error line(s) (see logs/valgrind.log output above)");
    }
}

sub run_must_die ($$$) {
    my ($block, $cmd, $name) = @_;
    my $must_die = $block->must_die;
    for my $i (0 .. $RepeatEach - 1) {
        $ErrLogFilePos = 0;
        system("$cmd > /dev/null" . (defined $block->suppress_stderr ? " 2> /dev/null" : ''));
        my $status = $?;
        if ($status == -1) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif (looks_like_number($must_die)) {
            Test::More::is($must_die, $status >> 8, "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }
        $CheckErrorLog->($block, undef, 0, $i, 0);
        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)";
            for (1 .. 15) { last if -f $PidFile; sleep $TestNginxSleep }
            stop_nginx_by_pidfile($name);
        }
    }
}

sub start_nginx ($$) {
    my ($block, $cmd) = @_;
    my $name = $block->name;
    my ($waited, $tries) = (0, 0);
    my $errfile = "$LogDir/nginx-stderr.log";
    while (1) {
        system("$cmd > /dev/null 2> $errfile");
        my $status = $?;
        my $err = -s $errfile ? do { local (@ARGV, $/) = ($errfile); <> } : '';
        unlink $errfile;
        # the real one leaves nginx's stderr alone (unless --- suppress_stderr)
        print STDERR $err if $err ne '' && !defined $block->suppress_stderr;
        return if $status == 0;
        # retry only what may be transient (the old nginx still holds the port)
        if ($err !~ /\[emerg\]/ || $err =~ /Address already in use/) {
            my $delay = min(0.1 * ++$tries, 1);
            sleep $delay;
            $waited += $delay;
            next if $waited < 30;
        }
        bail_out("$name - Cannot start nginx using command \"$cmd\" (status code $status).");
    }
}

# ---------------------------------------------------------------- main loop
sub run_tests () {
    srand($$ + Time::HiRes::time() * 1000000);
    $NginxVersion = get_nginx_version();
    $ENV{TEST_NGINX_SERVER_PORT} //= $ServerPort;
    my @blocks = Test::Base::blocks();
    @blocks = shuffle @blocks unless $NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @BlockPreprocessors;
        $block->set_value("name", $0 . " " . $block->name);
        run_test($block);
        $_->($block) for @TestCleanupHandlers;
    }
    cleanup();
}

sub run_test ($) {
    my $block = shift;
    return if defined $block->SKIP;
    my $name = $block->name;
    my $rand_ports = $RandPorts = {};
    my $config = expand_env_in_text($block->config, $name, $rand_ports);
    local $LogLevel = $block->log_level || $LogLevel;
    my $must_die = defined $block->must_die;
    local $UseValgrind = $must_die ? undef : $UseValgrind;
    local $DaemonEnabled = $must_die ? 'on' : $DaemonEnabled;

    my $restart = 1;
    if (!defined $config) {    # no --- config: keep the previous nginx running
        bail_out("$name - No '--- config' section specified and could not get previous one.")
            unless defined $PrevConfig;
        $restart = 0;
    } elsif (!$ForceRestartOnTest && defined $PrevConfig && $config eq $PrevConfig) {
        $restart = 0;
    }

    if ($restart) {
        $PrevConfig = $config;
        stop_nginx_by_pidfile($name);
        setup_server_root();
        if ($block->post_setup_server_root) {
            eval $block->post_setup_server_root;
            bail_out("$name - post_setup_server_root failed: $@") if $@;
        }
        write_user_files($block, $rand_ports);
        write_config_file($block, $config, $rand_ports);
        can_run($NginxBinary)
            or bail_out("$name - Cannot find the nginx executable in the PATH environment");
        my $cmd = nginx_command();
        warn "$name - command: $cmd\n" if $Verbose;
        if ($must_die) {
            run_must_die($block, $cmd, $name);
            return;
        }
        $ErrLogFilePos = 0;
        if ($UseValgrind) { start_valgrind_nginx($name, $cmd) }
        else              { start_nginx($block, $cmd) }
        sleep $TestNginxSleep;
    }

    if ($block->init) {    # the real one runs it after nginx (re)started
        eval $block->init;
        bail_out("$name - init failed: $@") if $@;
    }

    $ErrLogFilePos = 0;
    for my $i (1 .. $RepeatEach) {
        write_user_files($block, $rand_ports) if $i > 1;
        $RunTestHelper->($block, 0, $i - 1);
    }

    stop_valgrind_nginx($name) if $UseValgrind;
}

END {
    return if $InSubprocess;
    local $?;    # keep Test::Builder's exit code
    cleanup();
    if ($UseValgrind || !$ENV{TEST_NGINX_NO_CLEAN}) {
        stop_nginx_by_pidfile("END") if defined $PidFile && -f $PidFile;
    }
}

1;
