# install.mk: installing cartoongan as C libraries install (included by the Makefile; see
# README, "Installing"):
#   make install     PREFIX/bin/cartoongan, PREFIX/include/cartoongan.h,
#                    LIBDIR/libcartoongan.a, LIBDIR/libcartoongan.so.0 (and .so),
#                    LIBDIR/pkgconfig/cartoongan.pc, PREFIX/share/man/man1/cartoongan*.1,
#                    the styles' weights that `make` set up in
#                    PREFIX/share/cartoongan/weights/ (INSTALL_WEIGHTS=0: none), and the
#                    browser app in PREFIX/share/cartoongan/web/ when `make web` has built
#                    it (without its weights: `serve` takes those from the weights
#                    folders), all under DESTDIR when given
#   make uninstall   removes what install put there (same PREFIX, LIBDIR and DESTDIR)
#   make shared      only the shared library, in $(BUILD)/
#   make man         only the man pages, in $(BUILD)/inst/man/
#   make deb         $(BUILD)/cartoongan_VERSION_ARCH.deb (tools/make_deb.sh), with the
#                    browser app when emscripten is there to build it
#
# The shared library is built from its own objects ($(BUILD)/pic/): position-independent
# and with hidden visibility, so that only the API of include/cartoongan.h is exported;
# build/libcartoongan.a and build/cartoongan keep the objects `make` has always built.
# The installed command ($(BUILD)/inst/cartoongan) is build/cartoongan with one object
# compiled differently: src/cli/weights.c, which then looks for the styles in the user's
# folder and PREFIX/share/cartoongan/weights instead of the checkout's weights/. It links
# the static library, as build/cartoongan does, so it runs from any PREFIX without
# ldconfig or an rpath.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
PKGDATADIR := $(DATADIR)/cartoongan
INSTALL_WEIGHTS ?= 1
HELP2MAN   ?= help2man

VERSION   := $(shell sed -n 's/^\#define CG_VERSION "\(.*\)"/\1/p' include/cartoongan.h)
SOVERSION := 0
SONAME    := libcartoongan.so.$(SOVERSION)
SHLIB     := $(BUILD)/libcartoongan.so.$(VERSION)
INST      := $(BUILD)/inst
MAP       := packaging/libcartoongan.map

PIC_OBJ   := $(LIB_OBJ:$(BUILD)/obj/%=$(BUILD)/pic/%)
PIC_FLAGS := -fPIC -fvisibility=hidden
# Debian's defaults for what is installed (lintian's hardening checks): read-only
# relocations, bound at load time.
HARDEN_LDFLAGS := -Wl,-z,relro -Wl,-z,now
# The library's own dependencies, for the .pc file: the command's alone (libmicrohttpd,
# for `serve`; libcrypto, for fetch-weights' SHA-256) left out.
LIB_LIBS  := $(filter-out -lmicrohttpd -lcrypto,$(LDLIBS))

# The subcommands that get a man page of their own (cartoongan-CMD.1); tests/test_install.sh
# checks that it is every command `cartoongan --help` lists.
MAN_CMDS  := cartoonize bench export fetch-weights serve smooth train
MAN_PAGES := $(INST)/man/cartoongan.1 $(MAN_CMDS:%=$(INST)/man/cartoongan-%.1)

.PHONY: install uninstall shared man deb FORCE

# `make test` runs tests/test_install.sh with what install needs built first; not in the
# sanitizer builds, whose library would need the sanitizer's runtime preloaded into
# Python and every program the examples build.
ifeq ($(filter -fsanitize=%,$(CFLAGS)),)
INSTALL_TESTS     := tests/test_install.sh
INSTALL_TEST_DEPS  = $(INST)/cartoongan $(BUILD)/libcartoongan.so $(BUILD)/cartoongan.pc $(MAN_PAGES)
endif

$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PIC_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PIC_FLAGS) -MMD -MP -c $< -o $@

$(BUILD)/pic/src/io/events.o $(BUILD)/pic/src/io/tfckpt.o: $(PROTO_H)

# --no-undefined: every symbol the library uses is resolved by the libraries it names, so
# it loads on its own (Python's ctypes, a plug-in); --as-needed: it depends only on those.
$(SHLIB): $(PIC_OBJ) $(MAP)
	$(CC) -shared $(CFLAGS) $(LDFLAGS) $(HARDEN_LDFLAGS) -pthread -Wl,-soname,$(SONAME) -Wl,--version-script=$(MAP) \
	    -Wl,--no-undefined -Wl,--as-needed -o $@ $(PIC_OBJ) $(LIB_LIBS)

