# graylane
GO      ?= go
PKGS    ?= ./...
# Where heavy test servers (Polaris, Kubernetes, kwok) are built once and kept.
export GRAYLANE_CACHE ?= $(HOME)/.cache/graylane

.PHONY: all build run test test-unit test-deps tools bench bench-scale fmt vet lint clean console console-check chart-lint

all: build

## build: bin/graylane and bin/demoapp
build:
	$(GO) build -o bin/graylane ./cmd/graylane
	$(GO) build -o bin/demoapp ./cmd/demoapp

## run: graylane on its embedded default (embedded etcd, demo app on the process backend)
run: build
	./bin/graylane serve --config deployments/local/graylane.yaml

## test-deps: install the system packages the tests use (nginx + Lua module, OpenSSH server, JDK, wrk)
test-deps:
	./.ci/install-deps.sh

## tools: build (or reuse from the cache) the heavy test servers and tools (Polaris, Kubernetes, kwok, graylane-helm, the previous release of graylane for upgrade tests)
tools:
	@for p in ./testsupport/polaris/prebuild ./testsupport/kubestack/prebuild ./testsupport/helmtool/prebuild ./testsupport/graylanetest/prebuild; do \
	  if git ls-files --error-unmatch $$p >/dev/null 2>&1; then $(GO) run $$p || exit 1; fi; \
	done

## console: rebuild the web console (console/web -> console/dist, embedded in the binary; commit the result)
console:
	cd console/web && npm ci --no-audit --no-fund && npm run build

## console-check: rebuild the console into a temporary directory and fail if it differs from the committed console/dist
console-check:
	cd console/web && npm ci --no-audit --no-fund
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  (cd console/web && npm run build -- --outDir $$tmp/dist --emptyOutDir >/dev/null) && \
	  if diff -r console/dist $$tmp/dist; then echo "console/dist matches its sources"; \
	  else echo "console/dist is stale: run 'make console' and commit console/dist" >&2; exit 1; fi

## test: both tiers, against real servers; a missing server fails (docs/testing.md)
test: test-deps console-check tools build
	GRAYLANE_INTEGRATION=1 $(GO) test -race -count=1 -timeout 80m $(PKGS)

## test-unit: the unit tier: every package, integration tests skipped (no etcd, no servers, no programs)
test-unit:
	GRAYLANE_INTEGRATION= $(GO) test -count=1 $(PKGS)

## bench: the benchmarks behind docs/benchmarks.md (some need embedded etcd; the proxy against nginx needs make test-deps)
bench: build
	GRAYLANE_INTEGRATION=1 $(GO) test -run '^$$' -bench . -benchmem -count=1 ./rollout/... ./adapters/proxy/... ./configsync/etcd/...
	$(GO) run ./bench/proxybench -duration 10s -rounds 5

## chart-lint: `helm lint --strict` of deployments/helm/graylane through Helm's Go SDK (bin/graylane-helm from tools/helm)
chart-lint:
	cd tools/helm && GOWORK=off $(GO) build -o ../../bin/graylane-helm .
	./bin/graylane-helm lint deployments/helm/graylane --strict

## bench-scale: the scale harness behind docs/benchmarks.md's scale figures (the real binary, a simulated
## deploy system; 1k/5k/20k apps, a 2,000-rollout storm, 3 and 5 replicas in ha.mode shard). It takes
## 30-60 minutes and both cores: run it on a quiet machine. BENCH_SCALE_FLAGS overrides the sizes
## (go run ./bench/scale -h), e.g. make bench-scale BENCH_SCALE_FLAGS='-apps 1000 -storm 200 -shards 3'
BENCH_SCALE_FLAGS ?= -apps 1000,5000,20000 -storm 2000 -idle-wait 6m -shards 3,5 -shard-apps 5000
bench-scale: build
	$(GO) run ./bench/scale -bin bin/graylane $(BENCH_SCALE_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin data
