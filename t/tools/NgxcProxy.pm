package NgxcProxy;

# A TCP relay between a gateway and the test Redis that can go silent: for
# the tests of a registry connection that stays open but says nothing (a
# Redis host gone, a firewall or a proxy that dropped it), which Redis
# itself cannot be made to do. It gives up by itself after a minute, and
# its pid is kept where scripts/test.sh stops it, should a test die first.

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();

my $log = $ENV{TEST_NGINX_LAUNCHER_LOG}
    or die "TEST_NGINX_LAUNCHER_LOG is not set";

our $Pidfile = "$log.proxy.orphan.pid";

# start($port): listens on 127.0.0.1:$port, relays to the test Redis
sub start {
    my ($port) = @_;
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Listen => 16,
                                       ReuseAddr => 1)
        or die "proxy on $port: $!";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        relay($listen);
        POSIX::_exit(0);
    }
    close $listen;
    open my $fh, '>', $Pidfile or die "$Pidfile: $!";
    print $fh $pid;
    close $fh;
}

# silence_subscribers(): the connections that have sent SUBSCRIBE so far
# are kept open, but nothing more passes either way on them
sub silence_subscribers {
    kill 'USR1', pid();
    select undef, undef, undef, 0.2;
}

# hold_new(1): connections made from now on are accepted, and nothing
# passes on them, ever; hold_new(0): new ones are relayed again
sub hold_new {
    my ($on) = @_;
    kill $on ? 'USR2' : 'HUP', pid();
    select undef, undef, undef, 0.2;
}

sub stop {
    my $pid = pid() or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    unlink $Pidfile;
}

sub pid {
    open my $fh, '<', $Pidfile or return;
    my $pid = <$fh>;
    close $fh;
    return $pid;
}

sub relay {
    my ($listen) = @_;
    my ($silence, $hold, @held) = (0, 0);
    local $SIG{USR1} = sub { $silence = 1 };
    local $SIG{USR2} = sub { $hold = 1 };
    local $SIG{HUP} = sub { $hold = 0 };
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    alarm 60;

    my $select = IO::Select->new($listen);
    my (%peer, %subscriber, %silent);

    for (;;) {
        my @ready = $select->can_read(0.05);

        if ($silence) {
            $silence = 0;
            $silent{$_} = 1 for grep { $subscriber{$_} } keys %subscriber;
        }

        for my $fh (@ready) {
            if ($fh == $listen) {
                my $client = $listen->accept or next;
                if ($hold) {
                    push @held, $client;
                    next;
                }
                my $redis = IO::Socket::INET->new(
                    PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}")
                    or do { close $client; next };
                $peer{$client} = $redis;
                $peer{$redis} = $client;
                $subscriber{$client} = 0;
                $select->add($client, $redis);
                next;
            }

            my $to = $peer{$fh} or next;
            my $n = sysread $fh, my $buf, 65536;

            if (!$n) {
                $select->remove($fh, $to);
                delete @peer{$fh, $to};
                close $fh;
                close $to;
                next;
            }

            my $client = exists $subscriber{$fh} ? $fh : $to;
            next if $silent{$client};

            $subscriber{$fh} = 1 if exists $subscriber{$fh}
                                    && $buf =~ /SUBSCRIBE/i;
            syswrite $to, $buf;
        }
    }
}

1;
