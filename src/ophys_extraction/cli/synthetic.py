"""`ophys-extraction synthetic` / `python -m ophys_extraction.synthetic`: write a synthetic multi-plane session
(Allen layout) with ground truth, for the demo, tests and benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ophys_extraction.synthetic import FAMILIES, SyntheticSpec, family_fields, write_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ophys_extraction.synthetic",
        description="Write a synthetic multi-plane two-photon session (Allen layout) with ground truth.")
    parser.add_argument("--out", required=True, type=Path, help="session folder to create")
    parser.add_argument("--n_planes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=SyntheticSpec.n_frames)
    parser.add_argument("--height", type=int, default=SyntheticSpec.height)
    parser.add_argument("--width", type=int, default=SyntheticSpec.width)
    parser.add_argument("--frame_rate", type=float, default=SyntheticSpec.frame_rate)
    parser.add_argument("--noise_level", type=float, default=SyntheticSpec.noise_level,
                        help="1 = demo default, higher = noisier, 0 = noise-free")
    parser.add_argument("--n_cells", type=int, default=None, help="cells per plane (default: from --cell_density)")
    parser.add_argument("--cell_density", type=float, default=SyntheticSpec.cell_density, help="cells per 10^4 px")
    parser.add_argument("--cell_diameter", type=float, default=SyntheticSpec.cell_diameter_mean, help="mean, px")
    parser.add_argument("--family", choices=list(FAMILIES), default="realistic",
                        help="how the somata look (appearance family)")
    parser.add_argument("--neuropil_strength", type=float, default=SyntheticSpec.neuropil_strength)
    parser.add_argument("--offset", type=float, default=SyntheticSpec.offset)
    parser.add_argument("--shot_noise", choices=("poisson", "gaussian"), default=SyntheticSpec.shot_noise,
                        help="gaussian: same variance, much faster for very long movies")
    parser.add_argument("--chunk_frames", type=int, default=256, help="frames rendered and written at a time")
    args = parser.parse_args(argv)
    movies = write_session(args.out, args.n_planes, args.seed, args.chunk_frames, n_frames=args.frames,
                           height=args.height, width=args.width, frame_rate=args.frame_rate,
                           noise_level=args.noise_level, n_cells=args.n_cells, cell_density=args.cell_density,
                           cell_diameter_mean=args.cell_diameter, neuropil_strength=args.neuropil_strength,
                           offset=args.offset, shot_noise=args.shot_noise, **family_fields(args.family))
    for movie in movies:
        print(movie)
    return 0


