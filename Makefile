# Plateau: appliance image targets (issue 6). The test suite itself runs with pytest.
#   make image              build out/plateau-<version>.{img,img.sha256,update} (root, ~5 min)
#   make image-test         boot the newest image under QEMU and check a SIP OPTIONS (slow: ~minutes under TCG)
#   make image-test-update  build three test images into out/test/ and run the A/B update + rollback scenario
#                           under QEMU (image/update_test.py; NO_BUILD=1 reuses out/test/; ~25 min under TCG)
# Variables: PYTHON (builds the wheels; CPython 3.11 like Debian 12), SIGN_KEY (ed25519 PEM to sign the
# update bundle), IMAGE (the image to boot), BOOT_TIMEOUT (seconds to READY).

PYTHON ?= $(firstword $(abspath $(wildcard .venv/bin/python)) python3)
SIGN_KEY ?=
IMAGE ?=
BOOT_TIMEOUT ?= 900
UPDATE_TIMEOUT ?= 2400
NO_BUILD ?=

.PHONY: image image-test image-test-update

image:
	PYTHON=$(PYTHON) image/build $(if $(SIGN_KEY),--sign-key $(SIGN_KEY))

image-test:
	python3 image/boot_test.py $(if $(IMAGE),--image $(IMAGE)) --timeout $(BOOT_TIMEOUT)

image-test-update:
	PYTHON=$(PYTHON) python3 image/update_test.py $(if $(NO_BUILD),,--build) --timeout $(UPDATE_TIMEOUT)
