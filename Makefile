# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   -- main job on the embedded default capture
#   make test   -- the test suite
# Both create (and then reuse) a virtual environment in .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned for Python 3.11 (x86_64).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
DEMO_DIR ?= data/synth-default
STAMP := $(VENV)/.installed

.PHONY: demo test install system-deps clean-venv lock

LOCK := requirements.lock

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c $(LOCK) $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[test]"
	$(BIN)/hfavatar-process-video --install-mediapipe
	@touch $(STAMP)

# Re-resolve every dependency from scratch in a throw-away environment and pin what comes out.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip==26.3"
	.lock-venv/bin/python -m pip install --quiet $(TORCH_SPEC)
	.lock-venv/bin/python -m pip install --quiet -e ".[test]"
	{ echo "# Every package the project installs, at the versions its tests pass with (Python 3.11, Linux x86_64)."; \
	  echo "# Used as pip constraints by 'make demo', 'make test' and CI. Refresh with 'make lock'."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v "^hfavatar"; } > $(LOCK)
	rm -rf .lock-venv

install: system-deps $(STAMP)

# ffmpeg (ns-render videos), libusb (open3d, imported by ns-export) and chromium (the viewer's browser
# test, driven by Playwright; no browser is downloaded): installed when we are root.
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ldconfig -p 2>/dev/null | grep -q libusb-1.0.so.0 || missing="$$missing libusb-1.0-0"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; install them yourself for ns-render/ns-export/the viewer test"; \
	  else \
	    echo "note: please install$$missing (e.g. sudo apt-get install$$missing) for ns-render/ns-export/the viewer test"; \
	  fi; \
	fi

DEMO_RUN := outputs/synth-default/hfavatar-lite/demo

# The default synthetic capture -> check it -> train hfavatar-lite on the CPU -> export meshes.
demo: install
	@test -f $(DEMO_DIR)/annots.npy || $(BIN)/hfavatar-synth $(DEMO_DIR) --preset default
	$(BIN)/hfavatar-check $(DEMO_DIR) --json $(DEMO_DIR)/check.json --output-dir $(DEMO_DIR)/check
	$(BIN)/ns-train hfavatar-lite --data $(DEMO_DIR) --output-dir outputs --timestamp demo --vis tensorboard
	$(BIN)/hfavatar-export --load-config $(DEMO_RUN)/config.yml --output-dir exports/synth-default \
	  --canonical --frame 0 --resolution 256

test: install
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)
