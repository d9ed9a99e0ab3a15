# mk/mpi.mk: MPI in the cartoongan command (issue 15; README, "On several machines"),
# included by the Makefile. When Open MPI's mpicc is found (tools/install_deps.sh installs
# openmpi-bin and libopenmpi-dev), src/dist/mpi.c is compiled with its flags and linked
# into $(BUILD)/cartoongan with its libraries, so that `mpirun -np K cartoongan train` and
# `... cartoonize` run as one job; otherwise the command is built without it and always
# runs as one process (src/cli/dist.c). The library (libcartoongan.a, the wasm build)
# never links MPI. MPI=0 leaves it out even when mpicc is there; sanitizer builds leave it
# out too (Open MPI's own allocations would fill LeakSanitizer's report).
MPICC ?= mpicc
MPI ?= $(if $(filter -fsanitize=%,$(CFLAGS)),0,$(if $(shell command -v $(MPICC) 2>/dev/null),1,0))
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile)
MPI_LIBS   := $(shell $(MPICC) --showme:link)
MPI_OBJ    := $(BUILD)/obj/src/dist/mpi.o
$(MPI_OBJ): src/dist/mpi.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/cartoongan: $(MPI_OBJ)
$(BUILD)/cartoongan: LDLIBS += $(MPI_LIBS)
-include $(MPI_OBJ:.o=.d)
endif

# tests/test_dist_cli.sh compares checkpoints with it (it skips, saying why, without MPI).
test: $(BUILD)/tools/ckpt_compare

# make bench-dist: 2 MPI processes of 1 thread against 1 process of 2 threads, a training
# step and cartoonize (bench/dist_bench.sh; results in BENCHMARKS.md, not part of test).
.PHONY: bench-dist
bench-dist: $(BUILD)/cartoongan $(BUILD)/tools/train_fixture_files $(BUILD)/tests/test_events weights
	CARTOONGAN_BIN=$(CURDIR)/$(BUILD)/cartoongan bench/dist_bench.sh
