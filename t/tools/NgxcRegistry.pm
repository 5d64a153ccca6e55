package NgxcRegistry;

# What the tests do to the registry from the outside, with redis-cli: the
# test Redis is on $TEST_NGINX_REDIS_PORT. Not in t/lib, so that the real
# Test::Nginx, when it is used, is not shadowed by the project's runner.

use strict;
use warnings;
use Time::HiRes qw(sleep);
use base 'Exporter';

our @EXPORT = qw(redis report wait_for_field wait_for_gateway
                 kill_gateway_connections lose_registry field get);

my $port = $ENV{TEST_NGINX_REDIS_PORT}
    or die "TEST_NGINX_REDIS_PORT is not set";

sub redis {
    system('redis-cli', '-p', $port, @_) == 0
        or die "redis-cli @_ failed";
}

# the reply of one redis-cli command (options such as -n first), as text
sub reply {
    open my $fh, '-|', 'redis-cli', '-p', $port, @_
        or die "redis-cli @_: $!";
    local $/;
    my $text = <$fh> // '';
    close $fh;
    return $text;
}

# one field of a record, without the newline
sub field {
    my ($key, $name) = @_;
    my $value = reply('hget', $key, $name);
    chomp $value;
    return $value;
}

# a request to the gateway under test from a block's "init", for what must
# happen between two requests: its body, 10 s at most
sub get {
    my ($path) = @_;
    my $port = $Test::Nginx::Util::ServerPort || 1984;
    open my $fh, '-|', 'curl', '-s', '--max-time', '10',
        "http://127.0.0.1:$port$path"
        or die "curl $path: $!";
    local $/;
    my $body = <$fh> // '';
    close $fh;
    return $body;
}

# What the registry holds, for a test to read back through nginx: the
# replies of the commands (array refs), one after the other, in the file
# that a test's "location = /registry" serves
our $Report = "$ENV{TEST_NGINX_LAUNCHER_LOG}.registry";

sub report {
    my @commands = @_;
    open my $fh, '>', $Report or die "$Report: $!";
    print $fh reply(@$_) for @commands;
    close $fh;
}

# wait until a field of a record has a value, 10 s at most
sub wait_for_field {
    my ($key, $field, $value) = @_;
    for (1 .. 200) {
        my $got = reply('hget', $key, $field);
        chomp $got;
        return if $got eq $value;
        sleep 0.05;
    }
    die "$key: $field did not become \"$value\"";
}

# the IDs of the gateway's registry connections (CLIENT SETNAME
# ngxc-gateway-<pid>-cmd|sub), by kind
sub gateway_clients {
    my %ids = (cmd => [], sub => []);
    for (`redis-cli -p $port client list`) {
        my ($id, $kind) = /\bid=(\d+)\b.*\bname=ngxc-gateway-\d+-(cmd|sub)\b/
            or next;
        next if $kind eq 'sub' && !/\bsub=[1-9]/;
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
