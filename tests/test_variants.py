"""Which stage each variant trains in each epoch of a round."""
import pytest

from ts3ray.method.variants import VARIANTS

# E = 6 epochs, e1 = 2 warm-up, e2 = 2 alternate, 2 refinement epochs
EXPECTED = {
    "full": "WWAARR",
    "warm": "WWWWWW",
    "semi": "AAAAAA",
    "warm+semi": "WWAAAA",
    "warm+refine": "WWWWRR",
    "semi+refine": "AAAARR",
    "warm+alter": "WWAAAA",
    "sparse": "WWAARR",
    "sparse+sparse": "WWAARR",
    "coteach": "WWCCRR",
}
LETTER = {"warmup": "W", "alternate": "A", "refine": "R", "coteach": "C"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stage_schedule(name):
    variant = VARIANTS[name]
    got = "".join(LETTER[variant.stage_at(e, 2, 2)] for e in range(6))
    assert got == EXPECTED[name]


def test_entropy_only_where_table_vii_says():
    no_entropy = {n for n, v in VARIANTS.items() if not v.entropy}
    assert no_entropy == {"warm+alter", "coteach"}


def test_edge_windows():
    full = VARIANTS["full"]
    assert [full.stage_at(e, 0, 0) for e in range(2)] == ["refine", "refine"]
    assert [full.stage_at(e, 0, 3) for e in range(3)] == ["alternate"] * 3
