# esmd: build, check and test. `make test` is the project's one test command
# (it installs the test servers, then runs every test with -race).
GO ?= go
BIN ?= bin/esmd

.PHONY: all build check test quickstart install-test-servers clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/esmd

# check: formatting and vet, no tests.
check:
	@out="$$(gofmt -l $$(git ls-files '*.go'))"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test:
	bash test/run.sh $(ARGS)

# quickstart: esmd on examples/quickstart.yaml (a generated stream, an example
# handler, a poison record isolated by bisect); needs nothing but Go.
quickstart:
	bash examples/quickstart.sh

install-test-servers:
	bash test/install.sh

clean:
	rm -rf bin
