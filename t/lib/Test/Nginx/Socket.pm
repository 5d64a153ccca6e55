package Test::Nginx::Socket;

# A small work-alike of openresty/test-nginx's Test::Nginx::Socket for the
# subset of sections documented in the POD below.  Test files written for it
# also run unchanged under the real module.  Needs only perl core modules and
# Debian's libtest-base-perl.

use strict;
use warnings;

use Test::Base -base;    # the real one says -Base (Spiffy source filter)

use POSIX qw(EAGAIN WNOHANG);
use IO::Select ();
use IO::Socket::INET ();
use List::Util qw(min);
use Time::HiRes qw(sleep);

use Test::Nginx::Util;

our @EXPORT = qw(
    env_to_nginx is_str plan run_tests run_test repeat_each config_preamble
    worker_connections master_process_enabled no_long_string workers
    master_on master_off log_level no_shuffle no_root_location server_name
    server_addr server_root html_dir server_port server_port_for_client
    timeout check_accum_error_log add_block_preprocessor bail_out
    add_test_cleanup_handler add_cleanup_handler add_response_body_check
);

our @ResponseBodyChecks;
sub add_response_body_check ($) { push @ResponseBodyChecks, shift }

sub run_test ($) { Test::Nginx::Util::run_test(shift) }

$Test::Nginx::Util::RunTestHelper = \&run_test_helper;
$Test::Nginx::Util::CheckErrorLog = \&check_error_log;

