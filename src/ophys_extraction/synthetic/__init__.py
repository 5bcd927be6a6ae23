"""Synthetic two-photon calcium-imaging movies with ground truth, for the demo, the tests, model training and benchmarks.

The movie is a sum of low-rank and sparse parts, so it can be rendered block by block with memory that does not grow
with the number of frames:

    signal(t, x) = np_temporal(t) @ np_spatial(x)      neuropil: static texture x (1 + a few smooth components)
                 + source_traces(t) @ footprints(x)     somata (ground truth) and distractors (not ground truth)
    movie        = int16(signal + shot noise + read noise + offset)

Everything is expressed in counts. The neuropil is attenuated, not removed, inside somata (`neuropil_coef`, ~0.7 as in
real data), so neuropil correction matters; an excluded nucleus displaces a little more, so ring-shaped cells have
cores as dark as the annotated real image's. Distractors that are not cells: out-of-focus somata (large blurred
blobs), active dendrite segments and puncta (boutons), plus static non-expressing somata ("holes", as many and as
dark as the real image's dark spots) and blood vessels that darken the neuropil. Illumination falls off away from a
random off-centre point (vignetting).

Determinism: the scene and activity come from RNG streams keyed by (seed, stream), the noise from one stream per fixed
block of BLOCK frames keyed by (seed, block index), so the output is byte-identical for a given spec whatever the
chunk size used to write it.

Modules: `spec` (parameters, appearance families, random streams), `scene` (the static scene), `activity` (traces and
`simulate`), `render` (movie frames and files, summary images for training), `session` (ground truth, sessions).
`python -m ophys_extraction.synthetic` (or `ophys-extraction synthetic`) writes a session: `cli/synthetic.py`.
"""

from ophys_extraction.synthetic.activity import simulate
from ophys_extraction.synthetic.render import make_training_image, render, write_movie
from ophys_extraction.synthetic.session import contamination, write_ground_truth, write_session
from ophys_extraction.synthetic.spec import (BLOCK, FAMILIES, Simulation, SyntheticSpec, family_fields,
                                             plane_seed)

__all__ = ["BLOCK", "FAMILIES", "Simulation", "SyntheticSpec", "contamination", "family_fields",
           "make_training_image", "plane_seed", "render", "simulate", "write_ground_truth", "write_movie",
           "write_session"]
