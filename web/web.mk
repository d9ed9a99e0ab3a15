# web.mk: `make web`, the browser app (included by the Makefile). It compiles the engine
# (src/status.c, src/nn, src/model, plus src/io/fsutil.c and src/io/resize.c, which have
# no library dependencies) and web/src/wasm_api.c to WebAssembly twice with Debian's
# emscripten:
#   cartoongan_st.{js,wasm}              SIMD128, one thread: works on any page
#   cartoongan_mt.{js,wasm,worker.js}    SIMD128 + pthreads: used when the page is
#                                        cross-origin isolated (SharedArrayBuffer)
# and lays out build/web/ with the page, those, and the weights (hard links of weights/,
# so `cartoongan serve` finds everything inside one folder, plus fp16 copies made by
# `cartoongan export --fp16`).

EMCC      ?= emcc
# Debian's emcc needs its node modules on NODE_PATH; its cache is left alone (EM_CACHE).
EMCC_ENV  := NODE_PATH=/usr/share/nodejs
WEB_OUT   := $(BUILD)/web
WEB_CSRC  := src/status.c $(wildcard src/nn/*.c src/model/*.c) src/io/fsutil.c src/io/resize.c \
             web/src/wasm_api.c
WEB_HDRS  := $(wildcard include/*.h src/*.h src/nn/*.h src/model/*.h src/io/*.h)
WEB_CFLAGS := -std=c11 $(WARN) -O3 -msimd128 -Iinclude -Isrc -D_GNU_SOURCE
# 4 GB is wasm32's whole address space; the page refuses images that would need more.
WEB_LFLAGS := -sMODULARIZE=1 -sEXPORT_NAME=createCartoonGAN -sALLOW_MEMORY_GROWTH=1 \
              -sMAXIMUM_MEMORY=4GB -sEXPORTED_RUNTIME_METHODS=UTF8ToString -sFILESYSTEM=0
# The pool of pthread workers is started with the module (a worker cannot be started
# while the calling thread blocks in the network); its size comes from the page
# (Module.cgPoolSize). A thread asked for beyond it fails, and the engine's pool then
# runs with fewer threads rather than deadlock.
WEB_MT_LFLAGS := -pthread -sPTHREAD_POOL_SIZE='Module["cgPoolSize"]' -sPTHREAD_POOL_SIZE_STRICT=2 \
                 -Wno-pthreads-mem-growth -sENVIRONMENT=web,worker
WEB_STATIC := $(wildcard web/*.html web/*.js web/*.css web/*.svg)
# The page offers the four full styles and the two light ones: LIGHT_STYLES joins STYLES
# here only, since STYLES is what --all-styles and the tests mean by every style.
WEB_STYLES := $(STYLES) $(LIGHT_STYLES)
WEB_WEIGHTS := $(WEB_STYLES:%=$(WEB_OUT)/weights/%.safetensors) $(WEB_STYLES:%=$(WEB_OUT)/weights/%.f16.safetensors)

.PHONY: web
web: $(WEB_OUT)/cartoongan_st.js $(WEB_OUT)/cartoongan_mt.js $(WEB_STATIC:web/%=$(WEB_OUT)/%) $(WEB_WEIGHTS)

$(WEB_OUT)/cartoongan_st.js: $(WEB_CSRC) $(WEB_HDRS) web/web.mk
	@mkdir -p $(dir $@)
	$(EMCC_ENV) $(EMCC) $(WEB_CFLAGS) $(WEB_CSRC) -o $@ $(WEB_LFLAGS) -sENVIRONMENT=web,worker,node

$(WEB_OUT)/cartoongan_mt.js: $(WEB_CSRC) $(WEB_HDRS) web/web.mk
	@mkdir -p $(dir $@)
	$(EMCC_ENV) $(EMCC) $(WEB_CFLAGS) -pthread $(WEB_CSRC) -o $@ $(WEB_LFLAGS) $(WEB_MT_LFLAGS)

$(WEB_OUT)/%: web/%
	@mkdir -p $(dir $@)
	cp $< $@

# A hard link costs no space; a copy where weights/ is on another file system. Never a
# symbolic link: `cartoongan serve` refuses links that lead outside its folder.
$(WEB_OUT)/weights/%.safetensors: $(WEIGHTS_DIR)/%.safetensors
	@mkdir -p $(dir $@)
	ln -f $< $@ 2>/dev/null || cp $< $@

$(WEB_OUT)/weights/%.f16.safetensors: $(WEIGHTS_DIR)/%.safetensors | $(BUILD)/cartoongan
	@mkdir -p $(dir $@)
	$(BUILD)/cartoongan export --fp16 --force --quiet $< $@

# The kernels' test (tests/test_kernels.c, every micro-kernel including the wasm one)
# built for node with pthreads, run by tests/web/run.sh. Its own folder says CommonJS:
# the repository's package.json says ESM, which emscripten's node output is not.
WEB_TEST_OUT := $(BUILD)/wasm-test
$(WEB_TEST_OUT)/test_kernels.js: tests/test_kernels.c tests/test.h $(WEB_CSRC) $(WEB_HDRS) web/web.mk
	@mkdir -p $(dir $@)
	echo '{"type": "commonjs"}' > $(dir $@)package.json
	$(EMCC_ENV) $(EMCC) $(WEB_CFLAGS) -pthread -Itests tests/test_kernels.c \
	    $(filter-out web/src/wasm_api.c,$(WEB_CSRC)) -o $@ -sALLOW_MEMORY_GROWTH=1 \
	    -sMAXIMUM_MEMORY=2GB -sPTHREAD_POOL_SIZE=4 -Wno-pthreads-mem-growth -sENVIRONMENT=node \
	    -sEXIT_RUNTIME=1