# ---------------------------------------------------------------- requests
sub parse_more_headers ($) {
    my ($out, $is_chunked) = ('', undef);
    for my $header (split /\n+/, shift) {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val //= '';
        $is_chunked = 1 if lc($key) eq 'transfer-encoding' && $val eq 'chunked';
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# "METH [URL [VERSION]]\n[body]" split in packets -> the wire request, split
# at the matching places.  Adds Host, Connection and Content-Length (the
# body is then trimmed) like the real one.
sub build_request_from_packets ($$$$$) {
    my ($name, $more_headers, $is_chunked, $conn, $packets) = @_;
    my $raw = join '', @$packets;
    my ($first, $content) = $raw =~ /\A([^\n]*\n?)(.*)\z/s;
    bail_out("$name - Request line should be non-empty") if $first eq '';
    $first =~ /^(\s*)(\S+)( *)(?:(\S+)( *))?(?:(\S+)( *))?(\s*)$/
        or bail_out("$name - Request line is not valid. Should be 'meth [url [version]]' but got \"$first\".");
    my ($meth, $url, $ver) = ($2, $4 // '/', $6 // 'HTTP/1.1');

    my ($lead, $len_header) = (0, '');
    if (!$is_chunked && $content ne '' && $more_headers !~ /(?:^|\n)Content-Length:/) {
        $lead = length(($content =~ /\A(\s*)/)[0]);
        $content =~ s/^\s+|\s+$//gs;
        $len_header = "Content-Length: " . length($content) . "\r\n";
    }
    $more_headers =~ s/(?<!\r)\n/\r\n/gs;
    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: $conn\r\n" if $more_headers !~ /(?:^|\n)Connection/msi;
    my $head = "$meth $url $ver\r\n$headers$more_headers$len_header\r\n";
    my $full = $head . $content;
    return [$full] if @$packets == 1;

    # map the original packet boundaries onto the rebuilt request
    my ($old, $prev, @out) = (0, 0);
    for my $i (0 .. $#$packets - 1) {
        $old += length $packets->[$i];
        my $b = $old < length($first) - 1 ? $old
              : $old <= length($first) + $lead ? length $head
              : length($head) + $old - length($first) - $lead;
        $b = length $full if $b > length $full;
        $b = $prev if $b < $prev;
        push @out, substr($full, $prev, $b - $prev);
        $prev = $b;
    }
    push @out, substr($full, $prev);
    return \@out;
}

# -> [ request, ... ], each request being [ {value => ..., delay_before => ...}, ... ]
sub get_req_from_block ($) {
    my $block = shift;
    my $name = $block->name;

    if (defined(my $raw = $block->raw_request)) {
        return [[ map { { value => $_ } } ref $raw eq 'ARRAY' ? @$raw : ($raw) ]];
    }

    my $request = $block->request;
    if (defined $request && !ref $request) {
        1 while $request =~ s/^\s*\#[^\n]+\s+|^\s+//gs;    # leading comments
    }
    my $more_headers = $block->more_headers || '';
    my $headers_for = sub {
        my $i = shift;
        return parse_more_headers($more_headers) unless ref $more_headers eq 'ARRAY';
        my $h = $more_headers->[$i];
        bail_out("--- more_headers lacks data for the ${i}th request") unless defined $h;
        return parse_more_headers($h);
    };

    if (my $reqs = $block->pipelined_requests) {
        bail_out("$name - invalid entries in --- pipelined_requests")
            unless ref $reqs eq 'ARRAY';
        my $all = '';
        for my $i (0 .. $#$reqs) {
            my $req = expand_env_in_text($reqs->[$i], $name, $Test::Nginx::Util::RandPorts);
            my ($hdr, $chunked) = $headers_for->($i);
            my $conn = $i == $#$reqs ? 'close' : 'keep-alive';
            $all .= build_request_from_packets($name, $hdr, $chunked, $conn, [$req])->[0];
        }
        return [[{ value => $all }]];
    }

    my @list = ref $request eq 'ARRAY' ? @$request : ($request // '');
    my @out;
    for my $i (0 .. $#list) {
        my $one = $list[$i];
        bail_out("$name - Invalid syntax. $one should be a string or an array of packets.")
            if ref $one && ref $one ne 'ARRAY';
        my @packets = ref $one ? @$one : ($one);
        my ($hdr, $chunked) = $headers_for->($i);
        my $built = build_request_from_packets($name, $hdr, $chunked, 'close',
                        [ map { ref $_ eq 'HASH' ? $_->{value} : $_ } @packets ]);
        push @out, [ map { +{ (ref $packets[$_] eq 'HASH' ? %{ $packets[$_] } : ()),
                              value => $built->[$_] } } 0 .. $#$built ];
    }
    return \@out;
}

# Sends one request over a fresh connection to 127.0.0.1, reads until the
# server closes.  Returns (raw response, is HEAD request).
sub send_request ($$$$) {
    my ($req, $middle_delay, $timeout, $block) = @_;
    my $name = $block->name;
    my @bits = @$req;
    my $head_req = (join '', map { $_->{value} } @bits) =~ /^\s*HEAD\s+/ ? 1 : 0;
    my $addr = $block->server_addr_for_client // $ServerAddr;
    my $port = $ServerPortForClient;

    my $sock;
    for my $try (1 .. 50) {
        $sock = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port,
                                      Proto => 'tcp', Timeout => $timeout);
        last if $sock;
        my $err = $!;
        my $child = $Test::Nginx::Util::ChildPid;    # nginx under valgrind
        if ($Test::Nginx::Util::UseValgrind
            && (!defined $child || waitpid($child, WNOHANG) != 0))
        {
            undef $Test::Nginx::Util::ChildPid;
            fail("$name - Can't connect to $addr:$port: $err (aborted)\n");
            return;
        }
        my $wait = min(1, (sleep_time() + sleep_time() * $try) * $try / 2);
        warn "$name - Can't connect to $addr:$port: $err\n\tRetry connecting after $wait sec\n"
            if $wait >= 0.6;
        sleep $wait;
    }
    if (!$sock) {
        fail("$name - Can't connect to $addr:$port: $! (aborted)\n");
        return;
    }

    local $SIG{PIPE} = 'IGNORE';
    $sock->blocking(0);
    my $sel = IO::Select->new($sock);
    my ($resp, $buf, $off, $writing) = ('', (shift @bits)->{value}, 0, 1);
    while (1) {
        my ($r, $w) = IO::Select->select($sel, $writing ? $sel : undef, undef, $timeout);
        if (!$r && !$w) {
            if (defined $block->abort) { sleep 0.005 }
            else { fail("ERROR: client socket timed out - $name\n") }
            last;
        }
        if ($w && @$w) {
            while ($writing) {
                if ($off < length $buf) {
                    my $bytes = syswrite($sock, $buf, length($buf) - $off, $off);
                    if (!defined $bytes) {
                        last if $! == EAGAIN;
                        warn "write failed: $!\n";    # keep reading the response
                        $writing = 0;
                        last;
                    }
                    $off += $bytes;
                    next;
                }
                my $next = shift @bits;
                if (!defined $next) {      # all sent
                    $writing = 0;
                    if (defined(my $how = $block->shutdown)) {
                        shutdown($sock, $how =~ /^\s*$/ ? 1 : $how);
                    }
                    last;
                }
                my $delay = $next->{delay_before} // $middle_delay;
                sleep $delay if $delay;
                ($buf, $off) = ($next->{value}, 0);
            }
        }
        if ($r && @$r) {
            my $bytes = sysread($sock, my $chunk, 4096);
            if (!defined $bytes) {
                next if $! == EAGAIN;
                warn "WARNING: $name - HTTP response read failure: $!";
                last;
            }
            last if $bytes == 0;
            $resp .= $chunk;
        }
    }
    close $sock;
    return ($resp, $head_req);
}

# ---------------------------------------------------------------- responses
# A response is { code, headers => { lc name => [values] }, content }; the
# split of status line / headers / body follows HTTP::Response->parse.
sub res_header ($$) {
    my ($res, $key) = @_;
    return undef unless $res;
    (my $k = lc $key) =~ tr/_/-/;
    my $v = $res->{headers}{$k};
    return $v ? join(', ', @$v) : undef;
}

sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;
    my $raw_headers = $raw =~ /(.*?\r\n)\r\n/s ? $1 : '';
    my $str = $raw;
    my $status_line = $str =~ s/^(.*)\n// ? $1 : do { my $s = $str; $str = ''; $s };
    $status_line =~ s/\r\z//;
    my (undef, $code) = $status_line =~ /^\d{3} / ? (undef, split ' ', $status_line)
                                                  : split ' ', $status_line, 3;
    undef $code if defined $code && $code !~ /^\d+$/;
    my %headers;
    my $last;
    while (1) {
        if ($str =~ s/^([^\s:]+)[ \t]*: ?(.*)\n?//) {
            my ($k, $v) = (lc $1, $2);
            $v =~ s/\r\z//;
            push @{ $headers{$k} }, $v;
            $last = \$headers{$k}[-1];
        } elsif ($last && $str =~ s/^([ \t].*)\n?//) {
            (my $v = $1) =~ s/\r\z//;
            $$last .= "\n$v";
        } else {
            $str =~ s/^\r?\n//;
            last;
        }
    }
    my $res = { code => $code, headers => \%headers, content => $str };
    return ($res, $raw_headers) if $code && ($code == 304 || $code == 101);

    my $left;
    my $enc = res_header($res, 'Transfer-Encoding');
    my $len = res_header($res, 'Content-Length');
    my @trailers = @{ $res->{headers}{trailer} || [] };
    if (defined $enc && $enc eq 'chunked') {
        my ($raw_body, $decoded) = ($str, '');
        while (1) {
            if (!@trailers && $raw_body =~ /\G 0 [\ \t]* \r\n \r\n /gcsx) {
                $left = $1 if $raw_body =~ /\G (.+) /gcsx;
                last;
            }
            if (@trailers && $raw_body =~ /\G 0 [\ \t]* \r\n /gcsx) {    # skip trailers
                for my $trailer (@trailers) {
                    next if $raw_body =~ /\G($trailer:\ [^\n]*\r\n)/gcs;
                    fail("$name - invalid trailer data received (expected $trailer).");
                    return;
                }
                if ($raw_body !~ /\G\r\n/gcs) {
                    fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
                $left = $1 if $raw_body =~ /\G (.+) /gcsx;
                last;
            }
            if ($raw_body =~ m{ \G [\ \t]* ( [A-Fa-f0-9]+ ) [\ \t]* \r\n }gcsx) {
                my $size = hex $1;
                if (length($raw_body) - pos($raw_body) < $size) {
                    fail("$name - invalid chunked data received (not enought octets for the data section)");
                    return;
                }
                $decoded .= substr($raw_body, pos($raw_body), $size);
                pos($raw_body) += $size;
                if ($raw_body !~ /\G\r\n/gcs) {
                    fail("$name - invalid chunked data received (expected CRLF).");
                    return;
                }
            } elsif ($raw_body =~ /\G.+/gcs) {
                fail("$name - invalid chunked body received: $&");
                return;
            } else {
                fail("$name - no last chunk found - $raw_body");
                return;
            }
        }
        $res->{content} = $decoded;
    } elsif (defined $len && $len ne '' && $len >= 0) {
        if (length $str < $len) {
            warn "WARNING: $name - response body truncated: $len expected, but got ",
                length $str, "\n" unless $head_req;
        } elsif (length $str > $len) {
            $left = substr $str, $len;
            $res->{content} = substr $str, 0, $len;
        }
    }
    return ($res, $raw_headers, $left);
}

# Value of a check section for request $req_idx: arrays are required when
# the block sends several requests.
sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    my $is_array = ref $value && ref $value eq 'ARRAY';
    if ($need_array) {
        return $value->[$req_idx] if $is_array;
        bail_out("$name - You asked for many requests, the expected results should be arrays as well.");
    }
    return $is_array ? $value->[0] : $value;
}

# ---------------------------------------------------------------- the block
sub run_test_helper ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $reqs = get_req_from_block($block);
    bail_out("$name - request empty") unless @$reqs;

    my $timeout = parse_time($block->timeout) // timeout();
    my ($res, $n, $need_array);
    my $req_idx = 0;
    for my $one_req (@$reqs) {
        my ($raw_resp, $head_req) = send_request($one_req, $block->raw_request_middle_delay,
                                                 $timeout, $block);
        if ($block->pipelined_requests) {
            $n = @{ $block->pipelined_requests };
            $need_array = 1;
        } else {
            $need_array = @$reqs > 1;
        }
        while (1) {     # once per response (several for pipelined requests)
            $raw_resp //= '';
            my ($raw_headers, $left);
            if (!defined $block->ignore_response) {
                if (defined $block->http09) {
                    ($res, $raw_headers) = ({ code => 200, headers => {}, content => $raw_resp }, '');
                } else {
                    ($res, $raw_headers, $left) = parse_response($name, $raw_resp, $head_req);
                }
            }
            if (!$n) {
                if (defined $left && $left ne '') {
                    $left =~ s/([\0-\037\200-\377])/sprintf('\x{%02x}', ord $1)/eg;
                    warn "WARNING: $name - unexpected extra bytes after last chunk in ",
                         "response: \"$left\"\n";
                }
            } else {
                $raw_resp = $left;
                $n--;
            }
            if (!defined $block->ignore_response) {
                check_error_code($block, $res, $req_idx, $need_array);
                check_raw_response_headers($block, $raw_headers, $req_idx, $need_array);
                check_response_headers($block, $res, $raw_headers, $req_idx, $need_array);
                check_response_body($block, $res, $req_idx, $repeated_req_idx, $need_array);
            }
            if ($n || $req_idx < @$reqs - 1) {
                sleep $block->wait if $block->wait;
                check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
            }
            $req_idx++;
            last unless $n;
        }
    }
    sleep $block->wait if $block->wait;
    check_error_log($block, $res, $dry_run, $repeated_req_idx, $need_array);
}

sub check_error_code ($$$$) {
    my ($block, $res, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && $res->{code}) || '';
    if (defined $block->error_code_like) {
        my $val = get_indexed_value($name, $block->error_code_like, $req_idx, $need_array);
        like($code, qr/$val/sm, "$name - status code ok");
    } elsif (defined $block->error_code) {
        is($code, get_indexed_value($name, $block->error_code, $req_idx, $need_array),
           "$name - status code ok");
    } else {
        is($code, 200, "$name - status code ok");
    }
}

sub check_raw_response_headers ($$$$) {
    my ($block, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        my $re = get_indexed_value($name, $block->raw_response_headers_like, $req_idx, $need_array);
        like($raw_headers, qr/$re/s, "$name - raw resp headers like");
    }
    if (defined $block->raw_response_headers_unlike) {
        my $re = get_indexed_value($name, $block->raw_response_headers_unlike, $req_idx, $need_array);
        unlike($raw_headers, qr/$re/s, "$name - raw resp headers unlike");
    }
}

sub check_response_headers ($$$$$) {
    my ($block, $res, $raw_headers, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->response_headers) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers,
                                                      $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            if (!defined $val) {
                unlike($raw_headers // '', qr/^\s*\Q$key\E\s*:/ms,
                       "$name - header $key not present in the raw headers");
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            is(res_header($res, $key) // '', $val, "$name - header $key ok");
        }
    } elsif (defined $block->response_headers_like) {
        my $headers = parse_headers(get_indexed_value($name, $block->response_headers_like,
                                                      $req_idx, $need_array));
        for my $key (sort keys %$headers) {
            my $val = $headers->{$key};
            like(res_header($res, $key) // '', qr/^$val$/, "$name - header $key like ok");
        }
    }
}

sub check_response_body ($$$$$) {
    my ($block, $res, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $content = $res ? $res->{content} : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }
    my $which = "(repeated req $repeated_req_idx, req $req_idx)";
    if (defined $block->response_body) {
        my $expected = get_indexed_value($name, $block->response_body, $req_idx, $need_array);
        if (ref $expected) {
            like($content, $expected, "$name - response_body - like $which");
        } else {
            if (defined $expected) {
                $expected =~ s/\$ServerPort\b/$ServerPort/g;
                $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
                $expected = expand_env_in_text($expected, $name,
                                               $Test::Nginx::Util::RandPorts);
            }
            is_str($content, $expected, "$name - response_body - response is expected $which");
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my $type = defined $block->response_body_like ? 'like' : 'unlike';
        my $pats = $type eq 'like' ? $block->response_body_like : $block->response_body_unlike;
        my $pat = get_indexed_value($name, $pats, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = trim($content) // '';
        my $desc = "$name - response_body_$type - response is expected ($summary)";
        if ($type eq 'like') { like($content, qr/$pat/s, $desc) }
        else                 { unlike($content, qr/$pat/s, $desc) }
    }
    $_->($block, $content, $req_idx, $repeated_req_idx, 0) for @ResponseBodyChecks;
}

# ---------------------------------------------------------------- error.log
sub value_contains ($$);
sub value_contains ($$) {
    my ($val, $pat) = @_;
    return $val =~ /\Q$pat\E/ if !ref $val || ref $val eq 'Regexp';
    return scalar grep { value_contains($_, $pat) } @$val if ref $val eq 'ARRAY';
    return undef;
}

sub fmt_str ($) {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g; $str =~ s/\r/\\r/g; $str =~ s/\n/\\n/g;
    return $str;
}

sub pattern_list ($) {    # section value -> fresh list of patterns
    my $pats = shift;
    return [$pats] if ref $pats eq 'Regexp';
    return [@$pats] if ref $pats;
    chomp $pats;
    return [split /\n+/, $pats];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return (ref $pat && $line =~ /$pat/) || $line =~ /\Q$pat\E/;
}

sub check_error_log ($$$$$) {
    my ($block, $res, $dry_run, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;
    my $lines = error_log_data();
    my $req = "(req $repeated_req_idx)";
    my %warn_on = map { $_ => 1 } qw(alert crit emerg);

    my $grep_pat = $block->grep_error_log;
    $grep_pat = $grep_pat->[$repeated_req_idx] if ref $grep_pat eq 'ARRAY';
    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;
        bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined")
            unless defined $expected;
        $expected = expand_env_in_text($expected, $name, $Test::Nginx::Util::RandPorts)
            unless ref $expected;
        $expected = $expected->[$repeated_req_idx] if ref $expected eq 'ARRAY';
        my $matched = '';
        for my $line (@$lines) {
            if ((ref $grep_pat && $line =~ /$grep_pat/) || $line =~ /\Q$grep_pat\E/) {
                $matched .= "$&\n" if $& !~ /\n/;
            }
        }
        is_str($matched, $expected, "$name - grep_error_log_out $req");
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    if (defined $block->error_log) {
        my $pats = pattern_list($block->error_log);
        for my $level (keys %warn_on) {
            delete $warn_on{$level} if value_contains($pats, "[$level");
        }
        for my $line (@$lines) {
            for my $pat (@$pats) {
                next if !defined $pat || !line_matches($line, $pat);
                pass("$name - pattern \"$pat\" matches a line in error.log $req");
                undef $pat;
            }
        }
        for my $pat (grep { defined } @$pats) {
            fail("$name - pattern \"$pat\" should match a line in error.log $req");
        }
    }

    if (defined $block->no_error_log) {
        my $pats = pattern_list($block->no_error_log);
        for my $level (keys %warn_on) {
            delete $warn_on{$level} if value_contains($pats, "[$level");
        }
        my %found;
        for my $i (0 .. $#$lines) {
            for my $pat (@$pats) {
                next if !defined $pat || !line_matches($lines->[$i], $pat);
                $found{$pat} = 1;
                my ($ln, $p) = (fmt_str($lines->[$i]), fmt_str($pat));
                my @more = @$lines[$i + 1 .. min($i + 9, $#$lines - 1)];
                fail("$name - pattern \"$p\" should not match any line in error.log "
                     . "but matches line \"$ln\" $req\n" . join '', @more);
            }
        }
        for my $pat (grep { defined && !$found{$_} } @$pats) {
            pass("$name - pattern \"" . fmt_str($pat) . "\" does not match a line in error.log $req");
        }
    }

    for my $line (@$lines) {
        for my $level (keys %warn_on) {
            warn "WARNING: $name - " . fmt_str($line) . "\n" if $line =~ /\[$level\]/;
        }
        if ($line =~ /\bAssertion .*?failed\b/) {
            chomp(my $l = $line);
            fail("$name - $l\n");
        }
    }
}

1;
__END__

=head1 NAME

Test::Nginx::Socket - ngx_container's small clone of openresty/test-nginx

=head1 SYNOPSIS

    use Test::Nginx::Socket 'no_plan';
    repeat_each(1); log_level('info'); no_shuffle();
    run_tests();
    __DATA__
    === TEST 1: hello
    --- config
        location = /t { return 200 "hi\n"; }
    --- request
    GET /t
    --- response_body
    hi
    --- no_error_log
    [error]

Run with C<prove -I t/lib -r t/>.  The same files run under the real module
(C<PERL5LIB=/path/to/test-nginx/lib prove -r t/>).

=head1 SUPPORTED SUBSET

Everything below behaves as in openresty/test-nginx 0.33 (same test names,
same nginx.conf, same defaults; checked by running the same .t files under
both).  Not implemented: HUP mode, stap, tcp/udp servers, http2/3,
check-leak/benchmark, skip_*/todo, response_body_filters, access_log checks,
shutdown_error_log, curl.

Deliberate differences: nginx's stderr is printed by us, not inherited; a
config error ([emerg] not about a busy port) bails out at once instead of
after 30 s of retries; a zombie nginx counts as stopped; under
TEST_NGINX_USE_VALGRIND, valgrind's report (logs/valgrind.log) is printed
and any C<==PID==> line other than a "Warning:" fails the block (the real one
only prints it), and C<t/valgrind.suppress> is used when C<./valgrind.suppress>
is absent.

=head2 Perl functions

run_tests, run_test, repeat_each, log_level, no_shuffle, no_long_string,
master_on, master_off, master_process_enabled, workers, worker_connections,
env_to_nginx, config_preamble, no_root_location, check_accum_error_log,
timeout, server_name, server_addr, server_port, server_port_for_client,
server_root, html_dir, add_block_preprocessor, add_cleanup_handler,
add_test_cleanup_handler, add_response_body_check, bail_out, is_str; plus
what Test::Base exports (plan, blocks, is, like, ...).  Like the real
module, C<$ServerPort> and C<$ServRoot> are I<not> exported: use
server_port() / server_root() / html_dir() or C<$Test::Nginx::Util::ServerPort>.

=head2 Sections

Server: C<config> (inside C<server {}>; a block without it reuses the
running nginx of the previous block), C<http_config>, C<main_config>,
C<post_main_config>, C<server_name>, C<log_level>, C<error_log_file>,
C<user_files>, C<post_setup_server_root> (Perl code run before nginx
starts), C<init> (Perl code run after nginx started, before the requests),
C<suppress_stderr>, C<must_die> (optional exit code; only the error-log
sections are then checked).

Request: C<request> (C<METH [URL [HTTP/x.y]]> plus an optional body;
Host and Connection headers added, Content-Length added and the body
trimmed; with C<eval>, an array of requests sent one after another on fresh
connections, each one possibly an array of packets, strings or
C<{value, delay_before}>), C<more_headers> (string, or array per request),
C<pipelined_requests>, C<raw_request> (string or packets),
C<raw_request_middle_delay>, C<timeout> (client timeout per I/O event,
C<s>/C<ms>, default 3), C<abort> (a client timeout is no failure),
C<shutdown>, C<ignore_response>, C<http09>, C<server_addr_for_client>.

Response (an array value when several requests are sent): C<error_code>
(default 200), C<error_code_like>, C<response_body> (chunked bodies are
decoded; C<eval> qr// allowed), C<response_body_like>,
C<response_body_unlike>, C<response_headers> (C<Name: value>, C<!Name>),
C<response_headers_like>, C<raw_response_headers_like>,
C<raw_response_headers_unlike>.  C<$ServerPort> in expected bodies and
header values is replaced by the port.

Error log: C<error_log>, C<no_error_log> (lines are substrings; with
C<eval>: arrays of strings or qr//), C<grep_error_log> +
C<grep_error_log_out> (first match of each line, one per line), C<wait>
(seconds to sleep before the checks).  They run after every request of a
block (including each pipelined one) and see only the lines logged since
the previous check (whole log with check_accum_error_log); an array value
of grep_error_log(_out) is indexed by the repeat_each round.  [alert],
[crit] and [emerg] lines not mentioned by these sections are printed as
warnings; "Assertion ... failed" lines fail.

Test::Base markers and filters: ONLY, SKIP, LAST, eval, chomp, chop, ...

=head2 Environment

TEST_NGINX_BINARY (default nginx in PATH, else /usr/sbin/nginx),
TEST_NGINX_SERVER_PORT / TEST_NGINX_PORT / TEST_NGINX_CLIENT_PORT (1984),
TEST_NGINX_SERVROOT (t/servroot), TEST_NGINX_LOAD_MODULES (absolute paths:
nginx resolves relative ones against servroot), TEST_NGINX_SLEEP (0.015),
TEST_NGINX_TIMEOUT (3), TEST_NGINX_NO_CLEAN, TEST_NGINX_NO_SHUFFLE (blocks
are shuffled by default), TEST_NGINX_LOG_LEVEL (debug),
TEST_NGINX_MASTER_PROCESS (off), TEST_NGINX_FORCE_RESTART_ON_TEST (1),
TEST_NGINX_CHECK_ACCUM_ERR_LOG, TEST_NGINX_EVENT_TYPE,
TEST_NGINX_WORKER_USER, TEST_NGINX_FAST_SHUTDOWN, TEST_NGINX_VERBOSE,
TEST_NGINX_USE_VALGRIND (nginx runs in the foreground under valgrind).

C<$TEST_NGINX_FOO> is replaced by C<$ENV{TEST_NGINX_FOO}> (a missing variable
bails out) in config, http_config, main_config, post_main_config,
error_log_file, user_files, pipelined_requests, grep_error_log_out and
(string) response_body, but not in request, more_headers or error_log,
exactly like the real one; C<$TEST_NGINX_RAND_PORT_N> gives a free port.
TEST_NGINX_SERVER_ROOT and TEST_NGINX_SERVER_PORT are set for the tests.

=cut
