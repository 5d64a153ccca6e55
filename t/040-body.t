# Request bodies held with a cold request reach the container intact
use Test::Nginx::Socket 'no_plan';
use Digest::SHA qw(sha256_hex);

our $HttpConfig = qq{
    container_registry 127.0.0.1:\$TEST_NGINX_REDIS_PORT;

    upstream containers {
        container_balancer;
        keepalive 8;
    }
};

our $Config = q{
    location ~ ^/echo/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Cache $container_cache always;
    }

    location ~ ^/stream/(?<oid>[^/]+)(?<rest>/.*)$ {
        container echo $oid;
        rewrite ^ $rest break;
        proxy_pass http://containers;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_request_buffering off;
        add_header X-Cache $container_cache always;
    }
};

# 1 MiB that is not one byte repeated, so a lost or moved piece shows
our $Body = join '', map { pack 'N', $_ * 2654435761 % 4294967296 }
                     0 .. 262143;
our $Sha = sha256_hex($Body);

# the same body, sent chunked in pieces of 64 KiB
our $Chunked = join('', map { sprintf("%x\r\n", length $_) . "$_\r\n" }
                        unpack('(a65536)*', $Body)) . "0\r\n\r\n";

no_shuffle();
no_long_string();
run_tests();

__DATA__

=== TEST 1: a 1 MiB POST to a cold ID arrives with the same sha256
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request eval
"POST /echo/body-post/upload\n" . $::Body
--- response_body_like eval
qr{^method=POST\npath=/upload\nid=body-post\npid=\d+\nbytes=1048576\nsha256=$::Sha\n}
--- response_headers
X-Cache: cold
--- timeout: 10
--- no_error_log
[error]



=== TEST 2: a chunked 1 MiB PUT to a cold ID, streamed unbuffered
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- raw_request eval
"PUT /stream/body-chunked/upload HTTP/1.1\r
Host: localhost\r
Transfer-Encoding: chunked\r
Connection: close\r
\r
" . $::Chunked
--- response_body_like eval
qr{^method=PUT\npath=/upload\nid=body-chunked\npid=\d+\nbytes=1048576\nsha256=$::Sha\n}
--- response_headers
X-Cache: cold
--- timeout: 10
--- no_error_log
[error]



=== TEST 3: a 20 MB answer streams through
--- http_config eval: $::HttpConfig
--- config eval: $::Config
--- request
GET /stream/body-stream/stream?bytes=20000000&cl=1
--- response_headers
Content-Length: 20000000
--- response_body eval
pack('C*', 0 .. 255) x 78125
--- timeout: 20
--- no_error_log
[error]
