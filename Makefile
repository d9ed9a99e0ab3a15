# Makefile for cartoongan: the library, the CLI, the weights, the tests and the benchmark.
#   make          build build/cartoongan and set up the four styles' weights in weights/
#   make test     build and run every test (the command CI runs)
#   make bench    time cartoonize against PyTorch on this machine (not part of test)

CC      ?= cc
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wpedantic -Werror
PKGS    := libpng libwebp libexif
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(CPPFLAGS) $(shell pkg-config --cflags $(PKGS)) \
             -DCG_DEFAULT_WEIGHTS_DIR='"$(WEIGHTS_DIR)"' -pthread
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -ljpeg -lm -pthread

STYLES          := shinkai hayao hosoda paprika
WEIGHTS_DIR     ?= $(CURDIR)/weights
SHARED_WEIGHTS  ?= $(CURDIR)/../shared/weights/cartoongan
WEIGHT_FILES    := $(STYLES:%=$(WEIGHTS_DIR)/%.safetensors)

LIB_SRC  := $(wildcard src/*.c src/nn/*.c src/model/*.c src/io/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
LIB_OBJ  := $(LIB_SRC:%.c=build/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=build/obj/%.o)
TESTS    := $(TEST_SRC:tests/%.c=build/tests/%)

.PHONY: all weights test bench clean
all: build/cartoongan weights

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

build/libcartoongan.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

build/cartoongan: $(CLI_OBJ) build/libcartoongan.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

build/tests/%: tests/%.c build/libcartoongan.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< build/libcartoongan.a $(LDLIBS)

# Each style's weights: converted from ../shared/weights/cartoongan/<style>/*.npy when
# present, otherwise downloaded from the upstream release first (tools/fetch_weights.sh).
weights: $(WEIGHT_FILES)
$(WEIGHTS_DIR)/%.safetensors: | build/cartoongan
	tools/fetch_weights.sh $* "$(SHARED_WEIGHTS)" $@

test: build/cartoongan $(TESTS) weights
	CARTOONGAN_WEIGHTS=$(WEIGHTS_DIR) tests/run.sh $(TESTS)

bench: build/cartoongan weights
	bench/bench.sh

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
