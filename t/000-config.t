# nginx -t errors: every bad directive names itself and its file:line
use Test::Nginx::Socket 'no_plan';

no_shuffle();
run_tests();

__DATA__

=== TEST 1: "container" without "container_registry"
--- config
    location /c/ {
        container echo $uri;
        proxy_pass http://127.0.0.1:1;
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*"container" in \S+nginx\.conf:\d+ needs "container_registry" in the http block/



=== TEST 2: a class with characters that are not allowed
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        container "a{b" $uri;
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid class "a\{b": only letters, digits, "_", "-" and "\." in \S+nginx\.conf:\d+/



=== TEST 3: "container" with one argument
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        container echo;
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid number of arguments in "container" directive in \S+nginx\.conf:\d+/



=== TEST 4: a registry address without a port
--- http_config
    container_registry 127.0.0.1;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*no port in registry address "127\.0\.0\.1" in \S+nginx\.conf:\d+/



=== TEST 5: a malformed registry address
--- http_config
    container_registry 127.0.0.1:port;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid registry address "127\.0\.0\.1:port": invalid port in \S+nginx\.conf:\d+/



=== TEST 6: an unknown registry parameter
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=1s;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "timeout=1s" in \S+nginx\.conf:\d+/



=== TEST 7: a bad db number
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT db=x;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "db=x" in \S+nginx\.conf:\d+/



=== TEST 8: the password is never echoed
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT password=;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid parameter "password=" in \S+nginx\.conf:\d+/



=== TEST 9: "container_registry" twice
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*"container_registry" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 10: "container_balancer" after "keepalive"
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        keepalive 8;
        container_balancer;
    }
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*"container_balancer" must come before "keepalive" and any other balancing method in upstream "containers" in \S+nginx\.conf:\d+/



=== TEST 11: a bad wake timeout
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        container echo $uri;
        container_wake_timeout soon;
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*"container_wake_timeout" directive invalid value in \S+nginx\.conf:\d+/



=== TEST 12: "container_balancer" needs no server, and a good config starts
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT db=0 connect_timeout=500ms;
    upstream containers {
        container_balancer;
        keepalive 8;
    }
--- config
    location /t { return 200 "up\n"; }
--- request
GET /t
--- response_body
up
--- no_error_log
[error]
[emerg]



=== TEST 13: a wake timeout of 0
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        container echo $uri;
        container_wake_timeout 0;
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*"container_wake_timeout" directive must be more than 0 in \S+nginx\.conf:\d+/



=== TEST 14: "container_balancer" twice
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        container_balancer;
        container_balancer;
    }
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*"container_balancer" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 15: "container_balancer" with a "server" that would be ignored
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        container_balancer;
        server 127.0.0.1:8080;
    }
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "containers" in \S+nginx\.conf:\d+ has "container_balancer" and a "server": its peers are the instances, remove the "server"/



=== TEST 16: "container_balancer" with a "zone", which nginx would crash on
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
    upstream containers {
        container_balancer;
        zone containers 64k;
    }
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*upstream "containers" in \S+nginx\.conf:\d+ has "container_balancer" and a "zone", which it cannot use: remove the "zone"/



=== TEST 17: a registry parameter given twice
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT db=1 password=a db=2;
--- config
    location /t { return 200; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] .*duplicate parameter "db=" in \S+nginx\.conf:\d+/



=== TEST 18: an ID that is empty for every request
--- http_config
    container_registry 127.0.0.1:$TEST_NGINX_REDIS_PORT;
--- config
    location /c/ {
        container echo "";
    }
--- request
GET /c/x
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid id "": the object ID must not be empty in \S+nginx\.conf:\d+/

