# weir: `make demo` sets up and shows the agent in throwaway namespaces; `make test` runs the whole suite.
SWIFT ?= swift
BUILD_FLAGS ?=

.PHONY: deps build test demo bench clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

test: build
	bash scripts/test.sh

demo: build
	bash scripts/demo.sh

bench: deps
	$(SWIFT) build -c release --static-swift-stdlib $(BUILD_FLAGS)
	bash scripts/bench.sh

clean:
	rm -rf .build