$(BUILD)/$(SONAME): $(SHLIB)
	ln -sf $(notdir $<) $@

$(BUILD)/libcartoongan.so: $(BUILD)/$(SONAME)
	ln -sf $(notdir $<) $@

shared: $(BUILD)/libcartoongan.so

# The install paths the installed command and cartoongan.pc are made with, rewritten only
# when they change, so that a new PREFIX rebuilds those (and the man pages) and nothing else.
INSTALL_PATHS := $(PREFIX) $(LIBDIR) $(INCLUDEDIR) $(PKGDATADIR)
$(INST)/paths: FORCE
	@mkdir -p $(dir $@)
	@echo '$(INSTALL_PATHS)' | cmp -s - $@ || echo '$(INSTALL_PATHS)' >$@

$(INST)/weights.o: src/cli/weights.c $(INST)/paths
	$(CC) $(ALL_CFLAGS) -UCG_DEFAULT_WEIGHTS_DIR -DCG_INSTALLED_DATA_DIR='"$(PKGDATADIR)"' \
	    -MMD -MP -c $< -o $@

$(INST)/cartoongan: $(filter-out $(BUILD)/obj/src/cli/weights.o,$(CLI_OBJ)) $(INST)/weights.o $(BUILD)/libcartoongan.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) $(HARDEN_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/cartoongan.pc: packaging/cartoongan.pc.in $(INST)/paths
	sed -e 's|@PREFIX@|$(PREFIX)|' \
	    -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(strip $(LIB_LIBS))|' $< >$@.tmp
	mv $@.tmp $@

# The man pages are the commands' own --help, through help2man, so they never drift. help2man
# runs one program, so each goes through a small wrapper named cartoongan or cartoongan-CMD
# (the page's name), which passes the help through packaging/help_for_man.sh (the usage
# block as help2man reads a SYNOPSIS); --help is read with CARTOONGAN_WEIGHTS unset, as it
# describes the lookup.
man: $(MAN_PAGES)

H2M = env -u CARTOONGAN_WEIGHTS $(HELP2MAN) --no-info --section=1 --version-string='$(VERSION)' \
          --source='cartoongan $(VERSION)'
define man_wrapper # FILE, SUBCOMMAND
printf '#!/bin/sh\nexec "%s" "%s" %s "$$@"\n' '$(abspath packaging/help_for_man.sh)' \
    '$(abspath $(INST)/cartoongan)' '$2' >$1
chmod +x $1
endef

$(INST)/man/cartoongan-%.1: $(INST)/cartoongan packaging/help_for_man.sh
	@mkdir -p $(dir $@)
	$(call man_wrapper,$(INST)/man/cartoongan-$*,$*)
	$(H2M) --name="$$($< --help | sed -n 's/^  $* *//p')" --output=$@.tmp $(INST)/man/cartoongan-$*
	mv $@.tmp $@

$(INST)/man/cartoongan.1: $(INST)/cartoongan packaging/help_for_man.sh
	@mkdir -p $(dir $@)
	$(call man_wrapper,$(INST)/man/cartoongan,)
	{ echo '[SEE ALSO]'; for c in $(MAN_CMDS); do echo ".BR cartoongan-$$c (1)"; done | sed '$$!s/$$/,/'; } \
	    >$(INST)/man/see-also.h2m
	$(H2M) --name='turn photos into anime-style images (CartoonGAN)' \
	    --include=$(INST)/man/see-also.h2m --output=$@.tmp $(INST)/man/cartoongan
	mv $@.tmp $@

INSTALLED_WEIGHTS := $(if $(filter 1,$(INSTALL_WEIGHTS)),$(wildcard $(WEIGHT_FILES) $(LIGHT_FILES)))

# The browser app (web/web.mk) as `make web` left it in $(WEB_OUT), its weights/ left out:
# the installed `cartoongan serve` answers the page's weights/ requests from the folders
# styles are looked up in (PREFIX/share/cartoongan/weights, the user's), so the weights are
# installed once and the ones `fetch-weights` downloads are found too. Installed only when
# it is all there; `make install` does not build it (that needs emscripten).
WEB_APP_FILES = $(notdir $(WEB_STATIC)) cartoongan_st.js cartoongan_st.wasm cartoongan_mt.js \
                cartoongan_mt.wasm cartoongan_mt.worker.js
WEB_APP_BUILT = $(if $(filter-out $(wildcard $(WEB_APP_FILES:%=$(WEB_OUT)/%)),$(WEB_APP_FILES:%=$(WEB_OUT)/%)),,yes)
# what `make deb` builds of it: the app without the weights `make web` lays out beside it
WEB_APP = $(WEB_OUT)/cartoongan_st.js $(WEB_OUT)/cartoongan_mt.js $(WEB_STATIC:web/%=$(WEB_OUT)/%)

install: $(INST)/cartoongan $(BUILD)/libcartoongan.a $(SHLIB) $(BUILD)/cartoongan.pc $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(PKGDATADIR)/weights
	install -m 0755 $(INST)/cartoongan $(DESTDIR)$(BINDIR)/cartoongan
	install -m 0644 include/cartoongan.h $(DESTDIR)$(INCLUDEDIR)/cartoongan.h
	install -m 0644 $(BUILD)/libcartoongan.a $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcartoongan.so
	install -m 0644 $(BUILD)/cartoongan.pc $(DESTDIR)$(LIBDIR)/pkgconfig/cartoongan.pc
	install -m 0644 $(MAN_PAGES) $(DESTDIR)$(MANDIR)/man1/
	$(if $(INSTALLED_WEIGHTS),install -m 0644 $(INSTALLED_WEIGHTS) $(DESTDIR)$(PKGDATADIR)/weights/)
	$(if $(WEB_APP_BUILT),install -d $(DESTDIR)$(PKGDATADIR)/web)
	$(if $(WEB_APP_BUILT),install -m 0644 $(WEB_APP_FILES:%=$(WEB_OUT)/%) $(DESTDIR)$(PKGDATADIR)/web/)
	@[ -n "$(WEB_APP_BUILT)" ] || \
	    echo "make install: no browser app in $(WEB_OUT) to install ('make web' builds it; 'cartoongan serve' needs it)"
	@[ -n "$(INSTALLED_WEIGHTS)" ] || [ "$(INSTALL_WEIGHTS)" != 1 ] || \
	    echo "make install: no weights in $(WEIGHTS_DIR) to install ('make weights' sets them up; users can run 'cartoongan fetch-weights')"
	@# the dynamic loader's cache, for a library installed into this system's own folders
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ! command -v ldconfig >/dev/null || ldconfig

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cartoongan $(DESTDIR)$(INCLUDEDIR)/cartoongan.h \
	    $(DESTDIR)$(LIBDIR)/libcartoongan.a $(DESTDIR)$(LIBDIR)/libcartoongan.so.* \
	    $(DESTDIR)$(LIBDIR)/libcartoongan.so $(DESTDIR)$(LIBDIR)/pkgconfig/cartoongan.pc \
	    $(DESTDIR)$(MANDIR)/man1/cartoongan.1 $(MAN_CMDS:%=$(DESTDIR)$(MANDIR)/man1/cartoongan-%.1) \
	    $(foreach s,$(STYLES) $(LIGHT_STYLES),$(DESTDIR)$(PKGDATADIR)/weights/$(s).safetensors) \
	    $(WEB_APP_FILES:%=$(DESTDIR)$(PKGDATADIR)/web/%)
	@# the folders that are cartoongan's own, when nothing else (a user's style) is left in them
	rmdir $(DESTDIR)$(PKGDATADIR)/weights $(DESTDIR)$(PKGDATADIR)/web $(DESTDIR)$(PKGDATADIR) 2>/dev/null || true
	@[ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ] || ! command -v ldconfig >/dev/null || ldconfig

# The Debian package: installed with PREFIX=/usr and the multiarch library folder into a
# staging folder, without weights (users fetch them: `cartoongan fetch-weights`), then
# stripped, documented and packed by tools/make_deb.sh (dpkg-shlibdeps for Depends,
# lintian for the check). The browser app goes in when emscripten is there to build it
# (its code only: `make web` would also want every style's weights), so that the
# packaged `cartoongan serve` has something to serve.
DEB_MULTIARCH = $(shell dpkg-architecture -qDEB_HOST_MULTIARCH)
deb:
	rm -rf $(BUILD)/deb
	$(if $(shell command -v $(EMCC)),$(MAKE) $(WEB_APP),@echo "make deb: no $(EMCC) (emscripten): the package will not hold the browser app")
	$(MAKE) install DESTDIR=$(abspath $(BUILD))/deb/debian/cartoongan PREFIX=/usr \
	    LIBDIR=/usr/lib/$(DEB_MULTIARCH) INSTALL_WEIGHTS=0
	tools/make_deb.sh $(BUILD)/deb/debian/cartoongan $(VERSION) $(BUILD)

-include $(PIC_OBJ:.o=.d) $(INST)/weights.d
