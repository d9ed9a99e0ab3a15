# Makefile for cartoongan: the library, the CLI, the weights, the tests and the benchmark.
#   make          build build/cartoongan, set up the six styles' weights in weights/ (the four
#                 released ones and the seed's two light ones) and, when input_images/ is
#                 not there yet, the seed's two sample photos in it
#   make test     build and run every test (the command CI runs)
#   make bench    time cartoonize against PyTorch and ONNX Runtime on this machine (not part of test)
#   make asan     build everything with AddressSanitizer, UBSan and LeakSanitizer into
#                 build-asan/ and run the whole test suite with it (CI runs it too)
#   make fuzz     build the libFuzzer targets (tests/fuzz/) into build-fuzz/ and run each
#                 for FUZZ_SECONDS (default 60); FUZZ_TARGETS=fuzz_png picks some
#   make web      build the browser app (WebAssembly) into build/web/ (web/web.mk);
#                 `build/cartoongan serve` serves it
#   make bench-web  time the browser app against TensorFlow.js in headless Chromium
#   make install  install the command, the library (static and shared), its header and
#                 pkg-config file, the man pages and the weights into PREFIX (default
#                 /usr/local), under DESTDIR if given; `make uninstall` removes them;
#                 `make deb` makes a Debian package (packaging/install.mk)

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
WARN    := -Wall -Wextra -Wpedantic -Werror
PKGS    := libpng libwebp libwebpdemux libwebpmux libheif libcurl libexif imagequant libavformat libavcodec libswscale libavutil libmicrohttpd hdf5 libcrypto \
           libprotobuf-c
# $(BUILD)/gen holds the C that protoc-c generates from proto/*.proto (never checked in).
CPPFLAGS += -Iinclude -Isrc -I$(BUILD)/gen -D_GNU_SOURCE
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(CPPFLAGS) $(shell pkg-config --cflags $(PKGS)) \
             -DCG_DEFAULT_WEIGHTS_DIR='"$(WEIGHTS_DIR)"' -pthread
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -ljpeg -lgif -lm -pthread

STYLES          := shinkai hayao hosoda paprika
WEIGHTS_DIR     ?= $(CURDIR)/weights
SHARED_WEIGHTS  ?= $(CURDIR)/../shared/weights/cartoongan
WEIGHT_FILES    := $(STYLES:%=$(WEIGHTS_DIR)/%.safetensors)
# The seed project's light generator (issue 13), from its TensorFlow 2 checkpoints, which
# are kept in $(WEIGHTS_DIR)/ckpt/ for tests/test_tfckpt.c.
LIGHT_STYLES    := light_shinkai light_paprika
SHARED_LIGHT_WEIGHTS ?= $(CURDIR)/../shared/weights/cartoongan_light
LIGHT_CKPTS     := $(LIGHT_STYLES:%=$(WEIGHTS_DIR)/ckpt/%_ckpt)
LIGHT_FILES     := $(LIGHT_STYLES:%=$(WEIGHTS_DIR)/%.safetensors)
# cartoonize's default --input-dir, relative as there: `make` runs in the repository root.
PHOTOS_DIR      ?= input_images
SHARED_PHOTOS   ?= $(CURDIR)/../shared/data/photos/seed_project

