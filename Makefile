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

.PHONY: demo test install system-deps clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

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
