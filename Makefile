# Plateau: appliance image targets (issue 6). The test suite itself runs with pytest.
#   make image              build out/plateau-<version>.{img,img.sha256,update} (root, ~5 min)
#   make image-test         boot the newest image under QEMU and check a SIP OPTIONS (slow: ~minutes under TCG)
# Variables: PYTHON (builds the wheels; CPython 3.11 like Debian 12), SIGN_KEY (ed25519 PEM to sign the
# update bundle), IMAGE (the image to boot), BOOT_TIMEOUT (seconds to READY).

PYTHON ?= $(firstword $(wildcard .venv/bin/python) python3)
SIGN_KEY ?=
IMAGE ?=
BOOT_TIMEOUT ?= 900

.PHONY: image image-test

image:
	PYTHON=$(PYTHON) image/build $(if $(SIGN_KEY),--sign-key $(SIGN_KEY))

image-test:
	python3 image/boot_test.py $(if $(IMAGE),--image $(IMAGE)) --timeout $(BOOT_TIMEOUT)
