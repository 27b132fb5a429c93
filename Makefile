# weir: `make demo` sets up and shows the agent in throwaway namespaces; `make test` runs the whole suite; `make stress`
# puts the production binary under soak, faults, storms and rule scale (about 15 minutes); `make bench` measures and
# writes BENCHMARKS.md; `make fuzz` runs libFuzzer over the parsers.
# Packaging: `make install` (PREFIX, DESTDIR, SYSCONFDIR), `make uninstall`, `make deb`, `make image`. See
# docs/install.md.
SWIFT ?= swift
BUILD_FLAGS ?=
# Two Swift builds never run at once on a small machine (a developer's second worktree, CI): they share this lock.
LOCK := $(shell command -v flock >/dev/null 2>&1 && echo flock /tmp/weir-swift-build.lock)

VERSION := $(shell cat VERSION)
WEIR_COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Package.swift reads these to bake `weir --version`: "weir 0.4.0 (commit abc123def456)".
SWIFT_ENV = WEIR_VERSION=$(VERSION) WEIR_COMMIT=$(WEIR_COMMIT)

# The production binary: release, Swift runtime linked statically (a node has no Swift toolchain), stripped.
# `make install WEIR_BIN=path/to/weir` installs a binary built elsewhere without building.
RELEASE_BIN := .build/dist/weir
WEIR_BIN ?= $(RELEASE_BIN)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/weir
DESTDIR ?=
# The .deb carries the licence in its copyright file instead.
INSTALL_LICENSE ?= yes
IMAGE ?= localhost/weir:$(VERSION)
# The man page and the shell completions, generated from the installed binary's own --help (scripts/build-docs.sh).
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
GENERATED := .build/dist/generated

