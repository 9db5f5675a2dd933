"""Settings declared once, resolved once and recorded as they are: derived seeds, method options and
presets beside each method, deviations from the paper's whole recipe, recipe keys and dry runs."""

import random
import string

from cinv.runtime import derive_seed


def test_derive_seed_hashes_the_whole_key():
    assert derive_seed(0, "probe") != derive_seed(0, "probe head")  # the first 4 bytes used to decide
    assert derive_seed(0, 1) != derive_seed(0, "1") and derive_seed(1, 23) != derive_seed(12, 3)
    rng = random.Random(0)
    purposes = {"".join(rng.choices(string.ascii_lowercase + " _", k=rng.randint(1, 24))) for _ in range(5000)}
    seeds = {derive_seed(7, purpose) for purpose in purposes}
    assert len(seeds) == len(purposes)  # no collision among thousands of purposes
    assert all(0 <= seed < 2**63 for seed in seeds) and derive_seed(7, "probe") == derive_seed(7, "probe")
