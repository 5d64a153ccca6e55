package NgxcLauncher;

# A launcher of a test's own, beside the one that "make test" runs: for the
# tests that kill a launcher, restart it, or run it with other options.
# Its pid is kept in a file that scripts/test.sh also stops, should a test
# die before it does.

use strict;
use warnings;
use Cwd qw(abs_path);
use POSIX ();

my $log = $ENV{TEST_NGINX_LAUNCHER_LOG}
    or die "TEST_NGINX_LAUNCHER_LOG is not set";

our $Pidfile = "$log.orphan.pid";
our $Log = "$log.orphan.log";

# start(@options): the classes of t/orphan-launcher.json, on the test Redis,
# with extra options (-n NAME, -d DB); waits half a second for it to start
sub start {
    my @options = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $Log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        { exec abs_path('build/ngx-container-launcher'),
               '-c', abs_path('t/orphan-launcher.json'),
               '-r', "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}", @options; }
        POSIX::_exit(127);
    }
    open my $fh, '>', $Pidfile or die "$Pidfile: $!";
    print $fh $pid;
    close $fh;
    select undef, undef, undef, 0.5;
}

# stop($signal): TERM to let it stop its instances, KILL to lose it
sub stop {
    my ($signal) = @_;
    open my $fh, '<', $Pidfile or return;
    my $pid = <$fh>;
    close $fh;
    kill $signal, $pid;
    waitpid $pid, 0;
    unlink $Pidfile;
}

# what it logged so far
sub log_text {
    open my $fh, '<', $Log or return '';
    local $/;
    return <$fh>;
}

1;
