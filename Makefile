# repro: `make help` lists the targets. Every target sets up .venv (pinned versions) on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Offline machines read local mirrors of the official data files; online ones use TFDS.
export REPRO_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
SEEDS ?= 0,1,2
# Extra Hydra overrides for every run of the repro-*/sweep-* targets, e.g. to run the jobs on SLURM:
#   make repro-vardrop ARGS='hydra/launcher=slurm hydra.launcher.partition=gpu'
ARGS ?=

.PHONY: help venv test test-slow test-kill lint bench bench-loop bench-resnet bench-vardrop report repro-bn-mnist \
	sweep-bn-mnist repro-resnet-cifar10 repro-vardrop sweep-vardrop repro-pixelcnn-mnist \
	bench-pixelcnn clean

help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## create .venv with the pinned dependencies

test: venv ## fast test suite (CPU, a few minutes)
	$(PY) -m pytest

test-slow: venv ## the long real-data tests too
	$(PY) -m pytest -m "slow or not slow"

test-kill: venv ## kill -9 a run 12 times at random moments, rerun each time: same result as uninterrupted
	$(PY) -m pytest -m slow tests/test_kill_resume.py

lint: venv ## ruff
	$(VENV)/bin/ruff check .

bench: bench-loop bench-resnet bench-vardrop bench-pixelcnn ## every benchmark below, one after the other

bench-loop: venv ## the shared loop vs a bare JAX loop; K seeds vmapped vs one
	$(PY) -m bench.bn_mnist_loop
	$(PY) -m bench.seeds_vmap

report: venv ## results/README.md: reported vs reproduced, with plots
	$(PY) -m repro.report

# Small MLPs train their seeds together (seeds=[...]: vmapped, one job per config); the result
# files are those of separate runs, so the report and results.if_exists=skip see no difference.
repro-bn-mnist: venv ## Ioffe & Szegedy 2015, Figure 1: both variants x 3 seeds (vmapped), then the report
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false 'seeds=[$(SEEDS)]' results.if_exists=skip $(ARGS)
	$(MAKE) --no-print-directory report

sweep-bn-mnist: venv ## sensitivity of Figure 1 to the unstated lr and init std (one seed)
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false optim.lr=0.05,0.5,1.0 results.if_exists=skip $(ARGS)
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false model.init_std=0.05,0.07 results.if_exists=skip $(ARGS)
	$(MAKE) --no-print-directory report

bench-resnet: venv ## CIFAR ResNet training images/s: the shared loop vs a bare flax/optax step
	$(PY) -m bench.resnet_cifar10 $(BENCH_ARGS)

# He et al. 2015 CIFAR-10. Needs the full CIFAR-10 (<data dir>/cifar10/cifar-10-batches-py; the
# 10% subset is for tests only) and a GPU to be practical (hours per run on one GPU; on 2 CPU
# cores 11-16 h per ResNet-20 run, 3-4 days per ResNet-110 run: bench/README.md).
# ResNet-1202 is left out (large GPU); see experiments/resnet_cifar10/spec.yaml.
RESNET110_SEEDS ?= 0,1,2,3,4
repro-resnet-cifar10: venv ## He et al. 2015, Table 6 / Fig. 6: ResNet-20..110 and plain-20..56, then the report
	@test -d "$(REPRO_DATA_DIR)/cifar10/cifar-10-batches-py" || { echo "need the full CIFAR-10 in" \
		"$(REPRO_DATA_DIR)/cifar10/cifar-10-batches-py (set REPRO_DATA_DIR)"; exit 1; }
	$(PY) -m repro -m experiment=resnet_cifar10 model.depth=20,32,44,56 model.shortcut=A,plain \
		seed=$(SEEDS) results.if_exists=skip $(ARGS)
	$(PY) -m repro -m experiment=resnet_cifar10 model.depth=110 optim.warmup_steps=400 \
		seed=$(RESNET110_SEEDS) results.if_exists=skip $(ARGS)
	$(MAKE) --no-print-directory report

clean: ## remove run outputs (not results/)
	rm -rf outputs multirun wandb checkpoints

VARDROP_METHODS ?= none,binary,gaussian_a,gaussian_b,variational_a,variational_a2,variational_b
VARDROP_SIZES ?= 100,250,500,750,1000,1250

repro-vardrop: venv ## Kingma et al. 2015, Figure 1(a) grid (methods x sizes x seeds, vmapped) + Table 1, then the report
	$(PY) -m repro -m experiment=vardrop_mnist model.dropout=$(VARDROP_METHODS) model.hidden=$(VARDROP_SIZES) \
	  'seeds=[$(SEEDS)]' results.if_exists=skip $(ARGS)
	$(PY) -m repro experiment=vardrop_mnist model.dropout=variational_b model.hidden=100 results.if_exists=skip \
	  'probes=[{_target_:experiments.vardrop.gradient_variance.GradientVariance,draws:20,batch_size:100,split:validation,num_train:50000}]' $(ARGS)
	$(MAKE) --no-print-directory report

# The paper states no optimizer settings: how much do the Figure-1(a) errors depend on Adam's lr
# (ours: 1e-3)? Default: the h=100 column (CPU: ~1 h for 14 configs x 1 seed; GPU: all sizes).
VARDROP_SWEEP_SIZES ?= 100
VARDROP_SWEEP_SEEDS ?= 0
sweep-vardrop: venv ## sensitivity of Figure 1(a) to the unstated Adam lr: 3e-4, 3e-3 x methods x sizes x seeds
	$(PY) -m repro -m experiment=vardrop_mnist optim.lr=3e-4,3e-3 model.dropout=$(VARDROP_METHODS) \
	  model.hidden=$(VARDROP_SWEEP_SIZES) 'seeds=[$(VARDROP_SWEEP_SEEDS)]' results.if_exists=skip $(ARGS)
	$(MAKE) --no-print-directory report

bench-vardrop: venv ## step time of each dropout method vs no dropout (target <= 2x), and of each Table-1 estimator
	$(PY) -m experiments.vardrop.bench --hidden 100 1000

# van den Oord et al. 2016 PixelCNN, binarized MNIST (Table 4). One run sized for a 2-core CPU
# (~30 min); PIXELCNN_ARGS passes overrides, e.g. PIXELCNN_ARGS="train.steps=50000 model.hidden=32".
repro-pixelcnn-mnist: venv ## van den Oord et al. 2016, Table 4: PixelCNN test NLL (nats) on binarized MNIST, then the report
	$(PY) -m repro experiment=pixelcnn_mnist results.if_exists=skip $(PIXELCNN_ARGS)
	$(MAKE) --no-print-directory report

bench-pixelcnn: venv ## PixelCNN training images/s on the shared loop and the time to sample 64 images
	$(PY) -m experiments.pixelcnn_mnist.bench $(BENCH_ARGS)
