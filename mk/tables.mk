# Results tables, each one command: `make table4 SCALE=smoke DATA=synthetic LOGGER=csv
# LAUNCHER=basic` runs experiments/table4.yaml as one Hydra multirun into
# multirun/table4/$(SCALE)-$(DATA)/ and ends by printing the table (report.md, report.csv and the
# chart report.png there). Cells carry 95% intervals over seeds, so pass 2+ seeds for them:
# SWEEP_ARGS='seeds=[0,1]' (format of a report: experiments/README.md).
# Re-running skips finished runs and resumes interrupted ones. SWEEP_ARGS passes more, e.g.
# SWEEP_ARGS='seeds=[0,1,2] trainer.max_epochs=4' or 'hydra.launcher.partition=gpu'.
# LAUNCHER: basic | joblib (2 parallel jobs here) | submitit_local | slurm (see conf/hydra/launcher).
# THREADS: torch threads per run (OMP_NUM_THREADS); empty = torch's default. Tiny smoke networks
# on shared cores run ~40x faster with one thread (make table4 SCALE=smoke: 18 s vs 12 min here).
SWEEP_ARGS ?=
THREADS ?= $(if $(filter smoke,$(SCALE)),1,)
SWEEP = $(if $(THREADS),OMP_NUM_THREADS=$(THREADS) )$(VENV)/bin/spadelab sweep \
	experiments/$@.yaml scale=$(SCALE) data=$(DATA) logger=$(LOGGER) launcher=$(LAUNCHER) \
	$(SWEEP_ARGS)

table1: $(STAMP) ## SPADE Table 1: SPADE and pix2pixHD on DATA (CRN, SIMS: paper numbers only)
	$(SWEEP)

table3: $(STAMP) ## SPADE Table 3: SPADE vs concat vs pix2pixHD++, with generator sizes
	$(SWEEP)

table4: $(STAMP) ## SPADE Table 4: input, SPADE kernel, capacity, param-free norm
	$(SWEEP)

table5: $(STAMP) ## SPADE Table 5: losses, deeper D, pix2pixHD++ without sync BN / spectral norm
	$(SWEEP)

stanford: $(STAMP) ## Stanford report: switchable norm (IN+LN), unpooling VAE-GAN
	$(SWEEP)

brown: $(STAMP) ## Brown report: reduced GauGAN (DATA=ade20k_landscape for the report's data)
	$(SWEEP)

norm_grid: $(STAMP) ## every norm x modulation on the SPADE decoder, 3 seeds
	$(SWEEP)

beyond: $(STAMP) ## CLADE, CLADE-ICPE, OASIS, SPADE + OASIS-D, CRN beside SPADE, 3 seeds
	$(SWEEP)

spade_vs_concat: $(STAMP) ## why concat beats SPADE here: norm, baseline form, capacity; 5 seeds
	$(SWEEP)

tables: table1 table3 table4 table5 stanford brown norm_grid ## every table above, in turn

report-%: $(STAMP) ## print a table's report again, e.g. make report-table4 SCALE=smoke
	$(VENV)/bin/spadelab report experiments/$*.yaml scale=$(SCALE) data=$(DATA) logger=$(LOGGER)

.PHONY: table1 table3 table4 table5 stanford brown norm_grid beyond spade_vs_concat tables