LIB_SRC  := $(wildcard src/*.c src/nn/*.c src/model/*.c src/io/*.c src/train/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(wildcard tests/test_*.c)
# TensorBoard's Event/Summary messages (src/io/events.c): proto/X.proto becomes
# $(BUILD)/gen/X.pb-c.c and .h, compiled into the library like any other source.
PROTO_SRC := $(wildcard proto/*.proto)
PROTO_C   := $(PROTO_SRC:proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H   := $(PROTO_C:.c=.h)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# The fuzz targets (tests/fuzz/fuzz_*.c). They and test_regressions, which replays their
# saved inputs, link the CLI's objects without its main(): main.c built again, renamed.
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_COMMON  := $(BUILD)/obj/tests/fuzz/image_common.o
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(BUILD)/obj/%.o) $(FUZZ_COMMON)
CLI_NOMAIN   := $(filter-out $(BUILD)/obj/src/cli/main.o,$(CLI_OBJ)) $(BUILD)/obj/src/cli/main-nomain.o

SAN_FLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 60
# Sanitizer builds reserve terabytes of virtual memory, so test_cli.sh's ulimit -v is off.
ifneq ($(filter -fsanitize=%,$(CFLAGS)),)
TEST_ENV := VMEM_LIMIT_KB= UBSAN_OPTIONS=print_stacktrace=1
endif

.PHONY: all weights photos test bench bench-train bench-web clean asan fuzz fuzz-build
all: $(BUILD)/cartoongan $(BUILD)/tools/train_step weights photos

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# One protoc-c run makes both files (a pattern rule with two targets runs once for both).
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The generated headers must exist before anything that includes them is compiled; -MMD
# only knows that after a first build.
$(BUILD)/obj/src/io/events.o $(BUILD)/obj/src/io/tfckpt.o: $(PROTO_H)

$(BUILD)/obj/src/cli/main-nomain.o: src/cli/main.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Dmain=cg_cli_main -MMD -MP -c $< -o $@

$(BUILD)/libcartoongan.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/cartoongan: $(CLI_OBJ) $(BUILD)/libcartoongan.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libcartoongan.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcartoongan.a $(LDLIBS)

# Fixture generators in tools/ that link the library (make_test_media: tests/data/media/).
$(BUILD)/tools/%: tools/%.c $(BUILD)/libcartoongan.a tests/train_fixtures.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcartoongan.a $(LDLIBS)

$(BUILD)/tests/test_regressions: tests/test_regressions.c $(FUZZ_OBJ) $(CLI_NOMAIN) $(BUILD)/libcartoongan.a tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(FUZZ_OBJ) $(CLI_NOMAIN) $(BUILD)/libcartoongan.a $(LDLIBS)

# Each style's weights: converted from ../shared/weights/cartoongan/<style>/*.npy when
# present, otherwise downloaded from the upstream release first (tools/fetch_weights.sh).
weights: $(WEIGHT_FILES) $(LIGHT_FILES)
$(WEIGHTS_DIR)/%.safetensors: | $(BUILD)/cartoongan
	CARTOONGAN_BIN=$(BUILD)/cartoongan tools/fetch_weights.sh $* "$(SHARED_WEIGHTS)" $@

# The light styles: the checkpoint folder copied from ../shared/weights/cartoongan_light/
# when present, otherwise downloaded from the upstream repository at a pinned commit
# (tools/fetch_light_ckpt.sh, which checks its SHA-256), then converted by `cartoongan
# export`, which checks every CRC32C and every tensor's name and shape.
$(LIGHT_CKPTS): $(WEIGHTS_DIR)/ckpt/%_ckpt:
	tools/fetch_light_ckpt.sh $* "$(SHARED_LIGHT_WEIGHTS)" $@
$(LIGHT_FILES): $(WEIGHTS_DIR)/%.safetensors: | $(WEIGHTS_DIR)/ckpt/%_ckpt $(BUILD)/cartoongan
	$(BUILD)/cartoongan export --force --quiet $(WEIGHTS_DIR)/ckpt/$*_ckpt $@

# The seed project's sample photos (temple.jpg, origami.jpg), so that `build/cartoongan
# cartoonize` with no arguments has something to cartoonize: copied from
# ../shared/data/photos/seed_project when present, otherwise downloaded from the upstream
# repository (tools/fetch_photos.sh, which checks their SHA-256). Only when input_images/
# does not exist: after that it is the user's folder, and photos removed from it stay gone.
photos: $(PHOTOS_DIR)
$(PHOTOS_DIR):
	tools/fetch_photos.sh "$(SHARED_PHOTOS)" $@

# The browser app's tests (tests/web/run.sh) need emscripten, Chromium and npm's
# playwright-core (.ci/run installs them), and skip with a reason otherwise; they run in
# the default build only (the sanitizer builds would only rebuild the same wasm).
include web/web.mk
include mk/mpi.mk
ifeq ($(BUILD),build)
WEB_TESTS := tests/web/run.sh
WEB_TEST_DEPS := $(if $(shell command -v $(EMCC)),web $(WEB_TEST_OUT)/test_kernels.js)
endif

# make install, uninstall, shared, man and deb; and what tests/test_install.sh needs built.
include packaging/install.mk

test: $(BUILD)/cartoongan $(BUILD)/tools/train_step $(BUILD)/tools/train_fixture_files $(TESTS) weights $(WEB_TEST_DEPS) \
      $(INSTALL_TEST_DEPS)
	CARTOONGAN_WEIGHTS=$(WEIGHTS_DIR) CARTOONGAN_BIN=$(CURDIR)/$(BUILD)/cartoongan \
	    CARTOONGAN_TRAIN_STEP=$(CURDIR)/$(BUILD)/tools/train_step CARTOONGAN_BUILD=$(BUILD) $(TEST_ENV) \
	    tests/run.sh $(TESTS) tests/test_serve.sh $(WEB_TESTS) $(INSTALL_TESTS)

# bench/bench.sh also runs ONNX Runtime: npm's onnxruntime-node (its install script only
# downloads; the CPU library ships in the package) and the generator exported to
# build/onnx/<style>.onnx by tools/export_onnx.py. Either missing piece is set up here
# when npm / Debian's torch are there, and otherwise left out of the benchmark.
BENCH_STYLE = $(or $(STYLE),hayao)
bench: $(BUILD)/cartoongan weights build/fma_peak
	@[ -d node_modules/onnxruntime-node ] || ! command -v npm >/dev/null || \
	    npm install --ignore-scripts --no-audit --no-fund || echo "make bench: npm install failed"
	@[ -f build/onnx/$(BENCH_STYLE).onnx ] || ! /usr/bin/python3 -c 'import torch' 2>/dev/null || \
	    /usr/bin/python3 tools/export_onnx.py --style $(BENCH_STYLE) || echo "make bench: ONNX export failed"
	CARTOONGAN_BIN=$(BUILD)/cartoongan STYLE=$(BENCH_STYLE) bench/bench.sh
	@[ -f build/onnx/light_shinkai.onnx ] || ! /usr/bin/python3 -c 'import torch' 2>/dev/null || \
	    /usr/bin/python3 tools/export_onnx_light.py --style shinkai --ckpt $(WEIGHTS_DIR)/ckpt/light_shinkai_ckpt || echo "make bench: light ONNX export failed"
	CARTOONGAN_BIN=$(BUILD)/cartoongan bench/light_bench.sh
	@echo "make bench: the browser build against TensorFlow.js is timed by 'make bench-web'"

# In headless Chromium: the wasm build against TensorFlow.js's wasm backend, 2 threads.
bench-web: web
	@[ -d web/node_modules/@tensorflow/tfjs-backend-wasm ] || npm ci --prefix web --ignore-scripts --no-audit --no-fund
	CARTOONGAN_BIN=$(BUILD)/cartoongan node bench/web_bench.mjs

# The training step (issue "Training engine") against PyTorch's, batch 4 at 256x256 on 2
# threads: bench/train_bench.sh (needs Debian's python3-torch for the PyTorch side).
bench-train: $(BUILD)/train_bench weights
	CARTOONGAN_TRAIN_BENCH=$(BUILD)/train_bench bench/train_bench.sh

$(BUILD)/train_bench: bench/train_bench.c $(BUILD)/libcartoongan.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcartoongan.a $(LDLIBS)

build/fma_peak: bench/fma_peak.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) -O2 -pthread -o $@ $<

# The same sources and tests in their own build folder, so they never mix with build/.
asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(SAN_FLAGS)" test

# libFuzzer needs clang; the library is instrumented for coverage as well as sanitized.
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(SAN_FLAGS) -fsanitize=fuzzer-no-link -DCG_LIBFUZZER" fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(FUZZ_COMMON) $(CLI_NOMAIN) $(BUILD)/libcartoongan.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_OBJ:.o=.d) $(BUILD)/obj/src/cli/main-nomain.d
