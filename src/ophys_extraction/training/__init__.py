"""Training the project's Cellpose 3 models (`bin/train_model.py`): `data` (synthetic planes across cell sizes and
appearance families, annotated images split spatially, augmentation), `config` (what a run is told), `train` (the
driver: network, size model, calibration, evaluation, saving), `calibration` (the cell-probability offset),
`evaluation` (scores as the SEGMENT step runs a model) and `record` (the training log)."""