DOCS := README.md $(wildcard docs/*.md)
PROFILES := $(wildcard profiles/*.profile) profiles/README.md
# Installed paths follow PREFIX and SYSCONFDIR: the unit and the config file name them.
SUBST = sed -e 's|/usr/local/bin/weir|$(BINDIR)/weir|g' -e 's|/etc/weir|$(SYSCONFDIR)/weir|g' \
	-e 's|/usr/local/share/doc/weir|$(DOCDIR)|g'

.PHONY: deps bench-deps build test test-preflight demo bench bench-report stress fuzz clean release symbol-order install uninstall deb image FORCE

deps:
	@bash scripts/install-deps.sh

# Only `make bench` needs these (matplotlib from PyPI, in .build/bench-venv); `make test` and CI never install them.
bench-deps:
	@bash scripts/bench/install-deps.sh

build: deps
	$(SWIFT_ENV) $(LOCK) $(SWIFT) build $(BUILD_FLAGS)

release: $(RELEASE_BIN)

# FORCE: SwiftPM decides what is out of date; the strip is cheap.
# Full LTO: with every module of weir in one optimisation unit, code nothing calls (across modules too) goes, and the
# stripped binary is about 430 KB smaller than without it (issue 18: the size is no worse than before the WeirSystem
# refactor, which added code). The proxy's per-event calls are inlined across modules as before.
$(RELEASE_BIN): FORCE
	@bash scripts/install-deps.sh
	$(SWIFT_ENV) $(LOCK) $(SWIFT) build -c release --static-swift-stdlib --experimental-lto-mode=full $(BUILD_FLAGS)
	@mkdir -p $(@D)
	strip -o $@.tmp .build/release/weir && mv $@.tmp $@

# Sources/weir/symbol-order.txt, the layout of the release binary's code: the functions `weir proxy` and `weir run`
# execute under `make bench`'s memory load, found with callgrind (scripts/symbol-order.sh; root, valgrind). Run it
# again when the proxy's code changed much, then compare `make bench`'s memory rows.
symbol-order: deps
	bash scripts/symbol-order.sh

# test-preflight comes first (make test is not meant for -j): with WEIR_REQUIRE_KERNEL=1 (CI), a reason known before
# the build why kernel, systemd or packaging checks would be skipped (not root, a missing tool) fails at once.
test: test-preflight build $(WEIR_BIN)
	$(SWIFT_ENV) WEIR_BIN=$(abspath $(WEIR_BIN)) bash scripts/test.sh

test-preflight: deps
	@bash scripts/test.sh --preflight

demo: build
	bash scripts/demo.sh

# libFuzzer over the parsers: FUZZ_SECONDS per target (default 60), FUZZ_TARGETS to pick some. The script builds
# under the same lock as every Swift build here; the fuzzing itself does not hold it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh $(FUZZ_TARGETS)

# The same binary `make install`, the .deb and the image ship. Writes BENCHMARKS.md and docs/bench/ (plots, and the
# run's raw samples in docs/bench/data). About 10 minutes on 2 vCPUs, plus the release build.
bench: deps bench-deps $(WEIR_BIN)
	WEIR=$(abspath $(WEIR_BIN)) bash scripts/bench.sh

# BENCHMARKS.md and the plots again from the committed samples, without measuring (for instance after `make stress`
# wrote docs/stress-results.md).
bench-report: bench-deps
	.build/bench-venv/bin/python scripts/bench/report.py --data docs/bench/data --out .

# Soak, faults, connection storm and rule scale against the production binary; every summary line must pass.
# About 15 minutes with the defaults (STRESS_SOAK_SECONDS=300 per soak mode); not part of `make test`.
stress: deps $(WEIR_BIN) deb
	WEIR=$(abspath $(WEIR_BIN)) bash scripts/stress.sh

install: $(WEIR_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/weir/profiles $(DESTDIR)$(DOCDIR)/docs
	install -m 0755 $(WEIR_BIN) $(DESTDIR)$(BINDIR)/weir
	for u in weir.service weir-clean.service; do \
	  $(SUBST) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	@# An existing weir.conf is the operator's: keep it, put the shipped one beside it.
	$(SUBST) packaging/weir.conf > $(DESTDIR)$(SYSCONFDIR)/weir/weir.conf.dist
	@conf=$(DESTDIR)$(SYSCONFDIR)/weir/weir.conf; \
	if [ -e $$conf ] && ! cmp -s $$conf $$conf.dist; then \
	  chmod 0644 $$conf.dist; echo "kept $$conf; the shipped one is $$conf.dist"; \
	else install -m 0644 $$conf.dist $$conf && rm -f $$conf.dist; fi
	install -m 0644 $(PROFILES) $(DESTDIR)$(SYSCONFDIR)/weir/profiles/
	install -m 0644 README.md systemd/pod-mode.conf $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/docs/
	if [ "$(INSTALL_LICENSE)" = yes ]; then install -m 0644 LICENSE $(DESTDIR)$(DOCDIR)/; fi
	@# The man page and completions of exactly the binary installed.
	bash scripts/build-docs.sh $(WEIR_BIN) $(GENERATED)
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	install -m 0644 $(GENERATED)/weir.1.gz $(DESTDIR)$(MANDIR)/man1/weir.1.gz
	install -m 0644 $(GENERATED)/completions/weir.bash $(DESTDIR)$(BASHCOMPDIR)/weir
	install -m 0644 $(GENERATED)/completions/_weir $(DESTDIR)$(ZSHCOMPDIR)/_weir
	install -m 0644 $(GENERATED)/completions/weir.fish $(DESTDIR)$(FISHCOMPDIR)/weir.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/weir $(DESTDIR)$(UNITDIR)/weir.service $(DESTDIR)$(UNITDIR)/weir-clean.service
	rm -f $(DESTDIR)$(SYSCONFDIR)/weir/weir.conf $(DESTDIR)$(SYSCONFDIR)/weir/weir.conf.dist
	rm -f $(addprefix $(DESTDIR)$(SYSCONFDIR)/weir/profiles/,$(notdir $(PROFILES)))
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/pod-mode.conf $(DESTDIR)$(DOCDIR)/LICENSE $(addprefix $(DESTDIR)$(DOCDIR)/docs/,$(notdir $(wildcard docs/*.md)))
	rm -f $(DESTDIR)$(MANDIR)/man1/weir.1.gz $(DESTDIR)$(BASHCOMPDIR)/weir $(DESTDIR)$(ZSHCOMPDIR)/_weir \
	  $(DESTDIR)$(FISHCOMPDIR)/weir.fish
	-rmdir $(DESTDIR)$(SYSCONFDIR)/weir/profiles $(DESTDIR)$(SYSCONFDIR)/weir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR) 2>/dev/null

# .build/dist/weir_VERSION_ARCH.deb
deb: $(WEIR_BIN)
	bash scripts/build-deb.sh $(abspath $(WEIR_BIN)) .build/dist

# localhost/weir:VERSION in buildah's storage (vfs), from scratch: see Containerfile. Also .build/dist/weir-image-VERSION.tar
# (OCI archive, to load into the nodes' runtime) and .build/dist/kubernetes/*.yaml with the image pinned by its digest.
image: $(WEIR_BIN)
	bash scripts/build-image.sh $(abspath $(WEIR_BIN)) $(IMAGE)

clean:
	rm -rf .build
