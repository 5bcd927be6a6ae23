"""Train a Cellpose 3 model from scratch for this pipeline: synthetic planes mixed with annotated images.

Writes the model file, its size model `<model>_size.npy` (so `--diameter 0` estimates each plane's cell size),
`<model>.training_log.json` and `<model>.training_log.txt` (data, seeds, epochs, time, held-out scores). Slow (minutes to tens of minutes on a CPU): never run in tests or CI.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ophys_extraction.errors import InputError
from ophys_extraction.segmentation_input import IMAGE_MODES
from ophys_extraction.training.config import TrainConfig

DEFAULTS = TrainConfig(output=Path("assets/models/ophys_cp3"))


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    parser = argparse.ArgumentParser(prog="train_model.py", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--output", type=Path, default=d.output, help="model file to write")
    data = parser.add_argument_group("data")
    data.add_argument("--real_dir", type=Path, action="append", default=[],
                      help="annotated folder with mean.npy, gt_labels.npy (and max.npy); repeatable")
    data.add_argument("--images", type=Path, nargs="+", default=[],
                      help="your own annotated summary images (.npy or .tif, 2-D), already the image of the first "
                           "--modes entry (e.g. mean images for mode 2)")
    data.add_argument("--masks", type=Path, nargs="+", default=[],
                      help="label images for --images, same order (0 = background, 1..n = ROI)")
    data.add_argument("--modes", type=int, nargs="+", default=list(d.modes), choices=sorted(IMAGE_MODES),
                      help="--anatomical_only image(s) to train on (several: alternated)")
    data.add_argument("--n_synthetic", type=int, default=d.n_synthetic, help="synthetic training planes (0: none)")
    data.add_argument("--synthetic_size", type=int, default=d.synthetic_size)
    data.add_argument("--val_fraction", type=float, default=d.val_fraction,
                      help="last part of each annotated image (along its longer axis) kept for validation")
    data.add_argument("--gap", type=int, default=d.gap, help="pixels between the train and validation parts")
    data.add_argument("--copies", type=int, default=d.copies,
                      help="intensity-augmented copies of each annotated training image")
    data.add_argument("--real_share", type=float, default=d.real_share,
                      help="share of each epoch's patches drawn from annotated images")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--init_model", type=Path, default=None,
                     help="start from this Cellpose 3 model file instead of from scratch (continue training a model "
                          "this script wrote, e.g. the bundled one, or fine-tune your own); its training log, if "
                          "beside it, is kept in the new log")
    opt.add_argument("--size_only", action="store_true",
                     help="only fit the size model of the existing model --output (written beside it as "
                          "<model>_size.npy) on the training data the other options describe; the network is "
                          "not changed")
    opt.add_argument("--size_epochs", type=int, default=d.size_epochs,
                     help="epochs of the size model fit (after the network's)")
    opt.add_argument("--n_epochs", type=int, default=d.n_epochs)
    opt.add_argument("--nimg_per_epoch", type=int, default=d.nimg_per_epoch)
    opt.add_argument("--batch_size", type=int, default=d.batch_size)
    opt.add_argument("--bsize", type=int, default=d.bsize, help="patch size")
    opt.add_argument("--learning_rate", type=float, default=d.learning_rate)
    opt.add_argument("--weight_decay", type=float, default=d.weight_decay)
    opt.add_argument("--diam_mean", type=float, default=d.diam_mean,
                     help="ROI diameter (px) the network works at; images are rescaled to it")
    opt.add_argument("--seed", type=int, default=d.seed)
    opt.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    ev = parser.add_argument_group("evaluation")
    ev.add_argument("--n_eval_synthetic", type=int, default=d.n_eval_synthetic)
    ev.add_argument("--eval_size", type=int, default=d.eval_size)
    ev.add_argument("--no_half", action="store_true", help="keep float32 even if float16 scores the same")
    ev.add_argument("--no_calibrate", action="store_true",
                    help="do not fold a cell-probability offset (chosen on training data) into the model")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.real_dir and not args.images and args.n_synthetic < 1:
        raise InputError("--n_synthetic", "no training data: give --real_dir, --images/--masks or synthetic planes")
    if not 0 <= args.val_fraction < 0.9:
        raise InputError("--val_fraction", f"must be in [0, 0.9), got {args.val_fraction}")
    if args.bsize % 16:
        raise InputError("--bsize", f"must be a multiple of 16, got {args.bsize}")
    for folder in args.real_dir:
        if not folder.is_dir():
            raise InputError(folder, "folder not found")
    if args.size_only and not args.output.is_file():
        raise InputError(args.output, "--size_only: model file not found (it fits the size model of an existing "
                                      "model)")
    if args.init_model is not None and not args.init_model.is_file():
        raise InputError(args.init_model, "--init_model: model file not found (give a path; nothing is downloaded)")
    argv_list = sys.argv[1:] if argv is None else argv
    from ophys_extraction.training.train import add_size_model, train
    cfg = TrainConfig(
        output=args.output, modes=tuple(args.modes), n_synthetic=args.n_synthetic,
        synthetic_size=args.synthetic_size, real_dirs=tuple(args.real_dir), images=tuple(args.images),
        masks=tuple(args.masks), val_fraction=args.val_fraction, gap=args.gap, copies=args.copies,
        real_share=args.real_share, n_epochs=args.n_epochs, nimg_per_epoch=args.nimg_per_epoch,
        batch_size=args.batch_size, bsize=args.bsize, learning_rate=args.learning_rate,
        weight_decay=args.weight_decay, diam_mean=args.diam_mean, seed=args.seed,
        n_eval_synthetic=args.n_eval_synthetic, eval_size=args.eval_size, threads=args.threads,
        half=not args.no_half, calibrate=not args.no_calibrate, size_epochs=args.size_epochs,
        init_model=args.init_model,
        command_line="bin/train_model.py " + shlex.join(map(str, argv_list)))
    if args.size_only:
        add_size_model(cfg, args.output)
    else:
        train(cfg)
    return 0
