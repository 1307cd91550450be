# The two commands: `make demo` runs the voice and alert cascades and the radio patch, `make test` runs every check.
# Both install missing Debian packages first (scripts/install-deps.sh).

CARGO ?= cargo
# Where cargo puts the binaries (honours CARGO_TARGET_DIR).
BIN := $(or $(CARGO_TARGET_DIR),target)/release

.PHONY: deps demo test bench clean

deps:
	@scripts/install-deps.sh

demo: deps
	$(CARGO) build --release --bins
	$(BIN)/emcomm-bench demo
	$(BIN)/emcomm-bench demo-alerts
	$(BIN)/emcomm-bench demo-radio

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

clean:
	$(CARGO) clean
	rm -rf demo-out bench-out

bench: deps
	$(CARGO) build --release --bins
	$(BIN)/emcomm-bench fanout --destinations 100 1000
	$(BIN)/emcomm-bench alerts --loudspeakers 1000 --rounds 5
	$(BIN)/emcomm-bench patching --patches 1 10 50 --seconds 10
	$(BIN)/emcomm-bench cascade
	$(BIN)/emcomm-bench cascade-ip
