package NgxcRegistry;

# What the tests do to the registry from the outside, with redis-cli: the
# test Redis is on $TEST_NGINX_REDIS_PORT. Not in t/lib, so that the real
# Test::Nginx, when it is used, is not shadowed by the project's runner.

use strict;
use warnings;
use Time::HiRes qw(sleep);
use base 'Exporter';

our @EXPORT = qw(redis wait_for_gateway kill_gateway_connections
                 lose_registry);

my $port = $ENV{TEST_NGINX_REDIS_PORT}
    or die "TEST_NGINX_REDIS_PORT is not set";

sub redis {
    system('redis-cli', '-p', $port, @_) == 0
        or die "redis-cli @_ failed";
}

# the IDs of the gateway's registry connections (CLIENT SETNAME
# ngxc-gateway-<pid>-cmd|sub), by kind
sub gateway_clients {
    my %ids = (cmd => [], sub => []);
    for (`redis-cli -p $port client list`) {
        my ($id, $kind) = /\bid=(\d+)\b.*\bname=ngxc-gateway-\d+-(cmd|sub)\b/
            or next;
        next if $kind eq 'sub' && !/\bsub=1\b/;
        push @{ $ids{$kind} }, $id;
    }
    return \%ids;
}

# nginx connects after it starts (slowly under valgrind): wait until the
# worker has its command connection and its subscription, 10 s at most
sub wait_for_gateway {
    for (1 .. 200) {
        my $ids = gateway_clients();
        return if @{ $ids->{cmd} } && @{ $ids->{sub} };
        sleep 0.05;
    }
    die "the gateway did not connect to the registry";
}

# what a Redis restart does to a gateway's connections
sub kill_gateway_connections {
    wait_for_gateway();
    my $ids = gateway_clients();
    redis('client', 'kill', 'id', $_) for @{ $ids->{cmd} }, @{ $ids->{sub} };
}

# a Redis restart without persistence: the data is gone too
sub lose_registry {
    wait_for_gateway();
    redis('flushall');
    kill_gateway_connections();
}

1;
