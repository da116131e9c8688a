# gpuimg — `make demo` runs the main job, `make test` runs every test (CI calls it).
GO       ?= go
# Slow set-up (the debootstrap bases, the trixie root, generated stand-in
# packages) is cached outside the clone, keyed by its inputs, so a fresh
# clone (CI's) reuses what an earlier one made.
HOME     ?= /root
CACHE    ?= $(HOME)/.cache/gpuimg-dev
export GPUIMG_CACHE ?= $(CACHE)
export GPUIMG_BUILDKITD ?= $(CURDIR)/bin/buildkitd
export GPUIMG_TEST_BASE ?= $(CACHE)/base/debian-bookworm

.DEFAULT_GOAL := help
.PHONY: help deps build buildkitd base trixie fixtures demo test test-unit lint fuzz bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

deps: ## install the Debian packages the demo and tests need (apt-get, as root) and register QEMU for arm64
	@hack/install-deps.sh

build: ## build bin/gpuimg and bin/gpuimg-unpack (static: it runs in an empty build step)
	$(GO) build -o bin/gpuimg ./cmd/gpuimg
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/gpuimg-unpack ./cmd/gpuimg-unpack

buildkitd: ## build the buildkitd pinned in go.mod (rebuilt only when the pin moves)
	@want=$$($(GO) list -m -f '{{.Version}}' github.com/moby/buildkit); \
	have=$$($(GO) version -m bin/buildkitd 2>/dev/null | awk '$$2=="github.com/moby/buildkit"{print $$3}'); \
	if [ "$$want" != "$$have" ]; then echo "building buildkitd $$want (a few minutes)"; \
	  $(GO) build -o bin/buildkitd github.com/moby/buildkit/cmd/buildkitd; fi

base: deps ## make the Debian base image, amd64 and arm64 (debootstrap, arm64 under QEMU, into one OCI layout; cached)
	@hack/mkbase.sh $(GPUIMG_TEST_BASE)

trixie: deps ## make the Debian 13 root the tests run Docker 26, containerd 1.7 and podman 5.4 from (cached)
	@hack/mktrixie.sh $(CACHE)/trixie >/dev/null

FIXTURE_VERSION ?= 580.159.04
fixtures: ## generate the stand-in driver packages (tiny and realistic) into the cache
	@GPUIMG_CACHE=$(CACHE) $(GO) run ./internal/standin/cmd/mkstandin -version $(FIXTURE_VERSION) -scale tiny
	@GPUIMG_CACHE=$(CACHE) $(GO) run ./internal/standin/cmd/mkstandin -version $(FIXTURE_VERSION) -scale realistic

demo: deps build buildkitd base ## build a driver image on a local buildkitd and launch it
	@hack/demo.sh

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

test-unit: ## unit tests only (no daemons)
	$(GO) test -short ./...

test: deps lint buildkitd base trixie ## every test: unit, end to end (buildkitd, dockerd, podman, registry), brief fuzzing
	$(GO) test -count=1 -p 2 -timeout 45m ./...
	@$(MAKE) --no-print-directory fuzz

# An execution count, not a duration: with a duration, Go's fuzzing engine
# sometimes fails a clean run with "context deadline exceeded" when the time
# runs out (seen on FuzzNormalizeBusID and FuzzSelect under load).
FUZZTIME ?= 30000x
fuzz: ## run each fuzz target briefly
	$(GO) test -run='^$$' -fuzz=FuzzParseVersion -fuzztime=$(FUZZTIME) ./drivers
	$(GO) test -run='^$$' -fuzz=FuzzReadHeader -fuzztime=$(FUZZTIME) ./drivers
	$(GO) test -run='^$$' -fuzz=FuzzParseManifest -fuzztime=$(FUZZTIME) ./drivers
	$(GO) test -run='^$$' -fuzz=FuzzParseProcVersion -fuzztime=$(FUZZTIME) ./host
	$(GO) test -run='^$$' -fuzz=FuzzNormalizeBusID -fuzztime=$(FUZZTIME) ./host
	$(GO) test -run='^$$' -fuzz=FuzzParseIMEXChannels -fuzztime=$(FUZZTIME) ./host
	$(GO) test -run='^$$' -fuzz=FuzzParseNvidiaSMIList -fuzztime=$(FUZZTIME) ./host
	$(GO) test -run='^$$' -fuzz=FuzzSelect -fuzztime=$(FUZZTIME) ./launch
	$(GO) test -run='^$$' -fuzz=FuzzResolveImageRef -fuzztime=$(FUZZTIME) ./launch

bench: deps build buildkitd base ## gpuimg vs the classic Dockerfile recipe: table, bench/results/, BENCHMARKS.md (BENCH_RUNS=1: quick)
	@hack/bench.sh

clean: ## remove build outputs and caches
	rm -rf bin $(CACHE)
