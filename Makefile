# The two commands of the README:
#   make demo    installs what is missing, builds, runs the archive job
#   make test    installs what is missing, builds, runs the suite

CFLAGS   ?= -g -O2 -Wall -Wextra -Wno-unused-parameter -Werror
LAUNCHER_PKGS = hiredis libcjson libevent

LAUNCHER_SRCS = $(wildcard launcher/*.c)
LAUNCHER_HDRS = $(wildcard launcher/*.h)
MODULE_SRCS   = $(wildcard ngx_container_module/*.c ngx_container_module/*.h)

.PHONY: all deps module launcher demo test bench clean

all: module launcher

deps:
	@scripts/install-deps.sh

module: build/ngx_http_container_module.so

build/ngx_http_container_module.so: config $(MODULE_SRCS)
	scripts/build-module.sh

launcher: build/ngx-container-launcher

build/ngx-container-launcher: $(LAUNCHER_SRCS) $(LAUNCHER_HDRS)
	@mkdir -p build
	$(CC) $(CFLAGS) $$(pkg-config --cflags $(LAUNCHER_PKGS)) \
	    -o $@ $(LAUNCHER_SRCS) $$(pkg-config --libs $(LAUNCHER_PKGS))

demo: deps
	$(MAKE) all
	scripts/demo.sh

test: deps
	$(MAKE) all
	scripts/check-style.sh
	scripts/test.sh

bench: deps
	$(MAKE) all
	scripts/bench.sh

clean:
	rm -rf build
