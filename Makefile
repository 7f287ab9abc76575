# repro: `make help` lists the targets. Every target sets up .venv (pinned versions) on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Offline machines read local mirrors of the official data files; online ones use TFDS.
export REPRO_DATA_DIR ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data),)
SEEDS ?= 0,1,2

.PHONY: help venv test test-slow lint bench bench-resnet bench-vardrop report repro-bn-mnist \
	sweep-bn-mnist repro-resnet-cifar10 repro-vardrop clean

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

lint: venv ## ruff
	$(VENV)/bin/ruff check .

bench: venv ## benchmarks: the shared loop vs a bare JAX loop; K seeds vmapped vs one
	$(PY) -m bench.bn_mnist_loop
	$(PY) -m bench.seeds_vmap

report: venv ## results/README.md: reported vs reproduced, with plots
	$(PY) -m repro.report

repro-bn-mnist: venv ## Ioffe & Szegedy 2015, Figure 1: both variants x 3 seeds, then the report
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false seed=$(SEEDS) results.if_exists=skip
	$(MAKE) --no-print-directory report

sweep-bn-mnist: venv ## sensitivity of Figure 1 to the unstated lr and init std (one seed)
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false optim.lr=0.05,0.5,1.0 results.if_exists=skip
	$(PY) -m repro -m experiment=bn_mnist model.batchnorm=true,false model.init_std=0.05,0.07 results.if_exists=skip
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
		seed=$(SEEDS) results.if_exists=skip
	$(PY) -m repro -m experiment=resnet_cifar10 model.depth=110 optim.warmup_steps=400 \
		seed=$(RESNET110_SEEDS) results.if_exists=skip
	$(MAKE) --no-print-directory report

clean: ## remove run outputs (not results/)
	rm -rf outputs multirun wandb checkpoints

VARDROP_METHODS ?= none,binary,gaussian_a,gaussian_b,variational_a,variational_a2,variational_b
VARDROP_SIZES ?= 100,250,500,750,1000,1250

repro-vardrop: venv ## Kingma et al. 2015, Figure 1(a) grid (methods x sizes x seeds) + Table 1, then the report
	$(PY) -m repro -m experiment=vardrop_mnist model.dropout=$(VARDROP_METHODS) model.hidden=$(VARDROP_SIZES) seed=$(SEEDS) results.if_exists=skip
	$(PY) -m repro experiment=vardrop_mnist model.dropout=variational_b model.hidden=100 results.if_exists=skip \
	  'probes=[{_target_:experiments.vardrop.gradient_variance.GradientVariance,draws:20,batch_size:100,split:validation,num_train:50000}]'
	$(MAKE) --no-print-directory report

bench-vardrop: venv ## step time of each dropout method vs no dropout (target <= 2x), and of each Table-1 estimator
	$(PY) -m experiments.vardrop.bench --hidden 100 1000
